"""Reading the audit trail: filters, pages by sequence number, and exports streamed with their checkpoint.

Pages are keyed on the sequence number (``before``), never on an offset, so the thousandth page of a
year's log costs what the first does. Exports walk the filtered events in sequence order with a server
cursor, a few thousand rows at a time, and end with the newest signed checkpoint, which covers every
exported event up to its size: an auditor's tools read the rows, and the checkpoint ties them to the log.
"""

from __future__ import annotations

import datetime
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from defusedcsv import csv
from django.db.models import Count, Max, Q, QuerySet

from audit import checkpoints, log, signing
from audit.models import AuditEvent, Checkpoint, VerificationRun, canonical_json
from releases.prepared import PreparedQuery, PreparedTuples

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

    def counts(self, newer_than: int | None = None) -> tuple[int, int]:
        """Exact number of matching events, and of those after sequence number ``newer_than`` (one query).

        The whole log's are read from its newest sequence number: the log has no gaps.
        """
        if self.is_empty:
            newest = AuditEvent.objects.aggregate(newest=Max("seq"))["newest"] or 0
            return newest, max(0, newest - newer_than) if newer_than is not None else 0
        if newer_than is None:
            return self.events().count(), 0
        found = self.events().order_by().aggregate(total=Count("pk"), newer=Count("pk", filter=Q(seq__gt=newer_than)))
        return found["total"], found["newer"]


@dataclass(frozen=True)
class TrailPage:
    events: list[AuditEvent]
    total: int
    start: int  # the position of the first event among the matching ones, from 1 (0 when none match)
    older: int | None  # ``before`` of the next, older page; None when this is the last
    newer: int | None  # ``after`` of the previous, newer page; None when this is the newest

    @property
    def end(self) -> int:
        return self.start + len(self.events) - 1 if self.events else 0


def page(
    trail: TrailFilter, *, before: int | None = None, after: int | None = None, size: int = PAGE_SIZE
) -> TrailPage:
    """One page of the matching events, newest first: those just below sequence number ``before``, or just
    above ``after``, or the newest; with the exact total and the position of the first (two queries).

    A sequence number past either end of the matching events shows the page at that end (one query more).
    """
    events = trail.events()
    if after is not None:
        rows = list(events.filter(seq__gt=after).order_by("seq")[:size])[::-1] or list(events[:size])
    elif before is not None:
        rows = list(events.filter(seq__lt=before)[:size]) or list(events.order_by("seq")[:size])[::-1]
    else:
        rows = list(events[:size])
    total, newer = trail.counts(rows[0].seq if rows else None)
    start = newer + 1 if rows else 0
    older = rows[-1].seq if rows and start + len(rows) - 1 < total else None
    return TrailPage(rows, total, start, older, rows[0].seq if start > 1 else None)


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
    """``header`` and ``rows`` as CSV text, one line at a time, for a streamed download.

    Written by defusedcsv: a cell someone typed (a reason, a comment, a name) that starts like a spreadsheet
    formula (``=``, ``+``, ``-``, ``@``, ``|``, ``%``) is written with a leading apostrophe, so a reviewer who
    opens the export in a spreadsheet sees the text instead of running it. Numbers are written as they are.
    """
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
    newest = _NEWEST_SEQ.all()
    return IntegrityStatus(
        last_run=_NEWEST_RUN.first(),
        checkpoint=covering_checkpoint(),
        events=newest[0][0] if newest else 0,
        key_fingerprint=signing.fingerprint(),
    )


# On every board: compiled once (releases/prepared.py).
_NEWEST_RUN = PreparedQuery(lambda: VerificationRun.objects.order_by("-ran_at", "-pk")[:1])
_NEWEST_SEQ = PreparedTuples(lambda: AuditEvent.objects.order_by("-seq").values_list("seq")[:1])
