"""Writes for the features, experiment and model links: runs, feature versions, model versions."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit import log
from audit.log import Actor
from releases.errors import Conflict, InvalidInput, LineageError
from releases.models import (
    DatasetDigest,
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
from releases.services.code import resolve_commit, resolve_commits
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
    return record_runs(server, [data], by=by)[0]


@dataclass
class _PlannedRun:
    """What one run's row and inputs should become, resolved before the write transaction."""

    data: RunData
    values: dict[str, Any]
    inputs: dict[tuple[int, str], tuple[DatasetVersion, DatasetRef]]


def record_runs(server: TrackingServer, runs: Sequence[RunData], *, by: Actor) -> list[str]:
    """``record_run`` for a page of runs: one outcome per run, in order, the same rows and events.

    References (commits, feature versions, dataset versions) are resolved for the whole page with a
    few queries, the rows are written with bulk statements in one transaction, and each created or
    updated run still gets its own audit event. A run listed twice is written once, as last listed.
    """
    latest = {data.run_id: data for data in runs}
    planned = _plan_runs(list(latest.values()))
    outcomes: dict[str, str] = {}
    with transaction.atomic():
        # Row locks: a run written by two syncs at once is compared and written by one, then the other.
        existing = {
            run.run_id: run
            for run in ExperimentRun.objects.select_for_update().filter(server=server, run_id__in=list(latest))
        }
        stored_inputs: dict[int, dict[tuple[int, str], str]] = {}
        for run_pk, version_pk, context, digest in RunDatasetInput.objects.filter(
            run_id__in=[run.pk for run in existing.values()]
        ).values_list("run_id", "dataset_version_id", "context", "digest"):
            stored_inputs.setdefault(run_pk, {})[(version_pk, context)] = digest
        created: list[ExperimentRun] = []
        updated: list[ExperimentRun] = []
        changed_fields: set[str] = set()
        rewire: list[tuple[ExperimentRun, _PlannedRun]] = []
        now = timezone.now()
        for plan in planned:
            run = existing.get(plan.data.run_id)
            if run is None:
                run = ExperimentRun(server=server, run_id=plan.data.run_id, **plan.values)
                created.append(run)
                outcomes[plan.data.run_id] = "created"
                if plan.inputs:
                    rewire.append((run, plan))
                continue
            changed = [name for name in _RUN_FIELDS if getattr(run, name) != plan.values[name]]
            for name in changed:
                setattr(run, name, plan.values[name])
            if changed:
                run.updated_at = now
                updated.append(run)
                changed_fields.update(changed)
            known = stored_inputs.get(run.pk, {})
            wanted = {key: ref.digest for key, (_, ref) in plan.inputs.items()}
            if known != wanted:
                rewire.append((run, plan))
            outcomes[plan.data.run_id] = "updated" if changed or known != wanted else "unchanged"
        ExperimentRun.objects.bulk_create(created, batch_size=500)
        if updated:
            ExperimentRun.objects.bulk_update(updated, [*sorted(changed_fields), "updated_at"], batch_size=200)
        if rewire:
            RunDatasetInput.objects.filter(run__in=[run for run, _ in rewire if run.pk in stored_inputs]).delete()
            RunDatasetInput.objects.bulk_create(
                [
                    RunDatasetInput(run=run, dataset_version=version, context=ref.context, digest=ref.digest)
                    for run, plan in rewire
                    for version, ref in plan.inputs.values()
                ],
                batch_size=1000,
            )
        log.record_many(
            [
                log.PendingEvent(
                    f"run.{outcomes[plan.data.run_id]}",
                    object_type="run",
                    object_key=f"{server.name}:{plan.data.run_id}",
                    new={
                        "name": plan.data.name,
                        "commit": plan.values["commit_sha"],
                        "datasets": sorted(f"{v.key} ({r.context})" for v, r in plan.inputs.values()),
                        "feature_view": plan.data.feature_view,
                        "warnings": plan.values["warnings"],
                    },
                )
                for plan in planned
                if outcomes[plan.data.run_id] != "unchanged"
            ],
            actor=by,
        )
        _observe_digests(planned, by=by)
    return [outcomes[data.run_id] for data in runs]


def _plan_runs(datas: list[RunData]) -> list[_PlannedRun]:
    """Resolve every reference of a page of runs; what cannot be resolved becomes a warning."""
    commits = resolve_commits(data.commit_sha for data in datas if data.commit_sha)
    features: dict[str, FeaturePipelineVersion | str] = {}
    for key in sorted({data.feature_view for data in datas if data.feature_view}):
        try:
            features[key] = feature_pipeline_version(key)
        except InvalidInput as exc:
            features[key] = str(exc)
    versions = _dataset_versions({ref.key for data in datas for ref in data.datasets})
    planned: list[_PlannedRun] = []
    for data in datas:
        warnings = list(data.warnings)
        commit = commits.get(data.commit_sha) if data.commit_sha else None
        feature_version = features.get(data.feature_view) if data.feature_view else None
        if isinstance(feature_version, str):
            warnings.append(feature_version)
            feature_version = None
        inputs: dict[tuple[int, str], tuple[DatasetVersion, DatasetRef]] = {}
        for ref in data.datasets:
            version = versions.get(ref.key)
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
        planned.append(_PlannedRun(data, values, inputs))
    return planned


def _dataset_versions(keys: set[str]) -> dict[str, DatasetVersion]:
    """The registered versions among ``name:version`` keys, by key, in one query."""
    query = Q()
    for key in keys:
        name, _, version = key.rpartition(":")
        if name and version.isdigit():
            query |= Q(dataset__name=name, version=int(version))
    if not query:
        return {}
    return {version.key: version for version in DatasetVersion.objects.filter(query).select_related("dataset")}


def _observe_digests(planned: list[_PlannedRun], *, by: Actor) -> None:
    """Hand each digest not seen before for its version to observe_digest, which flags a mutation."""
    reported: dict[tuple[int, str], tuple[DatasetVersion, str]] = {}
    for plan in planned:
        for version, ref in plan.inputs.values():
            if ref.digest:
                reported.setdefault((version.pk, ref.digest), (version, ref.source))
    if not reported:
        return
    seen = set(
        DatasetDigest.objects.filter(
            dataset_version_id__in={pk for pk, _ in reported}, digest__in={digest for _, digest in reported}
        ).values_list("dataset_version_id", "digest")
    )
    for (pk, digest), (version, source) in reported.items():
        if (pk, digest) not in seen:
            observe_digest(version, digest=digest, source=source, by=by)


@dataclass(frozen=True)
class ModelVersionData:
    name: str
    version: int
    source_run_id: str = ""
    artifact_uri: str = ""
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    created_at: datetime.datetime | None = None


def _check_model_version(data: ModelVersionData) -> None:
    if not data.name.strip():
        raise InvalidInput("a registered model needs a name")
    if data.version < 1:
        raise InvalidInput(f"model version must be a positive integer, not {data.version!r}")


def register_model_versions(
    server: TrackingServer | None, versions: Sequence[ModelVersionData], *, by: Actor
) -> list[str | LineageError]:
    """``register_model_version`` for a page: one outcome per version, or the error that refused it.

    Versions not registered yet (all of them on a first sync) are inserted together, each with its
    own audit event; a version already known, or listed twice, takes the one-by-one path, which
    compares it with what is stored.
    """
    outcomes: dict[int, str | LineageError] = {}
    valid: list[tuple[int, ModelVersionData]] = []
    for index, data in enumerate(versions):
        try:
            _check_model_version(data)
        except LineageError as exc:
            outcomes[index] = exc
            continue
        valid.append((index, data))
    later: list[tuple[int, ModelVersionData]] = []
    try:
        with transaction.atomic():
            models = {
                name: RegisteredModel.objects.get_or_create(name=name, defaults={"server": server})[0]
                for name in sorted({data.name for _, data in valid})
            }
            stored = set(
                ModelVersion.objects.filter(registered_model__in=list(models.values())).values_list(
                    "registered_model__name", "version"
                )
            )
            runs: dict[str, ExperimentRun] = {}
            run_ids = {data.source_run_id for _, data in valid if data.source_run_id}
            found = ExperimentRun.objects.filter(run_id__in=run_ids)
            for run in found.filter(server=server) if server else found:
                runs.setdefault(run.run_id, run)
            fresh: list[tuple[int, ModelVersionData]] = []
            for index, data in valid:
                if (data.name, data.version) in stored:
                    later.append((index, data))
                    continue
                stored.add((data.name, data.version))
                fresh.append((index, data))
            ModelVersion.objects.bulk_create(
                [
                    ModelVersion(
                        registered_model=models[data.name],
                        version=data.version,
                        source_run_id=data.source_run_id,
                        run=runs.get(data.source_run_id),
                        artifact_uri=data.artifact_uri,
                        aliases=sorted(data.aliases),
                        tags=data.tags,
                        created_at=data.created_at,
                    )
                    for _, data in fresh
                ],
                batch_size=500,
            )
            log.record_many(
                [
                    log.PendingEvent(
                        "model_version.registered",
                        object_type="model_version",
                        object_key=f"{data.name}/{data.version}",
                        new={"run_id": data.source_run_id, "artifact_uri": data.artifact_uri},
                    )
                    for _, data in fresh
                ],
                actor=by,
            )
            outcomes.update({index: "created" for index, _ in fresh})
    except IntegrityError:
        # Another writer registered one of them meanwhile: compare each with what is stored now.
        later = valid
    for index, data in later:
        try:
            outcomes[index] = register_model_version(server, data, by=by)[1]
        except LineageError as exc:
            outcomes[index] = exc
    return [outcomes[index] for index in range(len(versions))]


def register_model_version(
    server: TrackingServer | None, data: ModelVersionData, *, by: Actor
) -> tuple[ModelVersion, str]:
    """Create or refresh a registry version. Its run and artifact never change once recorded."""
    _check_model_version(data)
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
