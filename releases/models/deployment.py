"""The deployment link: endpoints and the append-only history of what was deployed to them."""

from __future__ import annotations

import datetime
from typing import ClassVar

from django.conf import settings
from django.db import models

from audit import pgtriggers
from releases.models.code import name_validator
from releases.models.data import DatasetVersion
from releases.models.registry import RegisteredModel
from releases.models.release import Release


class Endpoint(models.Model):
    class Environment(models.TextChoices):
        PRODUCTION = "production"
        STAGING = "staging"

    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    environment = models.CharField(max_length=12, choices=Environment.choices)
    registered_model = models.ForeignKey(
        RegisteredModel, null=True, blank=True, on_delete=models.PROTECT, related_name="endpoints"
    )
    mlflow_alias = models.CharField(
        max_length=100, blank=True, help_text="Registry alias that serving follows, e.g. production."
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # What is live now: the newest deployment (by time, then in the order recorded) and its release, kept by
    # the one service that records deployments, in the deployment's transaction under the endpoint's lock.
    # What was live at an earlier moment is read from the deployments (``DeploymentQuerySet.live_at``).
    live_deployment_now = models.ForeignKey(
        "releases.Deployment", null=True, blank=True, editable=False, on_delete=models.PROTECT, related_name="+"
    )
    live_release_now = models.ForeignKey(
        Release, null=True, blank=True, editable=False, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["environment", "name"]
        indexes = [
            # The board pages through endpoints in this order: a page of 25 is read from the index, not by
            # sorting every endpoint.
            models.Index(fields=["environment", "name"], name="endpoint_board_order_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    audit_type: ClassVar[str] = "endpoint"

    @property
    def audit_key(self) -> str:
        """How the audit log names this endpoint."""
        return self.name

    @property
    def is_production(self) -> bool:
        return self.environment == self.Environment.PRODUCTION


class DeploymentQuerySet(models.QuerySet["Deployment"]):
    def live_at(self, when: datetime.datetime) -> DeploymentQuerySet:
        """Deployments at or before ``when``, newest first: ``.first()`` per endpoint is what was live."""
        return self.filter(deployed_at__lte=when).order_by("-deployed_at", "-id")


class Deployment(models.Model):
    """One event: a release went live on an endpoint. Never edited, never deleted."""

    class Kind(models.TextChoices):
        DEPLOY = "deploy"
        ROLLBACK = "rollback"

    class Source(models.TextChoices):
        API = "api"
        UI = "ui"
        CLI = "cli"
        MLFLOW_ALIAS = "mlflow-alias"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="deployments")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    deployed_at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DEPLOY)
    reason = models.TextField(blank=True)
    source = models.CharField(max_length=15, choices=Source.choices)

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["-deployed_at", "-id"]
        indexes = [
            models.Index(fields=["endpoint", "-deployed_at", "-id"], name="deployment_endpoint_time_idx"),
            models.Index(fields=["release", "endpoint"], name="deployment_release_idx"),
        ]
        triggers = [
            pgtriggers.Protect(name="deployment_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("deployment_no_truncate", "deployments are append-only"),
        ]

    def __str__(self) -> str:
        return f"{self.release} on {self.endpoint} at {self.deployed_at:%Y-%m-%d %H:%M}"


class EndpointModel(models.Model):
    """A registered model one of whose releases went live on an endpoint, kept as its first such deployment is.

    Where a model's releases went, without reading all its deployments (hundreds of thousands, at scale):
    written by the one service that records deployments, in the deployment's transaction. Never edited.
    """

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "endpoint"], name="endpoint_model_unique"),
        ]
        triggers = [
            pgtriggers.Protect(name="endpoint_model_append_only", operation=pgtriggers.UPDATE_OR_DELETE),
            pgtriggers.refuse_truncate("endpoint_model_no_truncate", "where models went is never emptied"),
        ]

    def __str__(self) -> str:
        return f"{self.registered_model_id} on {self.endpoint_id}"


class DatasetVersionEndpoint(models.Model):
    """An endpoint that a release trained or evaluated on a dataset version went live on.

    Where a dataset version reached, read from one index instead of found through every deployment of every
    release its runs became (a version a hundred thousand runs used reaches 50,000 deployments at scale).
    Kept exactly: a row is added in the transaction that records such a deployment (``services.deployment``)
    and the rows of a model version's endpoints are added or removed in the transaction that changes its
    dataset links (``services.experiment.keep_dataset_links``, as a run's inputs change).
    """

    dataset_version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="endpoint_links")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="dataset_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset_version", "endpoint"], name="dataset_version_endpoint_unique"),
        ]
        triggers = [pgtriggers.refuse_truncate("dataset_version_endpoint_no_truncate", "links follow deployments")]

    def __str__(self) -> str:
        return f"{self.dataset_version_id} reached {self.endpoint_id}"
