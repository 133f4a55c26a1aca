"""Sync bookkeeping: where each source stands, what each run looked like, and pending MLflow write-backs.

These rows are not part of the chain; they let a sync be incremental, resumable and visible.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db import models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from releases.models.code import GitRepository
from releases.models.experiment import TrackingServer


class SyncStateQuerySet(models.QuerySet["SyncState"]):
    def listed(self) -> SyncStateQuerySet:
        """Every source's state with its source joined in, Git first, and the webhook deliveries it has waiting:
        how many (``waiting_deliveries``) and since when (``waiting_since``)."""
        waiting = SyncRequest.objects.filter(state=OuterRef("pk")).order_by()
        return (
            self.select_related("repository", "server")
            .annotate(
                waiting_deliveries=Coalesce(Subquery(waiting.values("state").annotate(n=Count("pk")).values("n")), 0),
                waiting_since=Subquery(waiting.order_by("pk").values("received_at")[:1]),
            )
            .order_by("kind", "id")
        )

    def due(self, now: datetime.datetime) -> list[SyncState]:
        """Enabled sources whose interval has passed since their last attempt."""
        states = self.filter(enabled=True).select_related("repository", "server")
        return [s for s in states if s.last_attempt_at is None or s.next_due_at <= now]


class SyncState(models.Model):
    """One per source (a Git repository or an MLflow tracking server)."""

    class Kind(models.TextChoices):
        GIT = "git"
        MLFLOW = "mlflow"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    repository = models.OneToOneField(
        GitRepository, null=True, blank=True, on_delete=models.CASCADE, related_name="sync_state"
    )
    server = models.OneToOneField(
        TrackingServer, null=True, blank=True, on_delete=models.CASCADE, related_name="sync_state"
    )
    enabled = models.BooleanField(default=True)
    interval_seconds = models.PositiveIntegerField(default=300, help_text="How often Celery beat syncs this source.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_duration_seconds = models.FloatField(null=True, blank=True)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, help_text="Why the last attempt failed, in plain words.")
    failures_in_a_row = models.PositiveIntegerField(default=0)
    # An incident: the first failure since the last success, and when it was announced as failing for too long.
    failing_since = models.DateTimeField(null=True, blank=True)
    failure_alerted_at = models.DateTimeField(null=True, blank=True)
    warnings = models.JSONField(default=list, blank=True, help_text="Values the last sync could not map.")
    watermark = models.JSONField(default=dict, blank=True, help_text="How far the source has been read.")
    # The lease doubles as the per-source lock: taken with one conditional UPDATE, so two
    # workers can never both hold it; it expires, so a killed worker does not block forever.
    running_since = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=40, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_note = models.CharField(max_length=200, blank=True)

    objects = SyncStateQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(kind="git", repository__isnull=False, server__isnull=True))
                | models.Q(kind="mlflow", repository__isnull=True, server__isnull=False),
                name="sync_state_one_source",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.source_name}"

    @property
    def audit_type(self) -> str:
        return f"{self.kind}_source"

    @property
    def audit_key(self) -> str:
        """How the audit log names this source."""
        return self.source_name

    @property
    def source_name(self) -> str:
        source: Any = self.repository if self.kind == self.Kind.GIT else self.server
        return source.name if source else ""

    @property
    def source_location(self) -> str:
        if self.kind == self.Kind.GIT:
            return self.repository.url if self.repository else ""
        return self.server.tracking_uri if self.server else ""

    @property
    def source_credential(self) -> str:
        """Which credential the sync presents to the source, in words; empty when it names none."""
        source: Any = self.repository if self.kind == self.Kind.GIT else self.server
        return source.credential if source else ""

    @property
    def next_due_at(self) -> datetime.datetime:
        base = self.last_attempt_at or timezone.now()
        return base + datetime.timedelta(seconds=self.interval_seconds)

    @property
    def is_running(self) -> bool:
        return self.lease_until is not None and self.lease_until > timezone.now()


class SyncedRun(models.Model):
    """A fingerprint of each MLflow run as last synced, so an unchanged run costs no write."""

    server = models.ForeignKey(TrackingServer, on_delete=models.CASCADE, related_name="+")
    run_id = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=64)
    # Runs whose commit or dataset was not known yet are read again until they resolve.
    pending = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["server", "run_id"], name="synced_run_unique")]
        indexes = [models.Index(fields=["server", "pending"], name="synced_run_pending_idx")]

    def __str__(self) -> str:
        return self.run_id


class SyncRequest(models.Model):
    """An accepted MLflow webhook delivery, kept until a sync of its server has served it.

    A queue, not a record: the sync that serves a batch deletes it in the transaction that records the
    batch's one ``sync.webhooks_served`` event, which names every delivery in it.
    """

    state = models.ForeignKey(SyncState, on_delete=models.CASCADE, related_name="+")
    delivery_id = models.CharField(max_length=100)
    # What the delivery said happened ("model_version.created"), and what it named.
    event = models.CharField(max_length=100)
    model_name = models.CharField(max_length=255, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["state", "id"], name="sync_request_state_idx")]

    def __str__(self) -> str:
        return f"{self.event} {self.model_name}".strip()


class WriteBackQuerySet(models.QuerySet["WriteBack"]):
    def outstanding(self) -> WriteBackQuerySet:
        """Write-backs not yet applied to MLflow (queued or failed and waiting for a retry)."""
        return self.exclude(status=WriteBack.Status.DONE)


class WriteBack(models.Model):
    """A change the product owes to MLflow (an alias move, a release tag). Kept until applied."""

    class Kind(models.TextChoices):
        SET_ALIAS = "set-alias"
        SET_TAG = "set-tag"

    class Status(models.TextChoices):
        QUEUED = "queued"
        FAILED = "failed"
        DONE = "done"

    server = models.ForeignKey(TrackingServer, on_delete=models.PROTECT, related_name="write_backs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    model_name = models.CharField(max_length=255)
    version = models.PositiveIntegerField()
    key = models.CharField(max_length=255, help_text="Alias name, or tag key.")
    value = models.CharField(max_length=500, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    objects = WriteBackQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="writeback_status_idx")]

    def __str__(self) -> str:
        if self.kind == self.Kind.SET_ALIAS:
            return f"set {self.model_name}@{self.key} -> version {self.version}"
        return f"tag {self.model_name}/{self.version} {self.key}={self.value}"
