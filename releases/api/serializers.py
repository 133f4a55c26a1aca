"""What the API reads and writes. Input serializers validate shape; the services enforce the rules."""

from __future__ import annotations

import copy
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from releases import lineage
from releases.models import Approval, DatasetVersion, Deployment, Endpoint, RegisteredModel
from releases.models.base import MAX_BIG, MAX_VERSION


# Input ----------------------------------------------------------------------------------------------
class DatasetVersionIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    version = serializers.IntegerField(min_value=1, max_value=MAX_VERSION)
    uri = serializers.CharField(max_length=1000)
    content_hash = serializers.CharField(max_length=71, help_text="sha256:<64 hex>")
    size_bytes = serializers.IntegerField(min_value=0, max_value=MAX_BIG, required=False, allow_null=True)


class ReleaseIn(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="e.g. churn-v42")
    model_version = serializers.CharField(max_length=200, help_text="registered model/version, e.g. churn-model/42")
    commit = serializers.CharField(max_length=40, required=False, default="", allow_blank=True)
    git_tag = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    validation_report_uri = serializers.CharField(max_length=1000, required=False, default="", allow_blank=True)
    submit = serializers.BooleanField(required=False, default=False, help_text="submit for approval right away")


class DeploymentIn(serializers.Serializer):
    endpoint = serializers.CharField(max_length=100)
    release = serializers.CharField(max_length=100)
    reason = serializers.CharField(required=False, default="", allow_blank=True)
    deployed_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    backfill = serializers.BooleanField(
        required=False, default=False, help_text="record past history (needs the deployments:backfill scope)"
    )


@extend_schema_field({"type": "string", "enum": Endpoint.Environment.values})
class EnvironmentField(serializers.CharField):
    """Documented with the environments; any other is refused by the service, so the refusal is audited."""


class EndpointIn(serializers.Serializer):
    name = serializers.CharField(max_length=Endpoint._meta.get_field("name").max_length, help_text="e.g. churn-scoring")
    environment = EnvironmentField()
    registered_model = serializers.CharField(
        max_length=RegisteredModel._meta.get_field("name").max_length,
        required=False,
        default="",
        allow_blank=True,
        help_text="the MLflow registered model it serves, e.g. churn-model",
    )
    mlflow_alias = serializers.CharField(
        max_length=Endpoint._meta.get_field("mlflow_alias").max_length,
        required=False,
        default="",
        allow_blank=True,
        help_text="the registered model's alias serving follows (models:/<model>@<alias>), e.g. production; "
        "MLflow's alias rules apply",
    )
    description = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="compared with the recorded one only when given"
    )


class RollbackIn(serializers.Serializer):
    reason = serializers.CharField()
    target = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="refuse unless this is still the rollback target"
    )


# Output ---------------------------------------------------------------------------------------------
# A serializer builds its fields anew each time one is made: ModelSerializer introspects the model (field
# types, lengths, validators, help texts), and every serializer deep-copies its declared fields, which
# re-creates each from its arguments. Together that was half the time a trace took to serialise. The fields
# are the same every time, so they are built once per class and each serializer gets its own copies, as a
# field is bound to its serializer (bind sets its name, parent and source path). A plain field holds nothing
# else, so a shallow copy of the unbound original is its own; a field with fields or a child inside is copied
# whole. No docstring: the API schema would show it as each output's description.
def _own_copy(field: serializers.Field) -> serializers.Field:
    if isinstance(field, serializers.BaseSerializer | serializers.ListField | serializers.DictField):
        return copy.deepcopy(field)
    # copy.copy without its generic protocol (a third of the cost): the same class, the same attributes.
    clone: serializers.Field = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    return clone


class FieldsReadOnce(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        if "_fields_read_once" not in cls.__dict__:
            cls._fields_read_once = super().get_fields()  # type: ignore[attr-defined]
        return {name: _own_copy(field) for name, field in cls._fields_read_once.items()}  # type: ignore[attr-defined]


class DatasetVersionOut(FieldsReadOnce, serializers.ModelSerializer):
    key = serializers.CharField()
    name = serializers.CharField(source="dataset.name")

    class Meta:
        model = DatasetVersion
        fields = ["key", "name", "version", "uri", "content_hash", "size_bytes", "status", "status_reason", "mutated"]


class ApprovalOut(FieldsReadOnce, serializers.ModelSerializer):
    class Meta:
        model = Approval
        fields = ["approver_name", "decision", "meaning", "comment", "signed_at", "signed_digest", "signature"]


class DeploymentOut(FieldsReadOnce, serializers.ModelSerializer):
    endpoint = serializers.CharField(source="endpoint.name")
    release = serializers.CharField(source="release.name")

    class Meta:
        model = Deployment
        fields = ["id", "endpoint", "release", "deployed_at", "kind", "source", "actor", "reason"]


class LinkOut(FieldsReadOnce):
    key = serializers.CharField()
    name = serializers.CharField(source="label")
    present = serializers.BooleanField()
    identifiers = serializers.ListField(child=serializers.CharField())
    explanation = serializers.CharField()
    warnings = serializers.ListField(child=serializers.CharField())


STATUS_SCHEMA = {
    "type": "object",
    "properties": {
        "key": {"type": "string", "description": "the same value as state: " + ", ".join(lineage.STATUS_KEYS)},
        "label": {"type": "string"},
        "detail": {"type": "string"},
    },
    "required": ["key", "label", "detail"],
}


class ReleaseSummaryOut(FieldsReadOnce):
    """One release with its digest and completeness (what a list shows)."""

    name = serializers.CharField(source="release.name")
    state = serializers.SerializerMethodField(help_text="the release's status key, as every page shows it")
    status = serializers.SerializerMethodField(help_text="the release's status: key, label and why")
    model_version = serializers.CharField(source="model_version.key")
    created_at = serializers.DateTimeField(source="release.created_at")
    lineage_digest = serializers.CharField(source="digest")
    completeness = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=lineage.STATUS_KEYS))
    def get_state(self, trace: lineage.Trace) -> str:
        return lineage.release_status(trace).key

    @extend_schema_field(STATUS_SCHEMA)
    def get_status(self, trace: lineage.Trace) -> dict[str, str]:
        return lineage.release_status(trace).as_dict()

    def get_completeness(self, trace: lineage.Trace) -> dict[str, Any]:
        present, total = trace.completeness
        missing = [{"link": link.key, "explanation": link.explanation} for link in trace.links if not link.present]
        return {"present": present, "total": total, "missing": missing}


class ApprovalStateOut(FieldsReadOnce):
    valid = serializers.BooleanField(source="is_valid")
    invalidated = serializers.BooleanField()
    approvals_required = serializers.IntegerField(source="required")
    reasons = serializers.SerializerMethodField(help_text="why an earlier approval no longer counts")

    def get_reasons(self, state: lineage.ApprovalState) -> list[str]:
        return [change for _, changes in state.stale for change in changes]


class TraceOut(ReleaseSummaryOut):
    """The full trace of a release."""

    commit = serializers.CharField(source="commit_sha")
    git_tag = serializers.CharField(source="release.git_tag.name", default="")
    validation_report_uri = serializers.CharField(source="release.validation_report_uri")
    links = LinkOut(many=True)
    dataset_versions = DatasetVersionOut(many=True)
    run_id = serializers.CharField(source="run.run_id", default="")
    feature_pipeline_version = serializers.CharField(source="feature_version.key", default="")
    chain = serializers.DictField(help_text="the canonical chain the digest covers")
    approval = serializers.SerializerMethodField()
    approvals = ApprovalOut(many=True)
    deployments = DeploymentOut(many=True)

    def get_approval(self, trace: lineage.Trace) -> dict[str, Any]:
        return dict(ApprovalStateOut(lineage.approval_state(trace)).data)


class EndpointOut(FieldsReadOnce):
    name = serializers.CharField(source="endpoint.name")
    environment = serializers.CharField(source="endpoint.environment")
    registered_model = serializers.CharField(source="endpoint.registered_model.name", default="")
    mlflow_alias = serializers.CharField(source="endpoint.mlflow_alias")
    description = serializers.CharField(source="endpoint.description")
    # Null while nothing is live (a newly declared endpoint), or when no earlier release is safe to restore.
    live_release = serializers.CharField(source="live.release.name", default=None, allow_null=True)
    live_since = serializers.DateTimeField(source="live.deployed_at", default=None, allow_null=True)
    deployed_by = serializers.CharField(source="live.actor", default=None, allow_null=True)
    rollback_target = serializers.CharField(source="rollback_target.name", default=None, allow_null=True)
    rollback_blocker = serializers.CharField()
