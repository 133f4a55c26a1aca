from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from audit import signing
from releases.evidence import export_evidence
from releases.management.base import ServiceCommand
from releases.models import Release
from releases.models.base import get_or_refuse


class Command(ServiceCommand):
    help = "Write the signed evidence bundle (zip) of a release; verify it offline with your own verify.py."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("release")
        parser.add_argument("--out", default=".", help="directory (or .zip path) to write to")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        release = get_or_refuse(Release.objects, "release", name=options["release"])
        filename, data = export_evidence(release, by=by)
        out = Path(options["out"])
        target = out if out.suffix == ".zip" else out / filename
        if not target.parent.is_dir():
            raise self.fail(f"{target.parent} is not a directory")
        target.write_bytes(data)
        self.stdout.write(f"{target} ({len(data)} bytes)")
        self.stdout.write(f"verify it with: python verify.py --key {signing.fingerprint()} {target}")
