"""The integrity alarm: raised when a verification of the log fails, shown on every page for every role
until an administrator acknowledges it.

The record is in the database (``VerificationRun`` without an ``Acknowledgment``); pages read a copy
in the cache, so the banner costs no query. Every verification run writes the copy again from the
database, so a cache that lost it (a Redis restart) shows the banner again at the next run.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail

from audit.models import VerificationRun

logger = logging.getLogger("audit.alarm")

KEY = "lineage:audit:alarm"


def current() -> dict[str, Any] | None:
    """The raised alarm as pages show it (from the cache; no query), or None."""
    value = cache.get(KEY)
    return value if isinstance(value, dict) else None


def unacknowledged() -> VerificationRun | None:
    """The oldest failed verification nobody has acknowledged yet."""
    return VerificationRun.objects.filter(ok=False, acknowledgment__isnull=True).order_by("ran_at", "pk").first()


def refresh() -> dict[str, Any] | None:
    """Copy the alarm from the database to the cache (or clear it); returns what pages now show."""
    run = unacknowledged()
    if run is None:
        cache.delete(KEY)
        return None
    value = {
        "run": run.pk,
        "ran_at": run.ran_at.isoformat(),
        "broken_seq": run.broken_seq,
        "problem": run.problem,
    }
    cache.set(KEY, value, timeout=None)
    return value


def sound(run: VerificationRun) -> None:
    """Tell people a verification failed: an ERROR in the log and, when configured, an email."""
    where = f" at #{run.broken_seq}" if run.broken_seq is not None else ""
    message = f"audit log verification failed{where}: {run.problem}"
    logger.error(message)
    recipients = list(settings.LINEAGE_ALERT_EMAILS)
    if recipients:
        try:
            send_mail(
                subject="[release lineage] audit log verification failed",
                message=(
                    f"{message}\n\nRun at {run.ran_at:%Y-%m-%d %H:%M:%S} UTC ({run.trigger}). Every page shows "
                    "this alarm until an administrator acknowledges it.\n"
                ),
                from_email=None,
                recipient_list=recipients,
            )
        except OSError:
            logger.exception("the alert email about the failed verification could not be sent")
