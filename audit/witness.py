"""A witness, run by an auditor with their own Ed25519 key: it cosigns a checkpoint of the log only after
checking that it extends the last checkpoint the witness cosigned.

A log that shows one history to the witness and another later cannot have both cosigned: to rewrite
what a cosigned checkpoint covers it would need a consistency proof that does not exist. The witness
keeps its state in a directory the log's operators do not control:

    log.vkey        the log key the witness is pinned to (given once, or taken from the log on first use)
    checkpoint      the last checkpoint it cosigned, with the log's signature and its own
    cosigned.log    every checkpoint it cosigned, appended one after the other
"""

from __future__ import annotations

import base64
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import DatabaseError

from audit import checkpoints, signing, tree, verifier
from audit.models import Checkpoint


class WitnessRefused(Exception):
    """The checkpoint is not cosigned: bad signature, history rewritten, or the log went back."""


class Source(Protocol):
    """Where the witness reads the log from."""

    def latest_note(self) -> str: ...

    def consistency_proof(self, old: int, new: int) -> list[bytes]: ...

    def offered_key(self) -> str: ...


class DatabaseSource:
    """The log's own database (the witness runs beside the application)."""

    def latest_note(self) -> str:
        checkpoint = checkpoints.latest()
        if checkpoint is None:
            raise WitnessRefused("the log has no signed checkpoint yet")
        return checkpoint.note

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return tree.consistency_proof(old, new)

    def offered_key(self) -> str:
        return signing.note_key().vkey


class HttpSource:
    """The log's public URLs: /audit/checkpoint, /audit/checkpoint/key and /audit/consistency/OLD/NEW."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(f"the log URL must be http or https, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=self.timeout) as response:  # noqa: S310
            return str(response.read().decode("utf-8"))

    def latest_note(self) -> str:
        return self._get("/audit/checkpoint")

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return [base64.b64decode(line) for line in self._get(f"/audit/consistency/{old}/{new}").split()]

    def offered_key(self) -> str:
        return self._get("/audit/checkpoint/key").split("\n", 1)[0]


@dataclass(frozen=True)
class Outcome:
    size: int
    previous: int | None
    note: str
    log_key: str
    pinned_now: bool
    stored_in_database: bool


def witness_key(key: Ed25519PrivateKey, name: str) -> verifier.NoteKey:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return verifier.NoteKey(name, raw)


def cosign(
    *,
    key: Ed25519PrivateKey,
    name: str,
    state_dir: Path,
    source: Source,
    log_key: str | None = None,
    store: bool = True,
) -> Outcome:
    """Check the source's newest checkpoint against the witness's state and cosign it."""
    if not verifier.valid_key_name(name):
        raise ValueError(f"witness name {name!r} must have no spaces and no '+'")
    state_dir.mkdir(parents=True, exist_ok=True)
    pinned_file = state_dir / "log.vkey"
    pinned = pinned_file.read_text().strip() if pinned_file.exists() else None
    if log_key and pinned and log_key.strip() != pinned:
        raise WitnessRefused(f"this witness is pinned to log key {pinned}, not {log_key.strip()}")
    vkey = log_key or pinned or source.offered_key()
    log = verifier.parse_verifier_key(vkey)

    note = source.latest_note()
    try:
        body, parsed = verifier.open_checkpoint(note, log.public_key)
    except verifier.VerificationError as exc:
        raise WitnessRefused(f"the log's newest checkpoint does not verify: {exc}") from exc
    if body.origin != log.name:
        raise WitnessRefused(f"the checkpoint is from log {body.origin!r}, the witness is pinned to {log.name!r}")

    previous = _previous(state_dir / "checkpoint", log)
    if previous is not None:
        _check_extends(previous, body, source)

    own = witness_key(key, name)
    log_line = next(s for s in parsed.signatures if s.name == log.name and s.key_hash == log.key_hash)
    line = signing.note_signature(body.text(), name=name, key=key)
    cosigned = str(verifier.Note(body.text(), (log_line,))) + line

    if pinned is None:
        pinned_file.write_text(log.vkey + "\n")
    if previous is None or previous.size != body.size:
        _replace(state_dir / "checkpoint", cosigned)
        checkpoints.append_to_log(cosigned, state_dir / "cosigned.log")
    stored = store and _store(body, own, line)
    return Outcome(body.size, previous.size if previous else None, cosigned, log.vkey, pinned is None, stored)


def _previous(path: Path, log: verifier.NoteKey) -> verifier.CheckpointBody | None:
    if not path.exists():
        return None
    try:
        body, _ = verifier.open_checkpoint(path.read_text(), log.public_key)
    except verifier.VerificationError as exc:
        raise WitnessRefused(f"the witness state {path} does not hold a checkpoint of this log: {exc}") from exc
    return body


def _check_extends(previous: verifier.CheckpointBody, body: verifier.CheckpointBody, source: Source) -> None:
    if body.size < previous.size:
        raise WitnessRefused(
            f"the log's newest checkpoint (size {body.size}) is older than the one already witnessed "
            f"(size {previous.size}): the log went back"
        )
    if body.size == previous.size:
        if body.root != previous.root:
            raise WitnessRefused(f"the log signed two different trees of size {body.size}: it forked")
        return
    proof = source.consistency_proof(previous.size, body.size)
    if not verifier.verify_consistency(previous.size, body.size, previous.root, body.root, proof):
        raise WitnessRefused(
            f"checkpoint {body.size} does not extend checkpoint {previous.size} the witness cosigned: "
            "the log's history was rewritten"
        )


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".new")
    partial.write_text(text)
    os.replace(partial, path)


def _store(body: verifier.CheckpointBody, own: verifier.NoteKey, line: str) -> bool:
    """Keep the cosignature with the database's checkpoint, when the database holds this very checkpoint."""
    try:
        row = Checkpoint.objects.filter(size=body.size).first()
        if row is None or not row.note or verifier.parse_note(row.note).text != body.text():
            return False
        checkpoints.add_cosignature(row, witness_key=own.vkey, signature_line=line)
    except DatabaseError:
        # A witness reading the public URLs from elsewhere may have no database to write to.
        return False
    return True
