from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from releases import services
from releases.management.base import ServiceCommand


class Command(ServiceCommand):
    help = "Quarantine a dataset version (NAME:VERSION) and list what it affects."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("key", metavar="NAME:VERSION")
        parser.add_argument("--reason", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        version = self.dataset_version(options["key"])
        impact = services.quarantine_dataset_version(version, by=by, reason=options["reason"])
        self.stdout.write(f"{version.key} quarantined")
        self.stdout.write(f"  runs: {', '.join(r.name or r.run_id for r in impact.runs) or 'none'}")
        self.stdout.write(f"  model versions: {', '.join(m.key for m in impact.model_versions) or 'none'}")
        self.stdout.write(f"  releases: {', '.join(r.name for r in impact.releases) or 'none'}")
        self.stdout.write(f"  live on: {', '.join(e.name for e in impact.live_endpoints) or 'none'}")
