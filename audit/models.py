from __future__ import annotations

import hashlib
import json
from json import encoder as json_encoder
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
        return event_digest(self.hashed_fields())


def event_digest(fields: dict[str, Any]) -> str:
    """An event's hash: SHA-256 of the canonical JSON of its hashed fields (``AuditEvent.hashed_fields``)."""
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_STRING = json_encoder.encode_basestring  # what _CANONICAL writes a string as
# The C encoder json.dumps itself uses, made once rather than on every call: a third of the time.
_MAKE_ENCODER = getattr(json_encoder, "c_make_encoder", None)
_C_ENCODE = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(None, _CANONICAL.default, _STRING, None, ":", ",", True, False, True)
)


def _value(value: Any) -> str:
    """``value`` as canonical JSON (the same text ``canonical_json`` gives for JSON values)."""
    if _C_ENCODE is None:
        return _CANONICAL.encode(value)
    return "".join(_C_ENCODE(value, 0))


def stored_event_digest(
    seq: int,
    at: str,
    actor: str,
    action: str,
    object_type: str,
    object_key: str,
    old: Any,
    new: Any,
    reason: str,
    request_id: str,
    prev_hash: str,
) -> str:
    """``event_digest`` of an event read back as plain values (``at`` already in ISO form, old and new as
    loaded from JSON), without building the dict: the verifier's hot loop over a million events.

    The same bytes as ``canonical_json(hashed_fields())``: keys in sorted order, strings and JSON values
    written by the same encoder. tests/unit/test_audit.py holds the two to each other.
    """
    text = (
        f'{{"action":{_STRING(action)},"actor":{_STRING(actor)},"at":{_STRING(at)},'
        f'"new":{"null" if new is None else _value(new)},'
        f'"object_key":{_STRING(object_key)},"object_type":{_STRING(object_type)},'
        f'"old":{"null" if old is None else _value(old)},'
        f'"prev_hash":{_STRING(prev_hash)},"reason":{_STRING(reason)},"request_id":{_STRING(request_id)},'
        f'"seq":{seq}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()


class Checkpoint(models.Model):
    """A signed statement of the log's Merkle root at a size: the log cannot later be rewritten unnoticed.

    ``note`` is the checkpoint as a C2SP signed note (c2sp.org/tlog-checkpoint): origin, size and
    base64 root, a blank line, then the log's Ed25519 signature line. Checkpoints issued before notes
    existed keep an empty note and a hex signature over ``legacy_message``.
    """

    size = models.PositiveBigIntegerField(unique=True)
    root_hash = models.CharField(max_length=64)
    origin = models.CharField(max_length=200)
    issued_at = models.DateTimeField()
    key_id = models.CharField(max_length=16, help_text="First 16 hex of the signing key's SHA-256 fingerprint.")
    signature = models.CharField(max_length=128)
    note = models.TextField(blank=True, help_text="The checkpoint as a signed note, exactly as signed and served.")

    class Meta:
        ordering = ["-size"]
        triggers = [
            pgtriggers.Protect(name="checkpoint_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("checkpoint_no_truncate", "checkpoints are append-only"),
        ]

    def __str__(self) -> str:
        return f"{self.origin} @ {self.size}"

    def legacy_message(self) -> bytes:
        """What checkpoints signed before they were notes: origin, size and hex root, one per line."""
        return f"{self.origin}\n{self.size}\n{self.root_hash}\n".encode()

    def cosigned_note(self, cosignatures: list[Cosignature] | None = None) -> str:
        """The note with the witnesses' signature lines after the log's own."""
        found = sorted(self.cosignatures.all(), key=lambda c: c.pk) if cosignatures is None else cosignatures
        return self.note + "".join(c.signature_line for c in found)


class Cosignature(models.Model):
    """A witness's signature line on a checkpoint: it checked this checkpoint extends the last one it saw."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.PROTECT, related_name="cosignatures")
    witness_key = models.CharField(max_length=300, help_text="The witness's note verifier key.")
    signature_line = models.TextField()
    added_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "witness_key"], name="one_cosignature_per_witness"),
        ]
        triggers = [
            pgtriggers.Protect(name="cosignature_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("cosignature_no_truncate", "witness cosignatures are append-only"),
        ]

    def __str__(self) -> str:
        return f"{self.witness_key.partition('+')[0]} on {self.checkpoint}"


class TreeNode(models.Model):
    """The hash of one complete subtree of the log's Merkle tree: leaves [index * 2**level, (index + 1) * 2**level).

    Written once, when a checkpoint first covers the subtree, so a root or a proof at any size is a
    handful of these, not a pass over every event. Derived data: ``audit_verify`` recomputes the tree
    from the events and checks these against the signed roots.
    """

    pk = models.CompositePrimaryKey("level", "index")
    level = models.PositiveSmallIntegerField()
    index = models.PositiveBigIntegerField()
    hash = models.BinaryField(max_length=32)

    class Meta:
        triggers = [
            pgtriggers.Protect(name="treenode_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("treenode_no_truncate", "the stored Merkle tree is append-only"),
        ]

    def __str__(self) -> str:
        return f"subtree {self.level}/{self.index}"


class Verification(models.Model):
    """A run of ``audit_verify`` that found the log intact up to a checkpoint: where the next run may resume.

    ``edge`` is the log's Merkle tree's right edge at that size (hex hashes of its complete subtrees,
    largest first), whose root is the checkpoint's signed root, and ``head_hash`` the last event's hash.
    """

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.PROTECT, related_name="+")
    size = models.PositiveBigIntegerField()
    edge = models.JSONField()
    head_hash = models.CharField(max_length=64)
    verified_at = models.DateTimeField()
    incremental = models.BooleanField(default=False)

    class Meta:
        ordering = ["-size", "-pk"]
        triggers = [
            pgtriggers.Protect(name="verification_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("verification_no_truncate", "verification runs are append-only"),
        ]

    def __str__(self) -> str:
        return f"verified up to {self.size} at {self.verified_at:%Y-%m-%d %H:%M}"


class VerificationRun(models.Model):
    """Every verification of the log, scheduled or by hand, and what it found. Append-only: a failure
    stays on record after it is acknowledged (``Acknowledgment``)."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        COMMAND = "command"

    ran_at = models.DateTimeField()
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    ok = models.BooleanField()
    events = models.PositiveBigIntegerField(default=0)
    checkpoints = models.PositiveIntegerField(default=0)
    newest_checkpoint = models.PositiveBigIntegerField(default=0)
    pending = models.PositiveBigIntegerField(default=0)
    incremental = models.BooleanField(default=False)
    broken_seq = models.PositiveBigIntegerField(null=True, blank=True)
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-ran_at", "-pk"]
        indexes = [models.Index(fields=["ok", "ran_at"], name="verification_run_ok_idx")]
        triggers = [
            pgtriggers.Protect(name="verification_run_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("verification_run_no_truncate", "verification runs are append-only"),
        ]

    def __str__(self) -> str:
        return f"verification {self.ran_at:%Y-%m-%d %H:%M} UTC: {'intact' if self.ok else 'broken'}"


class Acknowledgment(models.Model):
    """An administrator's acknowledgment of a failed verification: the alarm stops, the failure stays."""

    run = models.OneToOneField(VerificationRun, on_delete=models.PROTECT, related_name="acknowledgment")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    note = models.TextField()

    class Meta:
        triggers = [
            pgtriggers.Protect(name="acknowledgment_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("acknowledgment_no_truncate", "acknowledgments are append-only"),
        ]

    def __str__(self) -> str:
        return f"{self.run} acknowledged by {self.by}"
