from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from audit.log import SystemActor
from releases import services
from releases.management.base import ServiceCommand, whole_number_argument


class Command(ServiceCommand):
    help = "Add an MLflow tracking server to sync from."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name")
        parser.add_argument("tracking_uri")
        parser.add_argument("--ui-url", default="", help="base URL of the MLflow UI for links (default: the URI)")
        parser.add_argument("--interval", type=whole_number_argument(), help="seconds between periodic syncs")

    def handle(self, *args: Any, **options: Any) -> None:
        state = services.add_mlflow_server(
            name=options["name"],
            tracking_uri=options["tracking_uri"],
            ui_url=options["ui_url"],
            interval_seconds=options["interval"],
            by=SystemActor("cli"),
        )
        self.stdout.write(
            f"MLflow server {state.source_name} at {state.source_location}; "
            f"sync it with: manage.py sync --source {state.source_name}"
        )
