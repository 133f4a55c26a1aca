from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit import signing


class Command(BaseCommand):
    help = (
        "Print the fingerprint and public key (PEM) of the key that signs approvals, checkpoints and evidence. "
        "Give them to auditors out of band: they pin it with verify.py --key or --key-file."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"fingerprint (sha256 of the DER public key): {signing.fingerprint()}")
        self.stdout.write(f"verify a bundle with: python verify.py --key {signing.fingerprint()} BUNDLE.zip")
        self.stdout.write(signing.public_key_pem().rstrip("\n"))
