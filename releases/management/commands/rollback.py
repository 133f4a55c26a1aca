from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from releases import services
from releases.management.base import ServiceCommand
from releases.models import Deployment, Endpoint
from releases.models.base import get_or_refuse


class Command(ServiceCommand):
    help = "Roll an endpoint back to its rollback target, with a reason."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("endpoint")
        parser.add_argument("--reason", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        endpoint = get_or_refuse(Endpoint.objects, "endpoint", name=options["endpoint"])
        deployment = services.roll_back(endpoint, by=by, reason=options["reason"], source=Deployment.Source.CLI)
        self.stdout.write(f"{endpoint.name} rolled back to {deployment.release.name}")
