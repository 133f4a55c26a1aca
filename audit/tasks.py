from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from audit import signing, verification
from audit.checkpoints import issue_checkpoint
from audit.log import LogBroken
from audit.models import VerificationRun

logger = logging.getLogger(__name__)


@shared_task
def sign_checkpoint() -> int | None:
    """Signed checkpoint of the audit log (by beat, and after approvals and deployments); returns its size."""
    try:
        return issue_checkpoint().size
    except LogBroken as broken:
        # Signing a broken log would anchor the damage; the approval that asked for it stands either way.
        logger.error("audit log broken at #%s, no checkpoint signed: %s", broken.seq, broken.problem)
        return None


@shared_task
def verify_log() -> bool:
    """Verify the log from the last verified checkpoint (by beat); a failure raises the alarm."""
    report = verification.verify_log(
        signing.public_key_raw(), checkpoint_logs=[settings.LINEAGE_CHECKPOINT_LOG], incremental=True
    )
    run = verification.record_run(report, trigger=VerificationRun.Trigger.SCHEDULE, incremental=True)
    return run.ok
