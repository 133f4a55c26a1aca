from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from releases.management.base import ServiceCommand
from releases.models import SyncState
from releases.sync import sources
from releases.sync.state import SourceBusy, SourceUnavailable


class Command(ServiceCommand):
    help = "Sync Git repositories and MLflow servers now (all, or one with --source) and print what changed."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--source", metavar="NAME", help="only this repository or tracking server")
        parser.add_argument("--full", action="store_true", help="re-read every MLflow run, not only recent ones")

    def handle(self, *args: Any, **options: Any) -> None:
        states = [sources.state_named(options["source"])] if options["source"] else list(SyncState.objects.listed())
        if not states:
            raise self.fail("no sources configured: add one with add_git_repository or add_mlflow_server")
        failed = []
        for state in states:
            try:
                result = sources.sync_state(state, full=options["full"])
            except (SourceUnavailable, SourceBusy) as exc:
                self.stderr.write(f"{state.kind} {state.source_name}: {exc}")
                failed.append(state.source_name)
                continue
            self.stdout.write(f"{state.kind} {state.source_name}: {result.summary()}")
            for warning in result.warnings:
                self.stdout.write(f"  warning: {warning}")
        if failed:
            raise self.fail(f"sync failed for {', '.join(failed)}")
