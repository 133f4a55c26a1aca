"""Reading the audit trail: filters, pages by sequence number, and exports streamed with their checkpoint.

Pages are keyed on the sequence number (``before``), never on an offset, so the thousandth page of a
year's log costs what the first does. Exports walk the filtered events in sequence order with a server
cursor, a few thousand rows at a time, and end with the newest signed checkpoint, which covers every
exported event up to its size: an auditor's tools read the rows, and the checkpoint ties them to the log.
"""

from __future__ import annotations

import csv
import datetime
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from django.db.models import Max, Q, QuerySet

from audit import checkpoints, log, signing
from audit.models import AuditEvent, Checkpoint, VerificationRun, canonical_json

PAGE_SIZE = 50
EXPORT_CHUNK = 2000
# What an export carries of each event: what its hash covers, and the hash (``audit.log.CHAIN_COLUMNS``).
EXPORT_COLUMNS = log.CHAIN_COLUMNS


@dataclass(frozen=True)
class TrailFilter:
    """Which events to show; an empty field does not filter. ``scope`` narrows further (a release's events)."""

    actor: str = ""
    action: str = ""
    object_type: str = ""
    object_key: str = ""
    request_id: str = ""
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    text: str = ""
    scope: Q | None = None

    @property
    def is_empty(self) -> bool:
        return self == TrailFilter()

    def events(self) -> QuerySet[AuditEvent]:
        """The matching events, newest first."""
        query = Q()
        exact = {
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_key": self.object_key,
            "request_id": self.request_id,
        }
        for field, value in exact.items():
            if value:
                query &= Q(**{field: value})
        if self.since is not None:
            query &= Q(at__gte=self.since)
        if self.until is not None:
            query &= Q(at__lt=self.until)
        if self.text:
            query &= Q(reason__icontains=self.text) | Q(object_key__icontains=self.text) | Q(actor__icontains=self.text)
        if self.scope is not None:
            query &= self.scope
        return AuditEvent.objects.filter(query).order_by("-seq")

    def count(self) -> int:
        """Exact number of matching events; the whole log's is its newest sequence number (no gaps)."""
        if self.is_empty:
            return AuditEvent.objects.aggregate(newest=Max("seq"))["newest"] or 0
        return self.events().count()


@dataclass(frozen=True)
class TrailPage:
    events: list[AuditEvent]
    total: int
    before: int | None  # the sequence number this page starts below (None: the newest)
    older: int | None  # ``before`` of the next, older page; None when this is the last

    @property
    def newer(self) -> bool:
        return self.before is not None


def page(trail: TrailFilter, *, before: int | None = None, size: int = PAGE_SIZE) -> TrailPage:
    """One page of the matching events, newest first, starting below sequence number ``before``."""
    events = trail.events()
    if before is not None:
        events = events.filter(seq__lt=before)
    rows = list(events[: size + 1])
    older = rows[size - 1].seq if len(rows) > size else None
    return TrailPage(rows[:size], trail.count(), before, older)


def covering_checkpoint() -> Checkpoint | None:
    """The newest signed checkpoint: it covers every event up to its size."""
    return checkpoints.latest()


def _rows(trail: TrailFilter) -> Iterator[tuple[object, ...]]:
    events = trail.events().order_by("seq").values_list(*EXPORT_COLUMNS)
    yield from events.iterator(chunk_size=EXPORT_CHUNK)


def _text(value: object) -> str:
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    if isinstance(value, dict | list):
        return canonical_json(value)
    return "" if value is None else str(value)


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """``header`` and ``rows`` as CSV text, one line at a time, for a streamed download."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for values in itertools.chain([header], rows):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        yield buffer.getvalue()


def export_csv(trail: TrailFilter) -> Iterator[str]:
    """The matching events as CSV, oldest first; old and new values as canonical JSON."""
    return csv_lines(EXPORT_COLUMNS, (tuple(_text(value) for value in row) for row in _rows(trail)))


def export_jsonl(trail: TrailFilter, checkpoint: Checkpoint | None) -> Iterator[str]:
    """The matching events as JSON Lines, oldest first, then one line with the checkpoint that covers them."""
    newest = 0
    count = 0
    for row in _rows(trail):
        event = dict(zip(EXPORT_COLUMNS, row, strict=True))
        event["at"] = _text(event["at"])
        newest = max(newest, int(str(event["seq"])))
        count += 1
        yield json.dumps(event, sort_keys=True, ensure_ascii=False) + "\n"
    yield json.dumps(checkpoint_record(checkpoint, exported=count, newest=newest), sort_keys=True) + "\n"


def checkpoint_record(checkpoint: Checkpoint | None, *, exported: int, newest: int) -> dict[str, object]:
    """What ties an export to the log: the signed checkpoint, the key, and what it does not yet cover."""
    size = checkpoint.size if checkpoint is not None else 0
    return {
        "checkpoint": {
            "size": size,
            "note": checkpoint.cosigned_note() if checkpoint is not None else None,
            "key": signing.note_key().vkey,
            "key_fingerprint": f"sha256:{signing.fingerprint()}",
        },
        "events_exported": exported,
        "newest_exported": newest,
        "covered": newest <= size,
    }


@dataclass(frozen=True)
class IntegrityStatus:
    """The log at a glance: the last verification, the newest checkpoint, what no checkpoint covers yet."""

    last_run: VerificationRun | None
    checkpoint: Checkpoint | None
    events: int
    key_fingerprint: str

    @property
    def pending(self) -> int:
        return self.events - (self.checkpoint.size if self.checkpoint is not None else 0)


def integrity_status() -> IntegrityStatus:
    """Three queries: the newest verification run, the newest checkpoint, the newest sequence number."""
    return IntegrityStatus(
        last_run=VerificationRun.objects.order_by("-ran_at", "-pk").first(),
        checkpoint=covering_checkpoint(),
        events=AuditEvent.objects.aggregate(newest=Max("seq"))["newest"] or 0,
        key_fingerprint=signing.fingerprint(),
    )
