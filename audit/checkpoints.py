"""Signed checkpoints of the audit log and inclusion proofs against them."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import merkle, signing
from audit.models import AuditEvent, Checkpoint


def leaf_hashes(size: int) -> list[bytes]:
    """Leaf hashes of the first ``size`` events, in sequence order."""
    hashes = AuditEvent.objects.filter(seq__lte=size).order_by("seq").values_list("hash", flat=True)
    return [merkle.leaf_hash(bytes.fromhex(h)) for h in hashes.iterator(chunk_size=5000)]


def key_id() -> str:
    return hashlib.sha256(signing.public_key_pem().encode()).hexdigest()[:16]


def issue_checkpoint() -> Checkpoint:
    """Sign the root of the whole log as it stands (reusing the checkpoint if nothing was added)."""
    with transaction.atomic():
        size = AuditEvent.objects.count()
        existing = Checkpoint.objects.filter(size=size).first()
        if existing is not None:
            return existing
        checkpoint = Checkpoint(
            size=size,
            root_hash=merkle.root(leaf_hashes(size)).hex(),
            origin=settings.LINEAGE_AUDIT_ORIGIN,
            issued_at=timezone.now(),
            key_id=key_id(),
        )
        checkpoint.signature = signing.sign(checkpoint.note())
        try:
            with transaction.atomic():
                checkpoint.save()
        except IntegrityError:
            # Another worker signed the same size a moment ago; theirs is as good as ours.
            return Checkpoint.objects.get(size=size)
        return checkpoint


def inclusion_proofs(seqs: list[int], checkpoint: Checkpoint) -> dict[int, list[str]]:
    """Proof (hex sibling hashes) that each event ``seq`` is in the tree the checkpoint signed."""
    leaves = leaf_hashes(checkpoint.size)
    return {seq: [h.hex() for h in merkle.inclusion_proof(seq - 1, leaves)] for seq in seqs}
