from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from audit.log import SystemActor
from releases import services
from releases.management.base import ServiceCommand, whole_number_argument
from releases.models.credentials import MlflowCredentials


class Command(ServiceCommand):
    help = (
        "Add an MLflow tracking server to sync from. Its credential is named, never given: an environment "
        "variable or a file the worker reads at each sync. Given again for an existing server, credential "
        "options replace its credential."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name")
        parser.add_argument("tracking_uri")
        parser.add_argument("--ui-url", default="", help="base URL of the MLflow UI for links (default: the URI)")
        parser.add_argument("--interval", type=whole_number_argument(), help="seconds between periodic syncs")
        parser.add_argument("--token-env", metavar="NAME", default="", help="environment variable holding a token")
        parser.add_argument("--token-file", metavar="PATH", default="", help="file holding a token")
        parser.add_argument("--username", default="", help="MLflow user (Basic authentication)")
        parser.add_argument("--password-env", metavar="NAME", default="", help="variable holding the password")
        parser.add_argument("--password-file", metavar="PATH", default="", help="file holding the password")
        parser.add_argument("--no-credential", action="store_true", help="remove the server's credential")

    def handle(self, *args: Any, **options: Any) -> None:
        given = MlflowCredentials(
            username=options["username"],
            password_env=options["password_env"],
            password_file=options["password_file"],
            token_env=options["token_env"],
            token_file=options["token_file"],
        )
        if options["no_credential"] and given != MlflowCredentials():
            raise self.fail("--no-credential removes the credential: give it alone, without credential options")
        credentials = given if options["no_credential"] or given != MlflowCredentials() else None
        state = services.add_mlflow_server(
            name=options["name"],
            tracking_uri=options["tracking_uri"],
            ui_url=options["ui_url"],
            interval_seconds=options["interval"],
            credentials=credentials,
            by=SystemActor("cli"),
        )
        self.stdout.write(
            f"MLflow server {state.source_name} at {state.source_location}; "
            f"credential: {state.source_credential or 'none'}; "
            f"sync it with: manage.py sync --source {state.source_name}"
        )
