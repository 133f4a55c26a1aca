"""Every state change of the chain goes through these functions: one transaction, one audit event.

The names below are what the doors (pages, API, admin, commands, sync adapters) call.
"""

from __future__ import annotations

from releases.services.access import create_api_token, grant_role, revoke_api_token, revoke_role
from releases.services.code import (
    CommitColumns,
    CommitData,
    record_commit_columns,
    record_commits,
    record_tag,
    record_tags,
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
from releases.services.deployment import (
    create_endpoint,
    declare_endpoint,
    follow_alias,
    record_deployment,
    roll_back,
)
from releases.services.experiment import DatasetRef, RunData, keep_dataset_links, record_run, record_runs
from releases.services.integrity import acknowledge_alarm
from releases.services.inventory import describe_model
from releases.services.registry import ModelVersionData, register_model_version, register_model_versions
from releases.services.release import create_release, release_from_tag, retire_release, sign_release, submit_release
from releases.services.sources import (
    add_git_repository,
    add_mlflow_server,
    queue_sync_request,
    record_served_requests,
    record_sync_failing,
    record_sync_recovered,
    request_sync,
    serve_sync_requests,
    set_git_credentials,
    set_interval,
    set_mlflow_credentials,
)
from releases.services.webhooks import add_webhook, change_webhook

__all__ = [
    "CommitColumns",
    "CommitData",
    "DatasetRef",
    "ModelVersionData",
    "RunData",
    "acknowledge_alarm",
    "add_git_repository",
    "add_mlflow_server",
    "add_webhook",
    "change_webhook",
    "create_api_token",
    "create_endpoint",
    "create_release",
    "declare_endpoint",
    "describe_model",
    "follow_alias",
    "grant_role",
    "hash_file",
    "keep_dataset_links",
    "lift_quarantine",
    "observe_digest",
    "quarantine_dataset_version",
    "queue_sync_request",
    "record_commit_columns",
    "record_commits",
    "record_deployment",
    "record_run",
    "record_runs",
    "record_served_requests",
    "record_sync_failing",
    "record_sync_recovered",
    "record_tag",
    "record_tags",
    "register_dataset_version",
    "register_model_version",
    "register_model_versions",
    "release_from_tag",
    "request_sync",
    "resolve_commit",
    "resolve_commits",
    "retire_release",
    "revoke_api_token",
    "revoke_role",
    "roll_back",
    "serve_sync_requests",
    "set_git_credentials",
    "set_interval",
    "set_mlflow_credentials",
    "sign_release",
    "submit_release",
]
