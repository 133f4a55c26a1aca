"""The data link: datasets, their immutable versions and the digests MLflow reported for them."""

from __future__ import annotations

import datetime
from typing import ClassVar

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from audit import pgtriggers
from releases.models.base import GuardedModel, version_number
from releases.models.code import name_validator

hash_validator = RegexValidator(r"^sha256:[0-9a-f]{64}$", "A content hash looks like sha256:<64 lowercase hex>.")


class Dataset(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetVersionQuerySet(models.QuerySet["DatasetVersion"]):
    def by_key(self, key: str) -> DatasetVersionQuerySet:
        """The version named ``name:version`` (empty when the key is malformed)."""
        name, _, version = key.rpartition(":")
        number = version_number(version)
        if not name or number is None:
            return self.none()
        return self.filter(dataset__name=name, version=number)

    def quarantined(self) -> DatasetVersionQuerySet:
        """Versions under a quarantine that has not been lifted (``DatasetVersion.is_quarantined``)."""
        return self.filter(status=DatasetVersion.Status.QUARANTINED)

    def unsafe(self) -> DatasetVersionQuerySet:
        """Versions nobody should train or release on: quarantined or mutated."""
        return self.filter(models.Q(status=DatasetVersion.Status.QUARANTINED) | models.Q(mutated=True))


class DatasetVersion(GuardedModel):
    class Status(models.TextChoices):
        ACTIVE = "active"
        QUARANTINED = "quarantined"
        RETIRED = "retired"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    uri = models.CharField(max_length=1000)
    content_hash = models.CharField(max_length=71, validators=[hash_validator])
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    mutated = models.BooleanField(
        default=False, help_text="The same declared version was seen with two different contents."
    )
    mutation_detail = models.TextField(blank=True)
    # The latest quarantine and its lift. The signed chain carries them, so an approval signed before a
    # quarantine stays invalid once it is lifted (the status alone would read "active" again).
    quarantined_at = models.DateTimeField(null=True, blank=True)
    quarantine_lifted_at = models.DateTimeField(null=True, blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)

    immutable_fields = ("dataset", "version", "uri", "content_hash", "size_bytes")
    objects = DatasetVersionQuerySet.as_manager()

    class Meta:
        ordering = ["dataset", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="dataset_version_unique"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="dataset_version_positive"),
        ]
        indexes = [
            models.Index(fields=["content_hash"], name="dsv_hash_idx"),
            models.Index(fields=["status"], name="dsv_status_idx"),
        ]
        triggers = [
            pgtriggers.ReadOnly(
                name="dataset_version_immutable", fields=["dataset", "version", "uri", "content_hash", "size_bytes"]
            ),
            # A version is retired or quarantined, never deleted: runs and releases name it.
            pgtriggers.Protect(name="dataset_version_never_deleted", operation=pgtriggers.DELETE),
            pgtriggers.refuse_truncate("dataset_version_no_truncate", "dataset versions are retired, never deleted"),
        ]

    def __str__(self) -> str:
        return self.key

    audit_type: ClassVar[str] = "dataset_version"

    @property
    def audit_key(self) -> str:
        """How the audit log names this dataset version."""
        return self.key

    @property
    def key(self) -> str:
        return f"{self.dataset.name}:{self.version}"

    @property
    def is_quarantined(self) -> bool:
        return self.status == self.Status.QUARANTINED

    @property
    def quarantine_lifted(self) -> bool:
        """Quarantined once, and that quarantine was lifted."""
        return self.quarantine_lifted_at is not None and not self.is_quarantined

    @property
    def quarantine_history(self) -> dict[str, str | None] | None:
        """The latest quarantine and its lift as the signed chain carries them; None if never quarantined."""
        if self.quarantined_at is None:
            return None
        lifted = self.quarantine_lifted_at
        return {
            "quarantined_at": self.quarantined_at.astimezone(datetime.UTC).isoformat(timespec="microseconds"),
            "lifted_at": lifted.astimezone(datetime.UTC).isoformat(timespec="microseconds") if lifted else None,
        }


class DatasetDigest(models.Model):
    """A digest MLflow (or a client) reported for a dataset version. More than one means mutation."""

    dataset_version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="digests")
    digest = models.CharField(max_length=200)
    source = models.CharField(max_length=1000, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["first_seen_at"]
        constraints = [models.UniqueConstraint(fields=["dataset_version", "digest"], name="dataset_digest_unique")]

    def __str__(self) -> str:
        return self.digest
