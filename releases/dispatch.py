"""Start Celery tasks by their registered name, after the caller's transaction commits.

Services decide that work must happen (apply a write-back, sync a source) but never import the
task layer, which sits above them and calls them. They name the task here instead; the name is
looked up in Celery's registry when the transaction commits, so a task is never started for a
change that rolled back, and eager mode (no broker) runs it in-process as usual.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction

SYNC_SOURCE = "releases.tasks.sync_source"
APPLY_WRITE_BACK = "releases.tasks.apply_write_back"
# Prepare a period's evidence bundle a person asked for.
BUILD_EVIDENCE = "releases.tasks.build_period_evidence"
# Sign a checkpoint of the audit log: after approvals, deployments and rollbacks, so they are anchored at once.
ISSUE_CHECKPOINT = "audit.tasks.sign_checkpoint"
# Announce an audit event outside (webhooks, email), and deliver one webhook.
ANNOUNCE_EVENT = "releases.tasks.announce_event"
DELIVER_WEBHOOK = "releases.tasks.deliver_webhook"


def after_commit(task_name: str, *args: object, **kwargs: object) -> None:
    """Enqueue ``task_name`` with these arguments (ids and primitives only) once the transaction commits."""
    transaction.on_commit(lambda: current_app.tasks[task_name].delay(*args, **kwargs))


def announce(seq: int) -> None:
    """Announce audit event ``seq`` (webhooks, email) once the transaction that records it commits.

    Robust: an announcement that cannot be queued (the broker is down) is logged, and the change it
    announces, already committed, is not turned into an error for the person who made it.
    """
    transaction.on_commit(lambda: current_app.tasks[ANNOUNCE_EVENT].delay(seq), robust=True)
