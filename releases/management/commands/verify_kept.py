from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from releases.lineage import kept
from releases.management.base import whole_number_argument


class Command(BaseCommand):
    help = (
        "Check the facts kept for the pages to read (what is live on each endpoint, where each model's releases "
        "went, each model version's datasets, where each dataset version reached) against the deployments and "
        "run inputs they come from. Exit 0 when every one agrees, 1 naming each that does not, 2 on bad usage."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--limit",
            type=whole_number_argument(most=100_000),
            default=100,
            help="name at most this many disagreeing rows of each fact, each way (default 100)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        facts = kept.check(limit=options["limit"])
        for disagreement in facts.disagreements:
            self.stderr.write(str(disagreement))
        checked = (
            f"what is live on {facts.endpoints} endpoints, {facts.model_endpoints} (model, endpoint), "
            f"{facts.model_version_datasets} (model version, dataset version), "
            f"{facts.dataset_version_endpoints} (dataset version, endpoint)"
        )
        if not facts.agree:
            self.stderr.write(f"kept facts disagree with their rows: {len(facts.disagreements)} ({checked})")
            raise SystemExit(1)
        self.stdout.write(f"kept facts agree with their rows: {checked}")
