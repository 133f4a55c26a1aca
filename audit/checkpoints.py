"""Signed checkpoints of the audit log: issued, copied outside the database, cosigned, and proved against.

A checkpoint is a C2SP signed note (c2sp.org/tlog-checkpoint) of the log's origin, size and Merkle root,
signed with the server's Ed25519 key. Each one is also appended to a file outside the database
(``LINEAGE_CHECKPOINT_LOG``) once its transaction commits, so a database superuser who rewrites the
log and its checkpoint rows still contradicts what was written there, served at /audit/checkpoint,
and cosigned by witnesses.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from audit import log, signing, tree, verifier
from audit.models import Checkpoint, Cosignature
from releases.prepared import PreparedQuery

logger = logging.getLogger(__name__)


def key_id() -> str:
    return signing.fingerprint()[:16]


def issue_checkpoint() -> Checkpoint:
    """Sign the root of the whole log as it stands (reusing the checkpoint if nothing was added).

    Extends the stored tree first, which checks every event added since the last checkpoint, and
    proves the new tree extends the last signed one: a log found broken, or rewritten under the last
    checkpoint (``log.LogBroken``), is not signed.
    """
    with transaction.atomic():
        size = log.last_seq()
        existing = Checkpoint.objects.filter(size=size).first()
        if existing is not None:
            return existing
        tree.extend(size)
        body = verifier.CheckpointBody(settings.LINEAGE_AUDIT_ORIGIN, size, tree.root(size))
        _check_extends_previous(body)
        note = signing.sign_note(body.text())
        checkpoint = Checkpoint(
            size=size,
            root_hash=body.root.hex(),
            origin=body.origin,
            issued_at=timezone.now(),
            key_id=key_id(),
            signature=verifier.parse_note(note).signatures[0].signature.hex(),
            note=note,
        )
        try:
            with transaction.atomic():
                checkpoint.save()
        except IntegrityError:
            # Another worker signed the same size a moment ago; theirs is as good as ours.
            return Checkpoint.objects.get(size=size)
        # After commit: the file must never hold a checkpoint the database rolled back.
        transaction.on_commit(functools.partial(append_to_log, note), robust=True)
        return checkpoint


def _check_extends_previous(body: verifier.CheckpointBody) -> None:
    """The server never signs a tree that does not extend its own last signed checkpoint."""
    previous = Checkpoint.objects.filter(size__lt=body.size).exclude(note="").order_by("-size").first()
    if previous is None or previous.size == 0:
        return
    # The root as signed, not as the row says: the row is as writable as the events.
    signed, _ = verifier.open_checkpoint(previous.note, signing.public_key_raw())
    proof = tree.consistency_proof(signed.size, body.size)
    if not verifier.verify_consistency(signed.size, body.size, signed.root, body.root, proof):
        raise log.LogBroken(
            signed.size,
            f"the log no longer extends checkpoint {signed.size}: events up to #{signed.size} were rewritten",
        )


def latest() -> Checkpoint | None:
    """The newest checkpoint issued as a signed note."""
    return _LATEST.first()


# On every page that shows the log's integrity: compiled once (releases/prepared.py).
_LATEST = PreparedQuery(lambda: Checkpoint.objects.exclude(note="").order_by("-size")[:1])


def append_to_log(note: str, path: Path | None = None) -> None:
    """Append one signed note, and a blank line, to the checkpoint log outside the database."""
    target = path or settings.LINEAGE_CHECKPOINT_LOG
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # One write: two processes appending at once cannot interleave inside a note.
        os.write(fd, (note + "\n").encode())
    finally:
        os.close(fd)


def read_log(path: Path) -> list[str]:
    """The signed notes in a checkpoint log (as ``append_to_log`` writes them), oldest first."""
    blocks = path.read_text(encoding="utf-8").split("\n\n")
    if blocks and blocks[-1] == "":
        blocks.pop()
    if len(blocks) % 2:
        raise verifier.VerificationError(f"{path}: the last checkpoint is cut short")
    return [f"{blocks[i]}\n\n{blocks[i + 1]}\n" for i in range(0, len(blocks), 2)]


def inclusion_proofs(seqs: list[int], checkpoint: Checkpoint) -> dict[int, str]:
    """A c2sp.org/tlog-proof for each event ``seq``: its inclusion in the tree the checkpoint signed."""
    note = checkpoint.cosigned_note()
    paths = tree.inclusion_proofs([seq - 1 for seq in seqs], checkpoint.size)
    return {seq: verifier.format_tlog_proof(seq - 1, paths[seq - 1], note) for seq in seqs}


def consistency_proof(old: int, new: int) -> list[str]:
    """The RFC 6962 consistency proof from size ``old`` to size ``new``, base64 hashes."""
    return [base64.b64encode(h).decode() for h in tree.consistency_proof(old, new)]


class CosignatureRefused(Exception):
    pass


def add_cosignature(checkpoint: Checkpoint, *, witness_key: str, signature_line: str) -> Cosignature:
    """Keep a witness's signature line with the checkpoint it signed; the same one twice is kept once."""
    key = verifier.parse_verifier_key(witness_key)
    try:
        _, signed = verifier.verify_note(checkpoint.note + signature_line, [key])
    except verifier.VerificationError as exc:
        raise CosignatureRefused(str(exc)) from exc
    if key not in signed or signature_line.count("\n") != 1:
        raise CosignatureRefused(f"not one signature line by {key.name} on checkpoint {checkpoint.size}")
    existing = Cosignature.objects.filter(checkpoint=checkpoint, witness_key=key.vkey).first()
    if existing is not None:
        return existing
    return Cosignature.objects.create(
        checkpoint=checkpoint, witness_key=key.vkey, signature_line=signature_line, added_at=timezone.now()
    )


@dataclass(frozen=True)
class Witnessed:
    """A cosigned checkpoint and the proof that the checkpoint a bundle is anchored on extends it."""

    checkpoint: Checkpoint
    consistency_proof: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint.cosigned_note(), "consistency_proof": self.consistency_proof}


def witnessed_before(anchor: Checkpoint) -> list[Witnessed]:
    """For each witness, the newest checkpoint it cosigned up to ``anchor``, with a proof to ``anchor``."""
    sizes = set(
        Cosignature.objects.filter(checkpoint__size__lte=anchor.size)
        .values("witness_key")
        .annotate(newest=Max("checkpoint__size"))
        .values_list("newest", flat=True)
    )
    found = Checkpoint.objects.filter(size__in=sizes).prefetch_related("cosignatures").order_by("size")
    return [Witnessed(checkpoint, consistency_proof(checkpoint.size, anchor.size)) for checkpoint in found]
