from __future__ import annotations

import os
import tempfile
from argparse import ArgumentParser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User

from audit import signing
from releases import lineage
from releases.evidence import export_evidence, export_period_evidence
from releases.management.base import ServiceCommand
from releases.models import Release
from releases.models.base import get_or_refuse
from releases.views.params import BadParameter, parse_bound


class Command(ServiceCommand):
    help = (
        "Write the signed evidence bundle (zip) of a release, or of a period with --from and --to (every "
        "deployment and rollback in it, with each release's record); verify it offline with your own verify.py."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("release", nargs="?", help="the release to export (or give a period instead)")
        parser.add_argument(
            "--from", dest="since", metavar="DAY", help="start of the period: YYYY-MM-DD (from midnight UTC)"
        )
        parser.add_argument(
            "--to", dest="until", metavar="DAY", help="end of the period: YYYY-MM-DD (that day included)"
        )
        parser.add_argument(
            "--environment",
            action="append",
            default=[],
            help="environment whose endpoints count (repeat for several; default production)",
        )
        parser.add_argument("--out", default=".", help="directory (or .zip path) to write to")
        parser.add_argument("--force", action="store_true", help="replace an existing .zip at --out")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        export = self._export(options)
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
                filename, data = export(by)
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

    def _export(self, options: dict[str, Any]) -> Callable[[User], tuple[str, bytes]]:
        """What to export, from the arguments: a release, or a period (checked before anything is written)."""
        period_given = options["since"] or options["until"] or options["environment"]
        if options["release"]:
            if period_given:
                raise self.fail("give either a release or a period (--from, --to, --environment), not both")
            release = get_or_refuse(Release.objects, "release", name=options["release"])
            return lambda by: export_evidence(release, by=by)
        if not (options["since"] and options["until"]):
            raise self.fail("give a release, or a period with both --from and --to (YYYY-MM-DD)")
        try:
            since = parse_bound(options["since"], end=False)
            until = parse_bound(options["until"], end=True)
        except BadParameter as bad:
            raise self.fail(str(bad)) from bad
        period = lineage.Period.checked(since, until)
        chosen = lineage.environments(options["environment"])

        def progress(done: int, total: int) -> None:
            if done == total or done % 50 == 0:
                self.stderr.write(f"{done}/{total} releases read")

        return lambda by: export_period_evidence(period, chosen, by=by, progress=progress)[:2]

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
