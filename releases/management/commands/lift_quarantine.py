from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from releases import services
from releases.management.base import ServiceCommand


class Command(ServiceCommand):
    help = "Lift the quarantine of a dataset version (NAME:VERSION); the approvals it invalidated stay invalid."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("key", metavar="NAME:VERSION")
        parser.add_argument("--reason", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        version = self.dataset_version(options["key"])
        to_sign = services.lift_quarantine(version, by=by, reason=options["reason"])
        self.stdout.write(f"{version.key} quarantine lifted")
        self.stdout.write(f"  to sign again: {', '.join(r.name for r in to_sign) or 'none'}")
