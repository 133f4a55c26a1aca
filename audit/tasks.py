from __future__ import annotations

from celery import shared_task

from audit.checkpoints import issue_checkpoint


@shared_task
def sign_checkpoint() -> int:
    """Periodic signed checkpoint of the audit log; returns the size it covers."""
    return issue_checkpoint().size
