"""Every state change of the chain goes through these functions: one transaction, one audit event."""

from __future__ import annotations

from releases.services.access import create_api_token, grant_role, revoke_api_token, revoke_role
from releases.services.code import (
    CommitData,
    add_repository,
    record_commits,
    record_tag,
    resolve_commit,
    resolve_commits,
)
from releases.services.data import (
    hash_file,
    lift_quarantine,
    observe_digest,
    quarantine_dataset_version,
    register_dataset_version,
)
from releases.services.deployment import create_endpoint, promotion_refusal, record_deployment, roll_back
from releases.services.experiment import (
    DatasetRef,
    ModelVersionData,
    RunData,
    add_tracking_server,
    feature_pipeline_version,
    record_run,
    record_runs,
    register_model_version,
    register_model_versions,
)
from releases.services.release import (
    approval_refusal,
    approve_release,
    create_release,
    reject_release,
    retire_release,
    submit_release,
)

__all__ = [
    "CommitData",
    "DatasetRef",
    "ModelVersionData",
    "RunData",
    "add_repository",
    "add_tracking_server",
    "approval_refusal",
    "approve_release",
    "create_api_token",
    "create_endpoint",
    "create_release",
    "feature_pipeline_version",
    "grant_role",
    "hash_file",
    "lift_quarantine",
    "observe_digest",
    "promotion_refusal",
    "quarantine_dataset_version",
    "record_commits",
    "record_deployment",
    "record_run",
    "record_runs",
    "record_tag",
    "register_dataset_version",
    "register_model_version",
    "register_model_versions",
    "reject_release",
    "resolve_commit",
    "resolve_commits",
    "retire_release",
    "revoke_api_token",
    "revoke_role",
    "roll_back",
    "submit_release",
]
