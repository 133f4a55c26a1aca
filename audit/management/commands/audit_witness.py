from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import verifier, witness


class Command(BaseCommand):
    help = (
        "Witness the audit log with your own Ed25519 key: check the newest checkpoint's signature with the "
        "pinned log key and that it extends the last checkpoint this witness cosigned, then add a cosignature. "
        "Exit 0 cosigned, 1 refused (naming why), 2 on bad usage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key-file", type=Path, required=True, help="The witness's Ed25519 private key (PEM).")
        parser.add_argument("--state", type=Path, required=True, help="The witness's own state directory.")
        parser.add_argument(
            "--name", help="The witness's name in its signature line (default: witness-<key fingerprint prefix>)."
        )
        parser.add_argument(
            "--log-key",
            help="The log's note verifier key, obtained out of band. Needed once: it is kept in --state. "
            "Without it the first run trusts the key the log offers.",
        )
        parser.add_argument(
            "--url",
            help="Read the log from its public URLs (https://lineage.example.com) instead of the database.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        key = self._key(options["key_file"])
        name = options["name"] or f"witness-{self._short(key)}"
        if options["log_key"]:
            try:
                verifier.parse_verifier_key(options["log_key"])
            except verifier.VerificationError as exc:
                raise CommandError(f"--log-key: {exc}", returncode=2) from exc
        try:
            source: witness.Source = witness.HttpSource(options["url"]) if options["url"] else witness.DatabaseSource()
            outcome = witness.cosign(
                key=key, name=name, state_dir=options["state"], source=source, log_key=options["log_key"]
            )
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        except (witness.WitnessRefused, OSError) as exc:
            self.stderr.write(f"not cosigned: {exc}")
            raise SystemExit(1) from exc
        if outcome.pinned_now:
            self.stdout.write(f"pinned to log key {outcome.log_key}; compare it with the key you obtained out of band")
        since = f"extends {outcome.previous}" if outcome.previous is not None else "first checkpoint witnessed"
        kept = "kept with the checkpoint in the database" if outcome.stored_in_database else "kept in --state only"
        self.stdout.write(f"cosigned checkpoint {outcome.size} ({since}) as {name}; {kept}")
        self.stdout.write(outcome.note, ending="")

    def _key(self, path: Path) -> Ed25519PrivateKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise CommandError(f"--key-file {path}: {exc}", returncode=2) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise CommandError(f"--key-file {path} is not an Ed25519 private key", returncode=2)
        return key

    def _short(self, key: Ed25519PrivateKey) -> str:
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return verifier.key_fingerprint(raw)[:16]
