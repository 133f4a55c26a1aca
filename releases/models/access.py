"""API service-account tokens: scoped, stored only as a hash, shown once when created."""

from __future__ import annotations

import datetime
import hashlib
import secrets
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from releases.prepared import PreparedQuery

TOKEN_PREFIX = "rl_"  # noqa: S105 - a visible marker, not a secret
# Recording every use would be a write per API call; once a minute is precise enough to spot a dead token.
LAST_USED_PRECISION = datetime.timedelta(minutes=1)


def hash_token(raw: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        """Tokens that still authenticate: not revoked, user still active."""
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    class Scope(models.TextChoices):
        READ = "read", "Read releases, traces and endpoints"
        DATASETS = "datasets:write", "Register dataset versions"
        RELEASES = "releases:write", "Create and submit releases"
        DEPLOYMENTS = "deployments:write", "Record deployments"
        BACKFILL = "deployments:backfill", "Record past deployments after the fact (backfill)"
        ENDPOINTS = "endpoints:write", "Declare endpoints"
        ROLLBACK = "endpoints:rollback", "Roll endpoints back"

    name = models.CharField(max_length=100, help_text="What uses the token, e.g. ci-churn-pipeline.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="First characters of the token, to recognise it.")
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(help_text="After this the token is refused; issue a new one.")
    last_used_at = models.DateTimeField(
        null=True, blank=True, help_text="Last request made with the token (to the minute); empty if never used."
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…, {self.user})"

    audit_type: ClassVar[str] = "api_token"

    @property
    def audit_key(self) -> str:
        """How the audit log names this api token."""
        return f"{self.pk}:{self.name}"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def has_expired(self, now: datetime.datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at

    def note_use(self, now: datetime.datetime | None = None) -> None:
        """Record that the token was just used, at most once a minute (no write for the calls in between)."""
        now = now or timezone.now()
        if self.last_used_at is not None and now - self.last_used_at < LAST_USED_PRECISION:
            return
        # update(), not save(): a token row is otherwise never written by a request, and two concurrent calls
        # may both write; the later time wins, which is the truth either way.
        ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now


# Every API call looks its token up: the query is compiled once (releases/prepared.py).
_ACTIVE_BY_HASH = PreparedQuery(
    lambda token_hash: ApiToken.objects.active().filter(token_hash=token_hash).select_related("user"), token_hash=str
)


def active_token(raw: str) -> ApiToken | None:
    """The token ``raw`` stands for (matched by its hash: the raw value is never stored) while it still
    authenticates, with its user."""
    return _ACTIVE_BY_HASH.first(token_hash=hash_token(raw))
