from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import signing, verifier
from audit.models import VerificationRun
from audit.verification import record_run, verify_log

_FINGERPRINT = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


class Command(BaseCommand):
    help = (
        "Check the audit log against its signed checkpoints: each checkpoint's signature, the Merkle root "
        "recomputed from the events at its size, the hash chain, and consistency from each checkpoint to the "
        "next. Exit 0 intact, 1 naming the first broken sequence number and the checkpoint it contradicts, "
        "2 on bad usage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--key",
            help="The trusted log key: a note verifier key (name+hash+base64) or the key's SHA-256 fingerprint, "
            "which must then be the server's key. Default: the server's own signing key.",
        )
        parser.add_argument(
            "--checkpoints",
            action="append",
            type=Path,
            default=[],
            metavar="FILE",
            help="A checkpoint log kept outside the database (signed notes); may be repeated. "
            "LINEAGE_CHECKPOINT_LOG is always read when it exists.",
        )
        parser.add_argument(
            "--incremental",
            action="store_true",
            help="Resume from the last checkpoint a run found intact instead of walking the whole log.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        log_key = self._trusted_key(options["key"])
        files = [settings.LINEAGE_CHECKPOINT_LOG, *options["checkpoints"]]
        report = verify_log(log_key, checkpoint_logs=dict.fromkeys(files), incremental=options["incremental"])
        record_run(report, trigger=VerificationRun.Trigger.COMMAND, incremental=options["incremental"])
        for note in report.notes:
            self.stdout.write(note)
        if not report.ok:
            where = f" at #{report.broken_seq}" if report.broken_seq is not None else ""
            self.stderr.write(f"audit log broken{where}: {report.problem}")
            raise SystemExit(1)
        since = f" since checkpoint {report.resumed_from}" if report.resumed_from is not None else ""
        self.stdout.write(f"audit log intact: {report.events} events verified{since}")
        if report.checkpoints:
            self.stdout.write(
                f"checkpoints: {report.checkpoints} signed by key {verifier.key_fingerprint(log_key)}, "
                f"the newest at size {report.newest}"
            )
        else:
            self.stdout.write("checkpoints: none yet (manage.py audit_checkpoint signs one)")
        self.stdout.write(f"not yet checkpointed: {report.pending}")

    def _trusted_key(self, given: str | None) -> bytes:
        own = signing.public_key_raw()
        if not given:
            return own
        fingerprint = _FINGERPRINT.match(given.strip().lower())
        if fingerprint:
            if fingerprint.group(1) != verifier.key_fingerprint(own):
                # Not a usage error: the log is signed by a key the auditor does not trust.
                self.stderr.write(
                    f"audit log not trusted: the server signs with key {verifier.key_fingerprint(own)}, "
                    f"not the trusted {fingerprint.group(1)}"
                )
                raise SystemExit(1)
            return own
        try:
            return verifier.parse_verifier_key(given).public_key
        except verifier.VerificationError as exc:
            raise CommandError(f"--key: {exc}", returncode=2) from exc
