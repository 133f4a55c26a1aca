"""Celery tasks: thin wrappers that take ids, call the sync adapters and retry what is transient.

Retry delays stay well below the broker's visibility timeout (one hour by default): a task
waiting longer than that on Redis would be handed to a second worker while the first still
holds it.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from releases import dispatch, evidence
from releases.models import SyncState, WriteBack
from releases.outbound import email, webhooks
from releases.sync import sources
from releases.sync import writeback as write_backs
from releases.sync.state import SourceBusy, SourceUnavailable

logger = logging.getLogger(__name__)
MAX_RETRIES = 6
MAX_DELAY = 600


def backoff(retries: int) -> int:
    """15 s, 30 s, 60 s, ... capped at ten minutes."""
    return int(min(MAX_DELAY, 15 * 2**retries))


@shared_task(name=dispatch.SYNC_SOURCE, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def sync_source(self: Task[Any, Any], state_id: int, full: bool = False, queued: bool = False) -> str:
    """Sync one source (``queued``: serve its waiting webhook deliveries only); an unreachable source is retried
    with backoff, its error shown meanwhile."""
    state = SyncState.objects.select_related("repository", "server").filter(pk=state_id).first()
    if state is None:
        return "source no longer configured"
    try:
        result = sources.sync_state(state, full=full, queued=queued, holder=self.request.id or "")
    except SourceBusy:
        # The work is being done already; the sync holding the source serves the deliveries waiting before it
        # lets go, and queues a sync for any kept after its last look (mlflow.sync_server).
        return "already running"
    except SourceUnavailable as exc:
        # In-process (no broker) the failure is shown on the source; retrying here would block the caller.
        if self.request.is_eager:
            return f"failed: {exc}"
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    except (OperationalError, InterfaceError) as exc:
        # The database went away mid-sync (a restart, a failover): the pages committed stand, the one being
        # written rolled back with its events, and the watermark did not move. Retried like an unreachable
        # source; the retry is this task again, so it takes over the lease this attempt could not release.
        if self.request.is_eager:
            raise
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    return result.summary()


@shared_task
def sync_due_sources() -> int:
    """Celery beat calls this every minute: enqueue each source whose interval has passed."""
    due = [state for state in SyncState.objects.due(timezone.now()) if not state.is_running]
    for state in due:
        sync_source.delay(state.pk)
    return len(due)


@shared_task(name=dispatch.APPLY_WRITE_BACK, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def apply_write_back(self: Task[Any, Any], write_back_id: int) -> str:
    write_back = WriteBack.objects.select_related("server").filter(pk=write_back_id).first()
    if write_back is None or write_back.status == WriteBack.Status.DONE:
        return "nothing to do"
    try:
        write_backs.apply(write_back)
    except SourceUnavailable as exc:
        if self.request.is_eager:
            return f"failed: {exc}"
        if self.request.retries >= MAX_RETRIES:
            # Not dropped: the row stays failed, shown on /sync/, and retry_write_backs picks it up again.
            logger.warning("write-back %s still failing: %s", write_back, exc)
            return f"failed: {exc}"
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    return "applied"


@shared_task
def retry_write_backs() -> int:
    """Re-enqueue write-backs still outstanding after a while (a worker died, retries ran out)."""
    cutoff = timezone.now() - datetime.timedelta(minutes=2)
    ids = list(WriteBack.objects.outstanding().filter(created_at__lt=cutoff).values_list("pk", flat=True)[:500])
    for pk in ids:
        apply_write_back.delay(pk)
    return len(ids)


@shared_task(name=dispatch.BUILD_EVIDENCE, acks_late=True)
def build_period_evidence(export_id: str) -> str:
    """Prepare a period's evidence bundle a person asked for on the page."""
    export = evidence.build_requested_evidence(export_id)
    return "no such export" if export is None else export.state


@shared_task
def expire_evidence() -> int:
    """Celery beat calls this: delete prepared bundles past their expiry."""
    return evidence.expire_bundles()


@shared_task(name=dispatch.ANNOUNCE_EVENT, acks_late=True)
def announce_event(seq: int) -> int:
    """Announce audit event ``seq`` after it committed: a delivery per subscribed webhook, and the leads' email."""
    announced = webhooks.announce(seq)
    for delivery_id in announced.deliveries:
        deliver_webhook.delay(delivery_id)
    if announced.ask_for_signatures:
        ask_leads_to_sign.delay(seq)
    return len(announced.deliveries)


# Retries are counted on the delivery (webhooks.MAX_ATTEMPTS), which beat's sweep may also resume.
@shared_task(name=dispatch.DELIVER_WEBHOOK, bind=True, max_retries=None, acks_late=True)
def deliver_webhook(self: Task[Any, Any], delivery_id: int) -> str:
    """One attempt of a delivery; a retryable failure is attempted again after its backoff."""
    outcome = webhooks.attempt(delivery_id)
    # In-process (no broker) the next attempt waits for a worker's sweep; retrying here would block the caller.
    if outcome.retry_in is not None and not self.request.is_eager:
        raise self.retry(countdown=outcome.retry_in)
    return f"{outcome.status}: {outcome.detail}"


@shared_task
def retry_webhook_deliveries() -> int:
    """Celery beat calls this every minute: attempt each delivery whose next attempt is due."""
    ids = webhooks.due(timezone.now())
    for pk in ids:
        deliver_webhook.delay(pk)
    return len(ids)


@shared_task(bind=True, max_retries=3, acks_late=True)
def ask_leads_to_sign(self: Task[Any, Any], seq: int) -> int:
    """Email the ML leads that the release submitted in audit event ``seq`` waits for their signature."""
    try:
        return email.ask_leads_to_sign(seq)
    except OSError as exc:  # the mail server is down or refuses (smtplib's errors are OSErrors)
        if self.request.is_eager or self.request.retries >= 3:
            logger.warning("the email asking the ML leads to sign (audit event #%s) was not sent: %s", seq, exc)
            return 0
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
