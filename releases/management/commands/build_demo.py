from __future__ import annotations

import gc
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command

from lineage_site.env import env_str
from releases.demo.story import PEOPLE
from releases.demo.world import build
from releases.errors import LineageError
from releases.management.base import ServiceCommand
from releases.sync.state import SourceBusy, SourceUnavailable

DEFAULT_PASSWORD = "lineage-demo"  # noqa: S105 - demo only, printed to the person running it


class Command(ServiceCommand):
    help = (
        "Build the demo world of the product story (idempotent): a git repository and an MLflow store are "
        "written, synced, then released, approved and deployed, each step at its moment over three weeks. "
        "Prints the logins."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--root", default=str(settings.VAR_DIR / "demo"), help="where the git repo, data files and MLflow store go"
        )
        parser.add_argument(
            "--migrate",
            action="store_true",
            help="migrate the database first, in the same process (`make demo` does: Django starts once)",
        )

    def run_from_argv(self, argv: list[str]) -> None:
        # From the command line this is a one-off process that ends with some 400,000 objects alive
        # (MLflow, pandas, Django's models). At Python's default threshold the cyclic collector runs
        # some 1,400 times over them, a sixth of the build's processor time; after every 50,000 new
        # objects, a few dozen times. (call_command, as in the tests, leaves the process's collector be.)
        gc.set_threshold(50_000)
        super().run_from_argv(argv)
        # The process ends here, and its last act would be collecting them all once more: a second of a
        # busy 2-core machine. Frozen, they are left to the process's end. Every transaction is
        # committed, and Django has closed its connections.
        gc.freeze()

    def handle(self, *args: Any, **options: Any) -> None:
        password = env_str("DEMO_PASSWORD", DEFAULT_PASSWORD)
        if options["migrate"]:
            call_command("migrate", interactive=False, verbosity=options["verbosity"])
        try:
            build(password=password, root=Path(options["root"]), say=self.stdout.write)
        except (SourceUnavailable, SourceBusy) as exc:
            raise self.fail(f"the demo could not sync: {exc}") from exc
        except LineageError as exc:
            # Typically a database left by an older demo that does not match this one.
            raise self.fail(f"{exc.message} (to build the demo afresh, remove {settings.VAR_DIR})") from exc
        self.stdout.write("")
        self.stdout.write(f"Log in at http://127.0.0.1:{env_str('PORT', '8000')}/ as any of:")
        for username, first, last, roles, _ in PEOPLE:
            self.stdout.write(f"  {username:<8} {first} {last:<8} ({', '.join(roles)})")
        shown = password if password == DEFAULT_PASSWORD else "(the value of DEMO_PASSWORD)"
        self.stdout.write(f"Password for all: {shown}")
