"""The benchmarks' audit event generator writes what the application's own path writes, byte for byte.

The same thousand events go through ``record_many`` with a checkpoint signed after each batch (the
application), then, rolled back, through ``tests.benchmarks.audit_events.generate``: events, chain,
stored tree, checkpoints and checkpoint log must be equal, and ``audit_verify`` must pass on the result.
"""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction

from audit import checkpoints, context, log, signing, verification, verifier, vocabulary
from audit.log import SystemActor
from audit.models import AuditEvent, Checkpoint, TreeNode
from tests.benchmarks import audit_events
from tests.benchmarks.common import batches

ACTION = vocabulary.register("test.generated", "An event written by the audit event generator's tests.")
EVENTS = 1000
EVERY = 128  # a checkpoint after each batch of 128, and after the last 104


def _pending(i: int) -> log.PendingEvent:
    """Events with every kind of content the chain and COPY must get right."""
    values: list[Any] = [
        None,
        {"n": i, "status": "FINISHED"},
        {"nested": {"list": [1, 2.5, True, None], "text": "tab\there\nnew line \\ back"}, "é": "ünïcode ✓"},
        ["a", i],
        "plain string",
    ]
    return log.PendingEvent(
        ACTION,
        ("run", "release", "endpoint")[i % 3],
        f"mlflow:{i:032x}" if i % 2 else f"name\twith\\odd {i}",
        old=values[i % 5],
        new=values[(i + 2) % 5],
        reason="" if i % 4 else f"reason {i}\r\nsecond line",
    )


def _application_path(events: list[log.PendingEvent]) -> None:
    for number, batch in enumerate(batches(events, EVERY)):
        token = context.request_id.set(f"req-{number}" if number % 2 else "")
        try:
            with transaction.atomic():
                log.record_many(batch, actor=SystemActor(f"sync-{number % 3}"))
            checkpoints.issue_checkpoint()
        finally:
            context.request_id.reset(token)


def _stored() -> dict[str, Any]:
    """Everything the log is made of, as stored (row ids left out: a sequence is not part of the log)."""
    event_columns = [*log.CHAIN_COLUMNS, "actor_user_id"]
    return {
        "events": list(AuditEvent.objects.order_by("seq").values_list(*event_columns)),
        "nodes": [
            (level, index, bytes(value))
            for level, index, value in TreeNode.objects.order_by("level", "index").values_list("level", "index", "hash")
        ],
        "checkpoints": list(
            Checkpoint.objects.order_by("size").values_list(
                "size", "root_hash", "origin", "issued_at", "key_id", "signature", "note"
            )
        ),
        "checkpoint_log": settings.LINEAGE_CHECKPOINT_LOG.read_bytes(),
    }


def _as_generated(rows: list[tuple[Any, ...]]) -> list[audit_events.Event]:
    """The application's events as the generator is given them: the same times, actors and contents."""
    return [
        audit_events.Event(
            at=at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_key=object_key,
            old=old,
            new=new,
            reason=reason,
            request_id=request_id,
        )
        for _, at, actor, action, object_type, object_key, old, new, reason, request_id, *_ in rows
    ]


@pytest.mark.django_db
def test_generated_log_is_byte_for_byte_the_applications(postgres, monkeypatch, django_capture_on_commit_callbacks):
    events = [_pending(i) for i in range(EVENTS)]
    checkpoint_log = settings.LINEAGE_CHECKPOINT_LOG
    saved = transaction.savepoint()
    with django_capture_on_commit_callbacks(execute=True):
        _application_path(events)
    application = _stored()
    transaction.savepoint_rollback(saved)
    checkpoint_log.unlink()
    assert not AuditEvent.objects.exists()

    monkeypatch.setattr(audit_events, "BATCH", 300)  # batches that end between checkpoints
    issued = iter(row[3] for row in application["checkpoints"])
    with django_capture_on_commit_callbacks(execute=True):
        size = audit_events.generate(_as_generated(application["events"]), every=EVERY, clock=lambda: next(issued))
    generated = _stored()

    assert size == EVENTS
    assert len(application["events"]) == EVENTS
    assert len(application["checkpoints"]) == 8
    for part in ("events", "nodes", "checkpoints", "checkpoint_log"):
        assert generated[part] == application[part], part


@pytest.mark.django_db
def test_audit_verify_and_the_exporters_proofs_hold_on_generated_events(postgres, django_capture_on_commit_callbacks):
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    picks = random.Random(5)
    generated = [
        audit_events.Event(
            at=start + datetime.timedelta(seconds=i),
            actor="bench",
            action=ACTION,
            object_type="run",
            object_key=f"mlflow:{i:032x}",
            new={"metric": picks.random()},
        )
        for i in range(EVENTS)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        audit_events.generate(generated, every=300)

    report = verification.verify_log(signing.public_key_raw(), checkpoint_logs=[settings.LINEAGE_CHECKPOINT_LOG])
    assert report.ok, report.problem
    assert (report.events, report.checkpoints, report.newest) == (EVENTS, 4, EVENTS)
    newest = Checkpoint.objects.get(size=EVENTS)
    seqs = [1, 300, 301, 777, EVENTS]
    proofs = checkpoints.inclusion_proofs(seqs, newest)
    for seq in seqs:
        digest = AuditEvent.objects.get(seq=seq).hash
        index, hashes, note = verifier.parse_tlog_proof(proofs[seq])
        body, _ = verifier.open_checkpoint(note, signing.public_key_raw())
        assert (index, body.size) == (seq - 1, EVENTS)
        assert verifier.verify_inclusion(index, EVENTS, verifier.leaf_hash(bytes.fromhex(digest)), hashes, body.root)


@pytest.mark.django_db
def test_generating_onto_a_log_the_tree_does_not_cover_is_refused(postgres):
    with transaction.atomic():
        log.record_many([log.PendingEvent(ACTION, "run", "one")], actor=SystemActor("sync"))
    event = audit_events.Event(
        at=datetime.datetime.now(datetime.UTC), actor="bench", action=ACTION, object_type="run", object_key="two"
    )
    with pytest.raises(audit_events.CannotGenerate, match="the stored tree covers 0 of 1 events"):
        audit_events.generate([event], every=10)
