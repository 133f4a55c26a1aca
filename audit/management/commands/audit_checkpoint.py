from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.checkpoints import issue_checkpoint


class Command(BaseCommand):
    help = "Sign a checkpoint (Merkle root) of the audit log as it stands now."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = issue_checkpoint()
        self.stdout.write(f"checkpoint {checkpoint.origin} size {checkpoint.size} root {checkpoint.root_hash}")
        self.stdout.write(checkpoint.cosigned_note(), ending="")
