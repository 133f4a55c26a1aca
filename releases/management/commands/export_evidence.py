from __future__ import annotations

import os
import tempfile
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
        parser.add_argument("--force", action="store_true", help="replace an existing .zip at --out")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        release = get_or_refuse(Release.objects, "release", name=options["release"])
        out, force = Path(options["out"]), options["force"]
        directory = self._checked(out, force=force)
        # Open the file before exporting: an export is an audit event and a checkpoint, so a bundle that
        # cannot be written must be refused before either is recorded, not after.
        try:
            handle, part = tempfile.mkstemp(dir=directory, prefix=".evidence-", suffix=".part")
        except OSError as exc:
            raise self.fail(f"cannot write to {directory}: {exc.strerror or exc}") from exc
        try:
            with os.fdopen(handle, "wb") as file:
                filename, data = export_evidence(release, by=by)
                file.write(data)
            target = out if out.suffix == ".zip" else directory / filename
            if target.exists() and not force:
                raise self.fail(f"{target} already exists; use --force to replace it")
            os.replace(part, target)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise
        self.stdout.write(f"{target} ({len(data)} bytes)")
        self.stdout.write(f"verify it with: python verify.py --key {signing.fingerprint()} {target}")

    def _checked(self, out: Path, *, force: bool) -> Path:
        """The directory the bundle goes to, once ``--out`` is known to be a place it may be written."""
        if out.suffix != ".zip":
            if not out.is_dir():
                raise self.fail(f"{out} is not a directory (give a directory or a .zip path)")
            return out
        if not out.parent.is_dir():
            raise self.fail(f"{out.parent} is not a directory")
        if out.is_dir():
            raise self.fail(f"{out} is a directory, not a file")
        if out.exists() and not force:
            raise self.fail(f"{out} already exists; use --force to replace it")
        return out.parent
