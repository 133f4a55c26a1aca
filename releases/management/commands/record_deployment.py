from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from releases import services
from releases.management.base import ServiceCommand
from releases.models import Deployment, Endpoint, Release


class Command(ServiceCommand):
    help = "Record that a release went live on an endpoint (production takes approved releases only)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("endpoint")
        parser.add_argument("release")
        parser.add_argument("--reason", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        endpoint = Endpoint.objects.filter(name=options["endpoint"]).first()
        if endpoint is None:
            raise self.fail(f"no endpoint named {options['endpoint']!r}")
        release = Release.objects.filter(name=options["release"]).first()
        if release is None:
            raise self.fail(f"no release named {options['release']!r}")
        deployment = services.record_deployment(
            endpoint, release, by=by, source=Deployment.Source.CLI, reason=options["reason"]
        )
        self.stdout.write(
            f"{release.name} live on {endpoint.name} since {deployment.deployed_at:%Y-%m-%d %H:%M:%S} UTC"
        )
