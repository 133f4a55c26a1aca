"""Outbound events: who receives them (webhook subscriptions) and what was sent (the delivery log).

These rows are not part of the chain. A subscription names its signing secret by an environment
variable (``releases/credentials.py``), read by the worker that delivers; the database never holds it.
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db import models

from audit.vocabulary import OUTBOUND_EVENTS
from releases.models.code import name_validator
from releases.web_links import validate_delivery_url

# Every subscription's secret is an environment variable with this prefix (releases/credentials.py says why).
SECRET_PREFIX = "LINEAGE_WEBHOOK_SECRET_"  # noqa: S105 - the start of a variable's name, not a secret


def event_types_problem(value: Any) -> str:
    """Why ``value`` is not a list of outbound event types (empty when it is one)."""
    if not isinstance(value, list) or not value:
        return "choose at least one event"
    unknown = [str(item)[:80] for item in value if item not in OUTBOUND_EVENTS]
    if unknown:
        return f"unknown events {', '.join(map(repr, unknown))}; the events are {', '.join(OUTBOUND_EVENTS)}"
    return ""


def validate_event_types(value: Any) -> None:
    problem = event_types_problem(value)
    if problem:
        raise ValidationError(problem, code="unknown_event")


class WebhookSubscriptionQuerySet(models.QuerySet["WebhookSubscription"]):
    def wanting(self, event_type: str) -> list[WebhookSubscription]:
        """The active subscriptions that asked for ``event_type`` (a handful: filtered here, on every database)."""
        return [s for s in self.filter(active=True).order_by("pk") if event_type in s.events]


class WebhookSubscription(models.Model):
    """An address that receives outbound events, signed, as JSON or as a Slack message."""

    class Format(models.TextChoices):
        JSON = "json", "JSON document"
        SLACK = "slack", "Slack message (text and blocks)"

    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    url = models.CharField(
        "URL", max_length=500, validators=[validate_delivery_url], help_text="Where events are POSTed (http or https)."
    )
    events = models.JSONField(default=list, validators=[validate_event_types], help_text="The events it receives.")
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.JSON)
    secret_env = models.CharField(
        "secret",
        max_length=100,
        blank=True,
        help_text=f"Name of the environment variable holding the signing secret ({SECRET_PREFIX}...), or of a file "
        "through NAME_FILE; read by the worker at delivery, never stored. Optional for Slack, which does not check it.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WebhookSubscriptionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    audit_type: ClassVar[str] = "webhook_subscription"

    @property
    def audit_key(self) -> str:
        """How the audit log names this subscription."""
        return self.name


class WebhookDeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    def due(self, now: datetime.datetime) -> WebhookDeliveryQuerySet:
        """Deliveries waiting for an attempt whose time has come (a worker's own retry may have been lost)."""
        return self.filter(status__in=WebhookDelivery.OPEN, next_attempt_at__lte=now)


class WebhookDelivery(models.Model):
    """One audit event sent to one subscription: the exact body, and where its attempts stand."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RETRYING = "retrying"
        DELIVERED = "delivered"
        FAILED = "failed"

    OPEN = (Status.PENDING, Status.RETRYING)

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.PROTECT, related_name="deliveries")
    event = models.CharField(max_length=60, help_text="The outbound event type.")
    audit_seq = models.PositiveBigIntegerField(help_text="The audit event announced.")
    delivery_id = models.CharField(max_length=40, unique=True, help_text="Signed, and sent in X-Lineage-Delivery-Id.")
    body = models.TextField(help_text="The exact bytes sent at every attempt.")
    payload_digest = models.CharField(max_length=71, help_text="sha256 of the body.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Announcing an event twice (a task redelivered by the broker) delivers it once per subscription.
            models.UniqueConstraint(fields=["subscription", "audit_seq"], name="webhook_delivery_once")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due_idx")]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} (audit event #{self.audit_seq}) to {self.subscription}"


class WebhookAttempt(models.Model):
    """One POST of a delivery: what the receiver answered, or why there was no answer."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.PROTECT, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_once")]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error[:60]}"
