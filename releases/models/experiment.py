"""The experiment link: MLflow tracking servers and the runs they hold."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from audit import pgtriggers
from releases.models.code import Commit, name_validator
from releases.models.credentials import MlflowCredentials, env_field, file_field, username_validator
from releases.models.data import DatasetVersion
from releases.models.features import FeaturePipelineVersion
from releases.web_links import validate_web_url


class TrackingServer(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    tracking_uri = models.CharField(max_length=500)
    ui_url = models.CharField(
        max_length=500, blank=True, validators=[validate_web_url], help_text="Base URL of the MLflow UI for deep links."
    )
    # Credentials: where the sync reads them, never the secrets (releases/models/credentials.py).
    username = models.CharField(
        max_length=150, blank=True, validators=[username_validator], help_text="MLflow user for Basic authentication."
    )
    password_env = env_field("password")
    password_file = file_field("password")
    token_env = env_field("token")
    token_file = file_field("token")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(token_env="") | models.Q(token_file=""), name="server_token_from_one_place"
            ),
            models.CheckConstraint(
                condition=models.Q(password_env="") | models.Q(password_file=""), name="server_password_from_one_place"
            ),
            models.CheckConstraint(
                condition=models.Q(token_env="", token_file="")
                | models.Q(username="", password_env="", password_file=""),
                name="server_token_or_password",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def credentials(self) -> MlflowCredentials:
        return MlflowCredentials.of(self)

    @property
    def credential(self) -> str:
        """Which credential the sync presents, in words ("token from $MLFLOW_PROD_TOKEN"); never its value."""
        return self.credentials.describe()

    audit_type: ClassVar[str] = "tracking_server"

    @property
    def audit_key(self) -> str:
        """How the audit log names this tracking server."""
        return self.name


class ExperimentRun(models.Model):
    server = models.ForeignKey(TrackingServer, on_delete=models.PROTECT, related_name="runs")
    run_id = models.CharField(max_length=64)
    experiment_id = models.CharField(max_length=64, blank=True)
    experiment_name = models.CharField(max_length=255, blank=True)
    name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, blank=True)
    user = models.CharField(max_length=150, blank=True)
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    commit_sha = models.CharField(max_length=40, blank=True, help_text="As reported, even when not (yet) resolved.")
    commit = models.ForeignKey(Commit, null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
    feature_pipeline_version = models.ForeignKey(
        FeaturePipelineVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    warnings = models.JSONField(default=list, blank=True, help_text="Malformed values seen while syncing.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start_time"]
        constraints = [models.UniqueConstraint(fields=["server", "run_id"], name="run_unique_per_server")]
        indexes = [
            # pattern_ops so that run-id prefix lookups from the search box (LIKE 'abc%') use the index
            # on PostgreSQL; it serves exact lookups too.
            models.Index(fields=["run_id"], name="run_id_idx", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["commit_sha"], name="run_commit_sha_idx"),
        ]

    def __str__(self) -> str:
        return self.name or self.run_id

    audit_type: ClassVar[str] = "run"

    @property
    def audit_key(self) -> str:
        """How the audit log names this run."""
        return f"{self.server.name}:{self.run_id}"

    @property
    def url(self) -> str:
        if not self.server.ui_url:
            return ""
        return f"{self.server.ui_url.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    @property
    def commit_unresolved(self) -> bool:
        return bool(self.commit_sha) and self.commit_id is None


class RunDatasetInput(models.Model):
    """A dataset version a run used, in an MLflow context (training, evaluation, ...)."""

    run = models.ForeignKey(ExperimentRun, on_delete=models.CASCADE, related_name="dataset_inputs")
    dataset_version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="run_inputs")
    context = models.CharField(max_length=40, default="training")
    digest = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["context", "dataset_version"]
        constraints = [
            models.UniqueConstraint(fields=["run", "dataset_version", "context"], name="run_input_unique"),
        ]
        indexes = [models.Index(fields=["dataset_version", "run"], name="run_input_dsv_idx")]
        # A run's inputs are re-read from MLflow row by row (services.record_runs); never emptied wholesale.
        triggers = [pgtriggers.refuse_truncate("run_input_no_truncate", "run inputs are never emptied wholesale")]

    def __str__(self) -> str:
        return f"{self.dataset_version} ({self.context})"
