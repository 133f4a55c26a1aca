"""The per-source lease (lock), progress and the recorded outcome of each sync."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from releases import services
from releases.models import SyncState


class SourceBusy(Exception):
    """Another worker holds this source's lease."""


class SourceUnavailable(Exception):
    """The external system could not be read; worth retrying later. The message is for people."""


@dataclass
class SyncResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)
    details: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str, what: str, n: int = 1) -> None:
        if outcome == "created":
            self.created += n
        elif outcome == "updated":
            self.updated += n
        else:
            self.unchanged += n
        if n:
            key = f"{what} {outcome}"
            self.details[key] = self.details.get(key, 0) + n

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def summary(self) -> str:
        parts = [f"{n} {key}" for key, n in sorted(self.details.items()) if not key.endswith("unchanged")]
        changes = ", ".join(parts) if parts else "nothing changed"
        return f"{changes} ({self.created} created, {self.updated} updated, {self.unchanged} unchanged)"


class Lease:
    """The holder's handle on a source: reports progress and keeps the lease alive."""

    def __init__(self, state: SyncState, token: str) -> None:
        self.state = state
        self.token = token
        self._last_beat = 0.0

    def progress(self, done: int, note: str, *, force: bool = False) -> None:
        # At most one small UPDATE a second: progress must not slow the sync it reports on.
        now = time.monotonic()
        if not force and now - self._last_beat < 1.0:
            return
        self._last_beat = now
        lease_until = timezone.now() + datetime.timedelta(seconds=settings.LINEAGE_SYNC_LEASE_SECONDS)
        SyncState.objects.filter(pk=self.state.pk, lease_token=self.token).update(
            progress_done=done, progress_note=note[:200], lease_until=lease_until
        )


@contextmanager
def leased(state: SyncState, *, holder: str = "") -> Iterator[Lease]:
    """Hold the source's lease for the duration of one sync, or raise SourceBusy.

    One conditional UPDATE takes it, so on every database exactly one worker wins; an expired
    lease (a killed worker) can be taken over, and the watermark it did not advance makes the
    next holder redo its unfinished part.

    ``holder`` names the Celery task syncing (its id), which the lease keeps as its token. The broker
    hands a task out again only when the delivery before it is gone: its worker was killed (acks late,
    reject on worker lost), its visibility timeout passed, or it asked to be retried. So a lease whose
    token is this task's own is a dead delivery's, and is taken over at once instead of turning the
    task away as busy until it expires (the task would be acknowledged, and the sync never resumed).
    """
    token = holder or uuid.uuid4().hex
    now = timezone.now()
    lease_until = now + datetime.timedelta(seconds=settings.LINEAGE_SYNC_LEASE_SECONDS)
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    taken = (
        SyncState.objects.filter(pk=state.pk)
        .filter((free | Q(lease_token=holder)) if holder else free)
        .update(
            lease_token=token,
            lease_until=lease_until,
            running_since=now,
            last_attempt_at=now,
            progress_done=0,
            progress_note="starting",
        )
    )
    if not taken:
        raise SourceBusy(f"{state} is already being synced")
    state.refresh_from_db()
    try:
        yield Lease(state, token)
    finally:
        SyncState.objects.filter(pk=state.pk, lease_token=token).update(
            lease_token="", lease_until=None, running_since=None, progress_note=""
        )


def record_success(state: SyncState, result: SyncResult, *, started: float, watermark: dict[str, object]) -> None:
    # As the lease read them when this sync started: an incident announced before it ends now.
    failing_since, alerted = state.failing_since, state.failure_alerted_at
    SyncState.objects.filter(pk=state.pk).update(
        last_success_at=timezone.now(),
        last_duration_seconds=round(time.monotonic() - started, 3),
        created_count=result.created,
        updated_count=result.updated,
        unchanged_count=result.unchanged,
        last_error="",
        failures_in_a_row=0,
        failing_since=None,
        warnings=result.warnings[:200],
        watermark=watermark,
    )
    if alerted is not None:
        services.record_sync_recovered(state, failing_since=failing_since)
    state.refresh_from_db()


def record_failure(state: SyncState, message: str) -> None:
    """Keep why the sync failed; a source failing for longer than LINEAGE_SYNC_ALERT_MINUTES is announced once."""
    SyncState.objects.filter(pk=state.pk).update(
        last_error=message[:2000],
        failures_in_a_row=F("failures_in_a_row") + 1,
        failing_since=Coalesce(F("failing_since"), Value(timezone.now(), output_field=DateTimeField())),
    )
    state.refresh_from_db()
    if state.failure_alerted_at is None:
        services.record_sync_failing(state)
