from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.checkpoints import issue_checkpoint
from audit.log import LogBroken


class Command(BaseCommand):
    help = (
        "Sign a checkpoint (Merkle root) of the audit log as it stands now and print it as a signed note. "
        "Exit 1, signing nothing, when the events added since the last checkpoint are broken."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            checkpoint = issue_checkpoint()
        except LogBroken as broken:
            self.stderr.write(f"audit log broken at #{broken.seq}: {broken.problem}; no checkpoint signed")
            raise SystemExit(1) from broken
        self.stdout.write(f"checkpoint {checkpoint.origin} size {checkpoint.size} root {checkpoint.root_hash}")
        self.stdout.write(checkpoint.cosigned_note(), ending="")
