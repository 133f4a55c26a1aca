from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from audit import pgtriggers


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove an audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events are append-only; they cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only; they cannot be deleted.")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder, ensure_ascii=False)


class AuditEvent(models.Model):
    """One entry of the tamper-evident log. Each carries the hash of the one before."""

    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    at = models.DateTimeField(editable=False)
    actor = models.CharField(max_length=150, editable=False, help_text="Username, service account or system job.")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    action = models.CharField(max_length=80, editable=False)
    object_type = models.CharField(max_length=40, editable=False)
    object_key = models.CharField(max_length=255, editable=False)
    old = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder, editable=False)
    new = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder, editable=False)
    reason = models.TextField(blank=True, editable=False)
    request_id = models.CharField(max_length=64, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["object_type", "object_key", "seq"], name="audit_object_idx"),
            models.Index(fields=["action", "seq"], name="audit_action_idx"),
            models.Index(fields=["at"], name="audit_at_idx"),
        ]
        triggers = [
            pgtriggers.Protect(name="audit_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("audit_no_truncate", "audit events are append-only"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type}:{self.object_key}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Audit events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only; they cannot be deleted.")

    def hashed_fields(self) -> dict[str, Any]:
        """What the hash covers: everything that states what happened, plus the link to the past."""
        # Round-trip old/new through JSON so a value hashes the same before and after storage.
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_key": self.object_key,
            "old": json.loads(canonical_json(self.old)),
            "new": json.loads(canonical_json(self.new)),
            "reason": self.reason,
            "request_id": self.request_id,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.hashed_fields()).encode()).hexdigest()


class Checkpoint(models.Model):
    """A signed statement of the log's Merkle root at a size: the log cannot later be rewritten unnoticed."""

    size = models.PositiveBigIntegerField(unique=True)
    root_hash = models.CharField(max_length=64)
    origin = models.CharField(max_length=200)
    issued_at = models.DateTimeField()
    key_id = models.CharField(max_length=16, help_text="First 16 hex of the signing key's SHA-256 fingerprint.")
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["-size"]
        triggers = [
            pgtriggers.Protect(name="checkpoint_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("checkpoint_no_truncate", "checkpoints are append-only"),
        ]

    def __str__(self) -> str:
        return f"{self.origin} @ {self.size}"

    def note(self) -> bytes:
        """The signed text: origin, tree size and root, one per line (a transparency-log checkpoint)."""
        return f"{self.origin}\n{self.size}\n{self.root_hash}\n".encode()
