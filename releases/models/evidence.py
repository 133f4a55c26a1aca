from __future__ import annotations

import datetime
import os
import uuid
from typing import ClassVar

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage
from django.db import models
from django.utils import timezone


class EvidenceStorage(FileSystemStorage):
    """Where prepared bundles are kept until they expire (LINEAGE_EVIDENCE_DIR): a directory the web
    processes and the workers share. Read from the settings at each use, so tests and deployments may move it."""

    @property
    def base_location(self) -> str:
        return str(settings.LINEAGE_EVIDENCE_DIR)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)


def evidence_storage() -> Storage:
    return _STORAGE


_STORAGE = EvidenceStorage()


class EvidenceExport(models.Model):
    """A bundle of evidence for a period, prepared by a worker and kept for download until it expires.

    What was asked for, by whom and when is fixed; the state, progress and file are the worker's. The
    audit log holds the request and the export themselves; this row is how the page follows the work.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        READY = "ready"
        FAILED = "failed"
        EXPIRED = "expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    since = models.DateTimeField()
    until = models.DateTimeField()
    environments = models.JSONField(default=list)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    releases_total = models.PositiveIntegerField(default=0)
    releases_done = models.PositiveIntegerField(default=0)
    changes = models.PositiveIntegerField(default=0, help_text="Deployments and rollbacks in the population.")
    bundle = models.FileField(storage=evidence_storage, blank=True)
    filename = models.CharField(max_length=200, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    audit_type: ClassVar[str] = "evidence"

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            models.Index(fields=["-requested_at"], name="evidence_export_newest_idx"),
            models.Index(fields=["state", "expires_at"], name="evidence_export_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"evidence {self.since:%Y-%m-%d}..{self.until:%Y-%m-%d} ({self.state})"

    @property
    def audit_key(self) -> str:
        return str(self.id)

    @property
    def progress_percent(self) -> int:
        if self.state == self.State.READY:
            return 100
        return int(100 * self.releases_done / self.releases_total) if self.releases_total else 0

    @property
    def in_progress(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)

    def is_downloadable(self, now: datetime.datetime | None = None) -> bool:
        """Ready, its file kept, and not past its expiry: the one test the page and the download share."""
        return self.state == self.State.READY and bool(self.bundle) and not self.is_expired(now)

    def is_expired(self, now: datetime.datetime | None = None) -> bool:
        return self.state == self.State.EXPIRED or (
            self.expires_at is not None and self.expires_at <= (now or timezone.now())
        )
