"""Writing to and checking the audit log. The only code that creates AuditEvent rows."""

from __future__ import annotations

import datetime
import json
import queue
import threading
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, transaction
from django.utils import timezone

from audit import context, pgcopy, vocabulary
from audit.models import AuditEvent, canonical_json, stored_event_digest
from releases import dispatch

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
    _announce(event)
    return event


def _announce(event: AuditEvent) -> None:
    """Every event whose action is announced outside (``vocabulary.ANNOUNCED``) is announced from here, once
    it commits: one place, whichever service, sync or check recorded it."""
    if event.action in vocabulary.ANNOUNCED:
        dispatch.announce(event.seq)


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
    for event in rows:  # each announced after commit, so only if the batch is written
        _announce(event)
    if connection.vendor != "postgresql":
        return AuditEvent.objects.bulk_create(rows, batch_size=500)
    _copy_events(rows)
    ids = dict(AuditEvent.objects.filter(seq__gte=rows[0].seq, seq__lte=rows[-1].seq).values_list("seq", "pk"))
    for event in rows:
        event.pk = ids[event.seq]
        event._state.adding = False
    return rows


# The columns an event's hash covers, plus its stored hash; read as tuples, not model instances,
# because re-walking a million events is the verifier's whole job and instances cost ten times more.
CHAIN_COLUMNS = (
    "seq",
    "at",
    "actor",
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
# What COPY writes of each event: the chained columns and the acting user's id (not hashed).
_EVENT_COLUMNS = (*CHAIN_COLUMNS[:3], "actor_user", *CHAIN_COLUMNS[3:])


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


class LogBroken(Exception):
    """The log is not what was written: an event missing, changed, or not linked to the one before."""

    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


# On PostgreSQL the time comes back as whole seconds and microseconds since the epoch, and old/new as
# JSON text: the driver's timestamp parsing (in Python, under Django's time zone loader) would cost
# more than hashing the event.
_PG_CHAIN_SQL = """
SELECT seq, extract(epoch FROM date_trunc('second', at))::bigint, extract(microseconds FROM at)::bigint %% 1000000,
       actor, action, object_type, object_key, old::text, new::text, reason, request_id, prev_hash, hash
  FROM audit_auditevent
 WHERE seq >= %s AND seq <= %s
 ORDER BY seq
 LIMIT %s
"""
_NO_LIMIT = 2**62
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_SCAN_JSON = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _fetch_pg(first: int, last: int, limit: int) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(_PG_CHAIN_SQL, [first, last, limit])
        return cursor.fetchall()


def _convert_pg(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # PostgreSQL writes JSON text with no leading space, so the decoder's scanner reads it directly.
    scan, delta = _SCAN_JSON, datetime.timedelta
    converted = []
    last_time, iso = None, ""
    for seq, seconds, micro, actor, action, object_type, object_key, old, new, *rest in rows:
        if (seconds, micro) != last_time:  # a batch written together shares its time
            last_time, iso = (seconds, micro), (_EPOCH + delta(seconds=seconds, microseconds=micro)).isoformat()
        converted.append(
            (
                seq,
                iso,
                actor,
                action,
                object_type,
                object_key,
                None if old is None else scan(old, 0)[0],
                None if new is None else scan(new, 0)[0],
                *rest,
            )
        )
    return converted


def _chain_rows(first: int, last: int, limit: int) -> list[tuple[Any, ...]]:
    """Events ``first``..``last`` in order as (seq, ISO time, ..., old, new, ..., prev_hash, hash)."""
    if connection.vendor == "postgresql":
        return _convert_pg(_fetch_pg(first, last, limit))
    events = AuditEvent.objects.filter(seq__gte=first, seq__lte=last).order_by("seq")
    return [(row[0], row[1].isoformat(), *row[2:]) for row in events.values_list(*CHAIN_COLUMNS)[:limit]]


_PAGE = 10_000


def _pages(first: int, last: int) -> Generator[list[tuple[Any, ...]]]:
    while rows := _chain_rows(first, last, _PAGE):
        yield rows
        first = rows[-1][0] + 1


def _pages_read_ahead(first: int, last: int) -> Generator[list[tuple[Any, ...]]]:
    """The same pages, each fetched by a thread on its own connection while the one before is hashed.

    Only outside a transaction (the thread sees committed events only) and on PostgreSQL, where the
    database's time per page is worth hiding behind the hashing.
    """
    last = min(last, last_seq())
    pages: queue.Queue[list[tuple[Any, ...]] | BaseException | None] = queue.Queue(maxsize=2)
    done = threading.Event()

    def put(item: list[tuple[Any, ...]] | BaseException | None) -> None:
        while not done.is_set():
            try:
                pages.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def fetch() -> None:
        try:
            for start in range(first, last + 1, _PAGE):
                put(_fetch_pg(start, min(last, start + _PAGE - 1), _PAGE))
            put(None)
        except BaseException as exc:  # handed to the reader, which raises it
            put(exc)
        finally:
            connection.close()  # this thread's own connection

    reader = threading.Thread(target=fetch, name="audit-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := pages.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            if item:
                yield _convert_pg(item)
    finally:
        done.set()
        reader.join()


def walk_chain(
    after: int = 0, head: str = GENESIS_HASH, upto: int | None = None, *, read_ahead: bool = False
) -> Iterator[str]:
    """The hashes of the events after ``after`` (up to ``upto``), each checked as it is read.

    ``head`` is the hash of event ``after``. Each event must come next in sequence, link to the one
    before and hash to its stored hash; the first that does not raises ``LogBroken`` naming it.
    ``read_ahead`` fetches the next page while one is hashed, when that is possible (outside a
    transaction, on PostgreSQL); it then stops at the newest event when the walk started.
    """
    expected, prev = after + 1, head
    last = _NO_LIMIT if upto is None else upto
    if read_ahead and connection.vendor == "postgresql" and not connection.in_atomic_block:
        pages = _pages_read_ahead(expected, last)
    else:
        pages = _pages(expected, last)
    with closing(pages):
        for rows in pages:
            for (
                seq,
                at,
                actor,
                action,
                object_type,
                object_key,
                old,
                new,
                reason,
                request_id,
                prev_hash,
                digest,
            ) in rows:
                if seq != expected:
                    raise LogBroken(expected, f"event #{expected} is missing (next found is #{seq})")
                if prev_hash != prev:
                    raise LogBroken(seq, f"event #{seq} does not link to event #{seq - 1}")
                computed = stored_event_digest(
                    seq, at, actor, action, object_type, object_key, old, new, reason, request_id, prev_hash
                )
                if computed != digest:
                    raise LogBroken(seq, f"event #{seq} was changed after it was written")
                yield digest
                prev = digest
                expected += 1


def head_hash(seq: int) -> str:
    """The stored hash of event ``seq`` (the genesis hash before the first event)."""
    if seq == 0:
        return GENESIS_HASH
    found = AuditEvent.objects.filter(seq=seq).values_list("hash", flat=True).first()
    if found is None:
        raise LogBroken(seq, f"event #{seq} is missing")
    return found


def last_seq() -> int:
    """The sequence number of the newest event (0 for an empty log)."""
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


@dataclass(frozen=True)
class VerifyResult:
    count: int
    broken_seq: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def verify_chain() -> VerifyResult:
    """Re-walk the whole log: sequence without gaps, each hash recomputed, each link intact."""
    count = 0
    try:
        for _ in walk_chain():
            count += 1
    except LogBroken as broken:
        return VerifyResult(count, broken.seq, broken.problem)
    return VerifyResult(count)
