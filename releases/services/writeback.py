"""Queue the changes the product owes to MLflow: the endpoint's alias on deploy/rollback, the release tag on approval.

The row is written in the caller's transaction, and the task that applies it is enqueued only
once that transaction commits, so a write-back is never sent for a change that rolled back and
never lost for one that committed (a failed one stays queued and is retried).
"""

from __future__ import annotations

from django.conf import settings

from audit import log
from audit.log import Actor
from releases import dispatch, lineage
from releases.models import Endpoint, ModelVersion, Release, TrackingServer, WriteBack
from releases.roles import ML_LEADS, ON_CALL, RELEASE_MANAGERS
from releases.services import refusals

# Those whose deployments, rollbacks and approvals owe MLflow a change.
CHANGERS = (RELEASE_MANAGERS, ML_LEADS, ON_CALL)


def _queue(server: TrackingServer, *, by: Actor, object_key: str, **fields: object) -> WriteBack:
    write_back = WriteBack.objects.create(server=server, **fields)
    log.record(
        "mlflow.write_back_queued",
        actor=by,
        subject=server,
        new={"change": str(write_back), "for": object_key},
    )
    dispatch.after_commit(dispatch.APPLY_WRITE_BACK, write_back.pk)
    return write_back


def queue_alias_move(endpoint: Endpoint, release: Release, *, by: Actor, reason: str) -> WriteBack | None:
    """Point the endpoint's followed alias at the release's model version (when the endpoint follows one)."""
    refusals.check_role("mlflow.write_back_refused", *CHANGERS, by=by, subject=endpoint, to="move an MLflow alias")
    if not endpoint.mlflow_alias or endpoint.registered_model_id is None:
        return None
    version = ModelVersion.objects.select_related("registered_model__server").get(pk=release.model_version_id)
    server = version.registered_model.server
    alias = lineage.moved_alias(endpoint, version)  # the rule the rollback page states
    if server is None or not alias:
        return None
    return _queue(
        server,
        by=by,
        object_key=f"endpoint:{endpoint.name}",
        kind=WriteBack.Kind.SET_ALIAS,
        model_name=version.registered_model.name,
        version=version.version,
        key=alias,
        reason=reason[:300],
    )


def queue_release_tag(release: Release, *, by: Actor) -> WriteBack | None:
    """Tag the model version with the release that was approved from it."""
    refusals.check_role("mlflow.write_back_refused", *CHANGERS, by=by, subject=release, to="tag a model version")
    version = ModelVersion.objects.select_related("registered_model__server").get(pk=release.model_version_id)
    server = version.registered_model.server
    if server is None:
        return None
    return _queue(
        server,
        by=by,
        object_key=f"release:{release.name}",
        kind=WriteBack.Kind.SET_TAG,
        model_name=version.registered_model.name,
        version=version.version,
        key=settings.LINEAGE_MLFLOW_RELEASE_TAG,
        value=release.name,
        reason=f"{release.name} approved",
    )
