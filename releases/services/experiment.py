"""Writes for the features, experiment and model links: runs, feature versions, model versions."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from audit import log
from audit.log import Actor
from releases.errors import Conflict, InvalidInput
from releases.models import (
    DatasetVersion,
    ExperimentRun,
    FeaturePipeline,
    FeaturePipelineVersion,
    ModelVersion,
    RegisteredModel,
    RunDatasetInput,
    TrackingServer,
)
from releases.models.code import name_validator
from releases.models.features import FEATURE_VIEW_RE
from releases.services.code import resolve_commit
from releases.services.data import observe_digest
from releases.services.validation import check


def add_tracking_server(*, name: str, tracking_uri: str, ui_url: str = "", by: Actor) -> TrackingServer:
    """Register an MLflow tracking server to sync from (idempotent on name)."""
    check(name_validator, name, "tracking server name")
    with transaction.atomic():
        server, created = TrackingServer.objects.get_or_create(
            name=name, defaults={"tracking_uri": tracking_uri, "ui_url": ui_url or tracking_uri}
        )
        if not created:
            if server.tracking_uri != tracking_uri:
                raise InvalidInput(f"tracking server {name} already exists with URI {server.tracking_uri}")
            return server
        log.record(
            "tracking_server.added",
            actor=by,
            object_type="tracking_server",
            object_key=name,
            new={"tracking_uri": tracking_uri},
        )
    return server


def feature_pipeline_version(key: str, *, commit_sha: str = "") -> FeaturePipelineVersion:
    """The feature pipeline version named ``customer_features_v5``, created on first mention."""
    match = FEATURE_VIEW_RE.match(key)
    if not match:
        raise InvalidInput(f"feature view {key!r} is not of the form <pipeline>_v<N>")
    with transaction.atomic():
        pipeline, _ = FeaturePipeline.objects.get_or_create(name=match["pipeline"])
        version, created = FeaturePipelineVersion.objects.get_or_create(
            pipeline=pipeline, version=int(match["version"]), defaults={"commit": resolve_commit(commit_sha)}
        )
        if not created and version.commit_id is None and commit_sha:
            commit = resolve_commit(commit_sha)
            if commit is not None:
                version.commit = commit
                version.save(update_fields=["commit"])
    return version


@dataclass(frozen=True)
class DatasetRef:
    """A dataset version a run says it used: ``churn-train:17`` in a context, maybe with a digest."""

    key: str
    context: str = "training"
    digest: str = ""
    source: str = ""


@dataclass
class RunData:
    run_id: str
    experiment_id: str = ""
    experiment_name: str = ""
    name: str = ""
    status: str = ""
    user: str = ""
    start_time: datetime.datetime | None = None
    end_time: datetime.datetime | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commit_sha: str = ""
    feature_view: str = ""
    datasets: list[DatasetRef] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


_RUN_FIELDS = (
    "experiment_id",
    "experiment_name",
    "name",
    "status",
    "user",
    "start_time",
    "end_time",
    "params",
    "metrics",
    "tags",
    "commit_sha",
    "commit_id",
    "feature_pipeline_version_id",
    "warnings",
)


def record_run(server: TrackingServer, data: RunData, *, by: Actor) -> str:
    """Create or update a run and its links. Returns "created", "updated" or "unchanged".

    Malformed references become warnings on the run, so one bad tag never stops a sync.
    """
    warnings = list(data.warnings)
    commit = resolve_commit(data.commit_sha) if data.commit_sha else None
    feature_version = None
    if data.feature_view:
        try:
            feature_version = feature_pipeline_version(data.feature_view)
        except InvalidInput as exc:
            warnings.append(str(exc))
    inputs: dict[tuple[int, str], tuple[DatasetVersion, DatasetRef]] = {}
    for ref in data.datasets:
        version = DatasetVersion.objects.by_key(ref.key).select_related("dataset").first()
        if version is None:
            warnings.append(f"dataset version {ref.key!r} is not registered")
            continue
        inputs[(version.pk, ref.context)] = (version, ref)
    values: dict[str, Any] = {
        "experiment_id": data.experiment_id,
        "experiment_name": data.experiment_name,
        "name": data.name,
        "status": data.status,
        "user": data.user,
        "start_time": data.start_time,
        "end_time": data.end_time,
        "params": data.params,
        "metrics": data.metrics,
        "tags": data.tags,
        "commit_sha": commit.sha if commit else data.commit_sha.lower()[:40],
        "commit_id": commit.pk if commit else None,
        "feature_pipeline_version_id": feature_version.pk if feature_version else None,
        "warnings": warnings,
    }
    with transaction.atomic():
        run = ExperimentRun.objects.select_for_update().filter(server=server, run_id=data.run_id).first()
        if run is None:
            run = ExperimentRun.objects.create(server=server, run_id=data.run_id, **values)
            outcome = "created"
        else:
            changed = [name for name in _RUN_FIELDS if getattr(run, name) != values[name]]
            for name in changed:
                setattr(run, name, values[name])
            if changed:
                run.save(update_fields=[*changed, "updated_at"])
            outcome = "updated" if changed else "unchanged"
        known = {(i.dataset_version_id, i.context): i for i in run.dataset_inputs.all()}
        if set(known) != set(inputs) or any(
            known[k].digest != inputs[k][1].digest for k in known.keys() & inputs.keys()
        ):
            run.dataset_inputs.all().delete()
            RunDatasetInput.objects.bulk_create(
                RunDatasetInput(run=run, dataset_version=version, context=ref.context, digest=ref.digest)
                for version, ref in inputs.values()
            )
            outcome = "updated" if outcome == "unchanged" else outcome
        if outcome != "unchanged":
            log.record(
                f"run.{outcome}",
                actor=by,
                object_type="run",
                object_key=f"{server.name}:{data.run_id}",
                new={
                    "name": data.name,
                    "commit": values["commit_sha"],
                    "datasets": sorted(f"{v.key} ({r.context})" for v, r in inputs.values()),
                    "feature_view": data.feature_view,
                    "warnings": warnings,
                },
            )
        for version, ref in inputs.values():
            observe_digest(version, digest=ref.digest, source=ref.source, by=by)
    return outcome


@dataclass(frozen=True)
class ModelVersionData:
    name: str
    version: int
    source_run_id: str = ""
    artifact_uri: str = ""
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    created_at: datetime.datetime | None = None


def register_model_version(
    server: TrackingServer | None, data: ModelVersionData, *, by: Actor
) -> tuple[ModelVersion, str]:
    """Create or refresh a registry version. Its run and artifact never change once recorded."""
    if not data.name.strip():
        raise InvalidInput("a registered model needs a name")
    if data.version < 1:
        raise InvalidInput(f"model version must be a positive integer, not {data.version!r}")
    key = f"{data.name}/{data.version}"
    with transaction.atomic():
        model, _ = RegisteredModel.objects.get_or_create(name=data.name, defaults={"server": server})
        run = None
        if data.source_run_id:
            runs = ExperimentRun.objects.filter(run_id=data.source_run_id)
            run = (runs.filter(server=server) if server else runs).first()
        existing = ModelVersion.objects.select_for_update().filter(registered_model=model, version=data.version).first()
        if existing is None:
            created = ModelVersion.objects.create(
                registered_model=model,
                version=data.version,
                source_run_id=data.source_run_id,
                run=run,
                artifact_uri=data.artifact_uri,
                aliases=sorted(data.aliases),
                tags=data.tags,
                created_at=data.created_at,
            )
            log.record(
                "model_version.registered",
                actor=by,
                object_type="model_version",
                object_key=key,
                new={"run_id": data.source_run_id, "artifact_uri": data.artifact_uri},
            )
            return created, "created"
        for attr in ("source_run_id", "artifact_uri"):
            if getattr(existing, attr) != getattr(data, attr):
                raise Conflict(
                    f"{key} is already registered with {attr} {getattr(existing, attr)!r}; register a new version",
                    rule="immutable_version",
                )
        changes: dict[str, Any] = {}
        if sorted(data.aliases) != existing.aliases:
            changes["aliases"] = sorted(data.aliases)
        if data.tags != existing.tags:
            changes["tags"] = data.tags
        if run is not None and existing.run_id != run.pk:
            changes["run"] = run
        if not changes:
            return existing, "unchanged"
        old = {"aliases": existing.aliases, "tags": existing.tags}
        for attr, value in changes.items():
            setattr(existing, attr, value)
        existing.save(update_fields=list(changes))
        log.record(
            "model_version.updated",
            actor=by,
            object_type="model_version",
            object_key=key,
            old=old,
            new={"aliases": existing.aliases, "tags": existing.tags},
        )
        return existing, "updated"
