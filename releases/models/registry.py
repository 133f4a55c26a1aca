"""The model link: registered models and their versions in the MLflow registry."""

from __future__ import annotations

from typing import ClassVar

from django.core.validators import MinValueValidator
from django.db import models

from audit import pgtriggers
from releases.models.base import GuardedModel, version_number
from releases.models.experiment import ExperimentRun, TrackingServer


def alias_problem(alias: str) -> str:
    """Why MLflow would refuse ``alias`` as a registered model alias ("" when it takes it).

    The checks are MLflow's own, the ones its registry runs when an alias is set, so the product never
    records an alias that the write-back could not set (``models:/<name>@<alias>``).
    """
    # Imported here: loading MLflow takes about a second, which only the code that needs it should pay.
    # These are MLflow's internal helpers; an upgrade that renames them fails the alias tests, not silently.
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_alias_name, _validate_model_alias_name_reserved

    try:
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
    except MlflowException as refused:
        return str(refused.message)
    return ""


class RegisteredModel(models.Model):
    name = models.CharField(max_length=255, unique=True)
    server = models.ForeignKey(TrackingServer, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    description = models.TextField(blank=True)
    # The model inventory's own facts (SR 11-7), kept by ML leads; never copied from the registry.
    owner = models.CharField(max_length=200, blank=True, help_text="Who answers for the model.")
    purpose = models.TextField(blank=True, help_text="What the model is used for and by whom.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    audit_type: ClassVar[str] = "registered_model"

    @property
    def audit_key(self) -> str:
        """How the audit log names this registered model."""
        return self.name


class ModelVersionQuerySet(models.QuerySet["ModelVersion"]):
    def by_key(self, key: str) -> ModelVersionQuerySet:
        """The version named ``model/version`` (empty when malformed)."""
        name, _, version = key.rpartition("/")
        number = version_number(version)
        if not name or number is None:
            return self.none()
        return self.filter(registered_model__name=name, version=number)


class ModelVersion(GuardedModel):
    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    source_run_id = models.CharField(max_length=64, blank=True)
    run = models.ForeignKey(
        ExperimentRun, null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions"
    )
    artifact_uri = models.CharField(max_length=1000, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)

    immutable_fields = ("registered_model", "version", "source_run_id", "artifact_uri")
    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["registered_model", "-version"]
        constraints = [models.UniqueConstraint(fields=["registered_model", "version"], name="model_version_unique")]
        indexes = [models.Index(fields=["source_run_id"], name="mv_source_run_idx")]
        triggers = [
            pgtriggers.ReadOnly(
                name="model_version_immutable",
                fields=["registered_model", "version", "source_run_id", "artifact_uri"],
            ),
            pgtriggers.Protect(name="model_version_never_deleted", operation=pgtriggers.DELETE),
            pgtriggers.refuse_truncate("model_version_no_truncate", "model versions are never deleted"),
        ]

    def __str__(self) -> str:
        return self.key

    audit_type: ClassVar[str] = "model_version"

    @property
    def audit_key(self) -> str:
        """How the audit log names this model version."""
        return self.key

    @property
    def key(self) -> str:
        return f"{self.registered_model.name}/{self.version}"


class ModelVersionDataset(models.Model):
    """A dataset version a model version's run used, kept beside the run's inputs (``services.experiment``
    keeps it equal to them as either changes): what a dataset version reached is read from one index,
    not found among every run that used it, most of which never became a model version.
    """

    dataset_version = models.ForeignKey(
        "releases.DatasetVersion", on_delete=models.PROTECT, related_name="model_version_links"
    )
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="dataset_links")

    class Meta:
        # The unique index serves a dataset version's model versions, newest (highest id) first.
        constraints = [
            models.UniqueConstraint(fields=["dataset_version", "model_version"], name="model_version_dataset_unique")
        ]
        # Rows change as runs' inputs do, a few at a time; never emptied wholesale.
        triggers = [pgtriggers.refuse_truncate("model_version_dataset_no_truncate", "links follow run inputs")]

    def __str__(self) -> str:
        return f"{self.model_version_id} used {self.dataset_version_id}"
