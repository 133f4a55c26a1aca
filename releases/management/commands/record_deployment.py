from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from releases import services
from releases.management.base import ServiceCommand
from releases.models import Deployment, Endpoint, Release
from releases.models.base import get_or_refuse


class Command(ServiceCommand):
    help = "Record that a release went live on an endpoint (production takes approved releases only)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("endpoint")
        parser.add_argument("release")
        parser.add_argument("--reason", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        endpoint = get_or_refuse(Endpoint.objects, "endpoint", name=options["endpoint"])
        release = get_or_refuse(Release.objects, "release", name=options["release"])
        deployment = services.record_deployment(
            endpoint, release, by=by, source=Deployment.Source.CLI, reason=options["reason"]
        )
        self.stdout.write(
            f"{release.name} live on {endpoint.name} since {deployment.deployed_at:%Y-%m-%d %H:%M:%S} UTC"
        )
