"""Writing to and checking the audit log. The only code that creates AuditEvent rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, transaction
from django.utils import timezone

from audit import context, pgcopy, vocabulary
from audit.models import AuditEvent, canonical_json

GENESIS_HASH = "0" * 64
# Arbitrary constant naming the PostgreSQL advisory lock that serialises appends.
_APPEND_LOCK_KEY = 7_342_001


@dataclass(frozen=True)
class SystemActor:
    """A non-human actor: a sync job, the demo builder, a webhook."""

    name: str

    def __str__(self) -> str:
        return self.name


Actor = User | AnonymousUser | SystemActor


def actor_label(actor: Actor) -> str:
    if isinstance(actor, SystemActor):
        return actor.name
    if isinstance(actor, AnonymousUser) or not actor.is_authenticated:
        return "anonymous"
    return actor.get_username()


def record(
    action: str,
    *,
    actor: Actor,
    subject: Any = None,
    object_type: str = "",
    object_key: str = "",
    old: Any = None,
    new: Any = None,
    reason: str = "",
) -> AuditEvent:
    """Append one event, chained to the previous one. Must run inside the caller's transaction.

    The event is about ``subject`` (named by ``vocabulary.object_ref``), or about an object given by
    type and key when there is no row to name (a webhook, a source being added).
    """
    vocabulary.check(action)
    if subject is not None:
        object_type, object_key = vocabulary.object_ref(subject)
    if not object_type:
        raise ValueError(f"an audit event ({action}) must name what it is about")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit events must be written inside the transaction of the change they record")
    if connection.vendor == "postgresql":
        # Two writers must not read the same "last event": serialise appends until commit.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPEND_LOCK_KEY])
    last = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
    user = actor if isinstance(actor, User) else None
    event = AuditEvent(
        seq=(last["seq"] + 1) if last else 1,
        at=timezone.now(),
        actor=actor_label(actor),
        actor_user=user,
        action=action,
        object_type=object_type,
        object_key=object_key,
        old=old,
        new=new,
        reason=reason,
        request_id=context.request_id.get(),
        prev_hash=last["hash"] if last else GENESIS_HASH,
    )
    event.hash = event.compute_hash()
    event.save()
    return event


@dataclass(frozen=True)
class PendingEvent:
    """One event of a batch for ``record_many``: the same fields ``record`` takes."""

    action: str
    object_type: str
    object_key: str
    old: Any = None
    new: Any = None
    reason: str = ""


def record_many(events: list[PendingEvent], *, actor: Actor) -> list[AuditEvent]:
    """Append several events by one actor in order, chained exactly as ``record`` chains them.

    A sync that writes a thousand runs in one transaction owes a thousand events; taking the
    append lock and reading the last event once, then inserting them in one statement, keeps
    the log's cost per run small. Must run inside the caller's transaction.
    """
    if not events:
        return []
    for pending in events:
        vocabulary.check(pending.action)
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit events must be written inside the transaction of the change they record")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPEND_LOCK_KEY])
    last = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
    seq = last["seq"] if last else 0
    prev_hash = last["hash"] if last else GENESIS_HASH
    user = actor if isinstance(actor, User) else None
    label = actor_label(actor)
    request_id = context.request_id.get()
    at = timezone.now()
    rows: list[AuditEvent] = []
    for pending in events:
        seq += 1
        event = AuditEvent(
            seq=seq,
            at=at,
            actor=label,
            actor_user=user,
            action=pending.action,
            object_type=pending.object_type,
            object_key=pending.object_key,
            old=pending.old,
            new=pending.new,
            reason=pending.reason,
            request_id=request_id,
            prev_hash=prev_hash,
        )
        event.hash = prev_hash = event.compute_hash()
        rows.append(event)
    if connection.vendor != "postgresql":
        return AuditEvent.objects.bulk_create(rows, batch_size=500)
    _copy_events(rows)
    ids = dict(AuditEvent.objects.filter(seq__gte=rows[0].seq, seq__lte=rows[-1].seq).values_list("seq", "pk"))
    for event in rows:
        event.pk = ids[event.seq]
        event._state.adding = False
    return rows


_EVENT_COLUMNS = (
    "seq",
    "at",
    "actor",
    "actor_user",
    "action",
    "object_type",
    "object_key",
    "old",
    "new",
    "reason",
    "request_id",
    "prev_hash",
    "hash",
)


def _copy_events(rows: list[AuditEvent]) -> None:
    """PostgreSQL COPY of a batch of events: a thousand rows cost a fraction of an INSERT's time.

    old and new go in as the JSON their hash was computed over, so what is stored is what was hashed.
    """
    pgcopy.copy_rows(
        AuditEvent,
        _EVENT_COLUMNS,
        (
            (
                event.seq,
                event.at,
                event.actor,
                event.actor_user_id,
                event.action,
                event.object_type,
                event.object_key,
                None if event.old is None else canonical_json(event.old),
                None if event.new is None else canonical_json(event.new),
                event.reason,
                event.request_id,
                event.prev_hash,
                event.hash,
            )
            for event in rows
        ),
    )


@dataclass(frozen=True)
class VerifyResult:
    count: int
    broken_seq: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def _walk(batch_size: int = 2000) -> Iterator[AuditEvent]:
    last_seq = 0
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=last_seq).order_by("seq")[:batch_size])
        if not batch:
            return
        yield from batch
        last_seq = batch[-1].seq


def verify_chain() -> VerifyResult:
    """Re-walk the whole log: sequence without gaps, each hash recomputed, each link intact."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for event in _walk():
        if event.seq != expected_seq:
            return VerifyResult(count, expected_seq, f"event #{expected_seq} is missing (next found is #{event.seq})")
        if event.prev_hash != expected_prev:
            return VerifyResult(count, event.seq, f"event #{event.seq} does not link to event #{event.seq - 1}")
        if event.compute_hash() != event.hash:
            return VerifyResult(count, event.seq, f"event #{event.seq} was changed after it was written")
        expected_prev = event.hash
        expected_seq += 1
        count += 1
    return VerifyResult(count)
