"""Acknowledging a failed verification of the audit log: the alarm stops, the failure stays on record."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import alarm, log
from audit.models import Acknowledgment, VerificationRun
from releases.errors import RuleViolation
from releases.roles import require_admin
from releases.services import refusals
from releases.services.validation import require_reason


def acknowledge_alarm(run: VerificationRun, *, note: str, by: User) -> Acknowledgment:
    """An administrator acknowledges failed verification ``run``, saying what was done about it."""
    subject = ("audit_log", f"verification {run.pk}")
    with refusals.recorded("audit.acknowledgment_refused", by=by, object_type=subject[0], object_key=subject[1]):
        require_admin(by, to="acknowledge a failed verification of the audit log")
        note = require_reason(note, "acknowledge a failed verification")
        if run.ok:
            raise RuleViolation(
                f"verification {run.pk} found the log intact; there is nothing to acknowledge", rule="not_failed"
            )
        try:
            with transaction.atomic():
                acknowledgment = Acknowledgment.objects.create(run=run, by=by, at=timezone.now(), note=note)
                log.record(
                    "audit.alarm_acknowledged",
                    actor=by,
                    object_type=subject[0],
                    object_key=subject[1],
                    new={"broken_seq": run.broken_seq, "problem": run.problem, "ran_at": run.ran_at.isoformat()},
                    reason=note,
                )
                transaction.on_commit(alarm.refresh)
        except IntegrityError as exc:
            raise RuleViolation(f"verification {run.pk} was already acknowledged", rule="already_acknowledged") from exc
    return acknowledgment
