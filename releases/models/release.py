"""The release link: a named, reviewable release of one model version, and its approvals."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from audit import pgtriggers, verifier
from releases.models.base import GuardedModel
from releases.models.code import Commit, GitTag
from releases.models.registry import ModelVersion


class ReleaseQuerySet(models.QuerySet["Release"]):
    def with_links(self) -> ReleaseQuerySet:
        """Releases with each link their status, digest and warnings read joined in (one query): what the board
        shows for each live release."""
        return self.select_related(
            "model_version__registered_model",
            "model_version__run__server",
            "model_version__run__commit",
            "model_version__run__feature_pipeline_version__pipeline",
            "commit",
            "git_tag__commit",
        )

    def with_chain(self) -> ReleaseQuerySet:
        """Releases with every single-valued link joined in (one query for the whole chain): the links, their
        commits' repositories (for a link to the forge) and who created the release."""
        return self.with_links().select_related(
            "model_version__run__commit__repository", "commit__repository", "created_by"
        )


class Release(GuardedModel):
    class State(models.TextChoices):
        DRAFT = "draft"
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        RETIRED = "retired"

    name = models.CharField(max_length=100, unique=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="releases")
    commit = models.ForeignKey(Commit, null=True, blank=True, on_delete=models.PROTECT, related_name="releases")
    git_tag = models.ForeignKey(GitTag, null=True, blank=True, on_delete=models.PROTECT, related_name="releases")
    validation_report_uri = models.CharField(max_length=1000, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="created_releases"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    state_reason = models.TextField(blank=True)
    lineage_digest = models.CharField(max_length=71, blank=True, help_text="Frozen when submitted for approval.")

    immutable_fields = ("name", "model_version", "commit", "git_tag", "validation_report_uri", "created_by")
    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="release_newest_idx"),
            models.Index(fields=["state", "created_at"], name="release_state_idx"),
            models.Index(fields=["model_version", "created_at"], name="release_mv_idx"),
        ]
        triggers = [
            pgtriggers.ReadOnly(
                name="release_immutable",
                fields=["name", "model_version", "commit", "git_tag", "validation_report_uri", "created_by"],
            ),
            # A release is retired, never deleted: its approvals, deployments and audit events name it.
            pgtriggers.Protect(name="release_never_deleted", operation=pgtriggers.DELETE),
            pgtriggers.refuse_truncate("release_no_truncate", "releases are retired, never deleted"),
        ]

    def __str__(self) -> str:
        return self.name

    audit_type: ClassVar[str] = "release"

    @property
    def audit_key(self) -> str:
        """How the audit log names this release."""
        return self.name


class Approval(models.Model):
    """A signed decision on one release. Append-only: a new decision is a new row."""

    class Decision(models.TextChoices):
        APPROVED = "approved"
        REJECTED = "rejected"

    # What each meaning of an approving signature commits the signer to, shown beside the choice.
    MEANINGS = {
        "Approved for production": (
            "I reviewed the whole chain shown (code, data, features, run, model, validation report) "
            "and approve this release to serve production traffic."
        ),
        "Reviewed": (
            "I reviewed the whole chain shown and found it complete and sound; "
            "my signature counts toward the required approvals."
        ),
    }
    REJECTION_MEANING = "Rejected"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approvals")
    approver_name = models.CharField(max_length=300, help_text="Printed name at the time of signing.")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    meaning = models.CharField(max_length=200)
    comment = models.TextField(blank=True)
    signed_digest = models.CharField(max_length=71)
    signed_chain = models.JSONField(help_text="The chain as it stood when signed; explains a later invalidation.")
    signed_at = models.DateTimeField()
    signature = models.TextField(blank=True, help_text="Ed25519 signature (hex) over the signed statement.")

    class Meta:
        ordering = ["signed_at"]
        constraints = [
            # One decision per approver per chain state: a double-submitted form cannot sign twice.
            models.UniqueConstraint(fields=["release", "approver", "signed_digest"], name="approval_once_per_digest"),
        ]
        indexes = [models.Index(fields=["approver", "signed_at"], name="approval_approver_idx")]
        triggers = [
            pgtriggers.Protect(name="approval_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("approval_no_truncate", "approvals are append-only"),
        ]

    def __str__(self) -> str:
        return f"{self.release} {self.decision} by {self.approver_name}"

    def statement(self) -> bytes:
        """The exact bytes the server's Ed25519 key signs; an offline verifier rebuilds them the same way."""
        return verifier.approval_statement(
            release=self.release.name,
            approver=self.approver.get_username(),
            decision=self.decision,
            meaning=self.meaning,
            lineage_digest=self.signed_digest,
            signed_at=self.signed_at.isoformat(),
        )

    def signed_fields(self) -> dict[str, str]:
        """What the audit event of this decision carries, so that the log alone proves the signature."""
        return {
            "decision": self.decision,
            "meaning": self.meaning,
            "lineage_digest": self.signed_digest,
            "signed_at": self.signed_at.isoformat(),
            "signature": self.signature,
        }
