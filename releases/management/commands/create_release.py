from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from releases import services
from releases.management.base import ServiceCommand


class Command(ServiceCommand):
    help = "Create a release of a registered model version (optionally submitting it for approval)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("name", help="release name, e.g. churn-v42")
        parser.add_argument("--model-version", required=True, metavar="MODEL/VERSION")
        parser.add_argument("--commit", default="")
        parser.add_argument("--tag", default="")
        parser.add_argument("--validation-report", default="", metavar="URI")
        parser.add_argument("--submit", action="store_true", help="submit for approval right away")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        release, created = services.create_release(
            name=options["name"],
            model_version=options["model_version"],
            commit=options["commit"],
            git_tag=options["tag"],
            validation_report_uri=options["validation_report"],
            submit=options["submit"],
            by=by,
        )
        self.stdout.write(f"{release.name} {'created' if created else 'already exists'} ({release.state})")
