"""Millions of audit events written straight into PostgreSQL, exactly as the application would store them.

Writing ten million events through ``audit.log.record_many`` and ``checkpoints.issue_checkpoint`` takes
hours on a small machine: each checkpoint re-reads and re-checks the events it covers. A benchmark only
needs the result, so this computes the same things in one streaming pass (each event's hash chained to
the one before with ``stored_event_digest``, the Merkle tree's complete subtrees with ``CompactRange``,
a checkpoint signed with the server's key every ``every`` events and at the end) and loads the rows with
COPY. tests/unit/test_audit_events.py holds the rows, tree nodes, checkpoints and checkpoint log it writes
byte for byte to what the application's own path writes, and ``audit_verify`` passes on them.

For a bulk load, ``rebuild_indexes`` drops the two tables' indexes other than their primary keys before the
load and builds them again after it, from the definitions PostgreSQL gave for them: one sort per index
instead of ten million random insertions into a unique index of hashes.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit import checkpoints, log, merkle, pgcopy, signing, tree, verifier
from audit.models import AuditEvent, Checkpoint, TreeNode, canonical_json, stored_event_digest
from tests.benchmarks.common import batches

# Events hashed, then copied, per round trip: tens of megabytes of COPY text at a time.
BATCH = 50_000
# The indexes' sorts get more memory than a session has by default (64 MB here).
INDEX_BUILD_MEMORY = "1GB"


@dataclass(frozen=True)
class Event:
    """One event to write: what ``record_many`` is given, plus the actor's label and the time it stamps."""

    at: datetime.datetime
    actor: str
    action: str
    object_type: str
    object_key: str
    old: Any = None
    new: Any = None
    reason: str = ""
    request_id: str = ""


class CannotGenerate(Exception):
    """The log is not in a state events can be generated onto."""


def generate(
    events: Iterable[Event],
    *,
    every: int,
    clock: Callable[[], datetime.datetime] = timezone.now,
    rebuild_indexes: bool = False,
) -> int:
    """Append ``events`` to the log, a checkpoint signed after each ``every`` and after the last; returns
    the log's new size. PostgreSQL only; one transaction, so an interrupted run leaves nothing behind.

    The log must be covered by the stored tree up to its last event (true of an empty log, and of one
    whose last write was a checkpoint); ``clock`` gives each checkpoint's ``issued_at``.
    """
    if connection.vendor != "postgresql":
        raise CannotGenerate("generating audit events needs PostgreSQL (COPY)")
    if every < 1:
        raise CannotGenerate(f"a checkpoint every {every} events: it must be at least 1")
    with transaction.atomic():
        start = log.last_seq()
        if tree.stored_size() != start:
            raise CannotGenerate(
                f"the stored tree covers {tree.stored_size()} of {start} events: issue a checkpoint first"
            )
        chain = _Chain(start, log.head_hash(start), tree.edge(start), every, clock)
        with _indexes_dropped(enabled=rebuild_indexes):
            for batch in batches(events, BATCH):
                chain.write(batch)
            chain.finish()
        return chain.size


class _Chain:
    """The log's head and the tree's right edge as events are added; writes each batch as it goes."""

    def __init__(
        self,
        size: int,
        head: str,
        edge: merkle.CompactRange,
        every: int,
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self.size = size
        self.head = head
        self.edge = edge
        self.every = every
        self.clock = clock
        self.signed = size  # the size of the newest checkpoint (or the empty log)
        self.key_id = checkpoints.key_id()

    def write(self, batch: list[Event]) -> None:
        lines: list[str] = []
        completed: list[tuple[int, int, bytes]] = []
        notes: list[Checkpoint] = []
        for event in batch:
            lines.append(self._event_line(event))
            self.edge.append(merkle.leaf_hash(bytes.fromhex(self.head)), completed)
            if self.size % self.every == 0:
                notes.append(self._checkpoint())
        nodes = [f"{level}\t{index}\t\\\\x{value.hex()}\n" for level, index, value in completed]
        pgcopy.copy_lines(AuditEvent, log.CHAIN_COLUMNS, lines)
        pgcopy.copy_lines(TreeNode, ("level", "index", "hash"), nodes)
        self._save(notes)

    def finish(self) -> None:
        if self.size != self.signed:
            self._save([self._checkpoint()])

    def _event_line(self, event: Event) -> str:
        """The event's COPY line (its hash chained to the head), as ``record_many`` would store it."""
        self.size += 1
        at = event.at.isoformat()
        old = None if event.old is None else canonical_json(event.old)
        new = None if event.new is None else canonical_json(event.new)
        digest = stored_event_digest(
            self.size,
            at,
            event.actor,
            event.action,
            event.object_type,
            event.object_key,
            None if old is None else json.loads(old),
            None if new is None else json.loads(new),
            event.reason,
            event.request_id,
            self.head,
        )
        values = (
            event.actor,
            event.action,
            event.object_type,
            event.object_key,
            old,
            new,
            event.reason,
            event.request_id,
        )
        line = "\t".join((str(self.size), at, *map(pgcopy.text_value, values), self.head, digest))
        self.head = digest
        return line + "\n"

    def _checkpoint(self) -> Checkpoint:
        """The checkpoint ``issue_checkpoint`` would sign over the log as it now stands."""
        body = verifier.CheckpointBody(settings.LINEAGE_AUDIT_ORIGIN, self.size, self.edge.root())
        note = signing.sign_note(body.text())
        self.signed = self.size
        return Checkpoint(
            size=self.size,
            root_hash=body.root.hex(),
            origin=body.origin,
            issued_at=self.clock(),
            key_id=self.key_id,
            signature=verifier.parse_note(note).signatures[0].signature.hex(),
            note=note,
        )

    @staticmethod
    def _save(signed: list[Checkpoint]) -> None:
        Checkpoint.objects.bulk_create(signed)
        for checkpoint in signed:
            # As issue_checkpoint does: the file outside the database gets the note once it commits.
            transaction.on_commit(functools.partial(checkpoints.append_to_log, checkpoint.note), robust=True)


# Index rebuilding ---------------------------------------------------------------------------------

_TABLES = (AuditEvent._meta.db_table, TreeNode._meta.db_table)

# Unique constraints (each backed by an index), then the other indexes but the primary keys': those grow at
# their right edge as events and subtrees are appended in order, and other tables may refer to them.
_CONSTRAINTS_SQL = """
SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
  FROM pg_constraint c
 WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype = 'u'
 ORDER BY 1, 2
"""
_INDEXES_SQL = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
  FROM pg_index i
 WHERE i.indrelid = ANY(%s::regclass[])
   AND NOT i.indisprimary
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
 ORDER BY 1
"""


def schema_indexes() -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """The two tables' unique constraints (table, name, definition) and other indexes but the primary keys'
    (name, definition)."""
    with connection.cursor() as cursor:
        cursor.execute(_CONSTRAINTS_SQL, [list(_TABLES)])
        constraints = [tuple(row) for row in cursor.fetchall()]
        cursor.execute(_INDEXES_SQL, [list(_TABLES)])
        indexes = [tuple(row) for row in cursor.fetchall()]
    return constraints, indexes  # type: ignore[return-value]


@contextmanager
def _indexes_dropped(*, enabled: bool) -> Iterator[None]:
    """Drop the tables' indexes but the primary keys for the block, then build the same ones again.

    Afterwards the definitions are read back and compared with the ones dropped: the schema is restored
    exactly, or the transaction fails.
    """
    if not enabled:
        yield
        return
    before = schema_indexes()
    constraints, indexes = before
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table, name, _ in constraints:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {quote(name)}")
    yield
    with connection.cursor() as cursor:
        # The acting user's foreign key is checked at commit; ALTER TABLE waits for no pending check.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        for table, name, definition in constraints:
            cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
        for _, definition in indexes:
            cursor.execute(definition)
    after = schema_indexes()
    if after != before:
        raise CannotGenerate(f"the indexes rebuilt differ from the schema's: {before} became {after}")
