"""Writes for the experiment link: MLflow runs, their commit, feature version and dataset inputs."""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from audit import log
from audit.log import Actor
from releases.errors import InvalidInput
from releases.models import (
    DatasetDigest,
    DatasetVersion,
    DatasetVersionEndpoint,
    Deployment,
    ExperimentRun,
    FeaturePipelineVersion,
    ModelVersion,
    ModelVersionDataset,
    RunDatasetInput,
    TrackingServer,
)
from releases.models.base import version_number
from releases.services import refusals
from releases.services.code import resolve_commits
from releases.services.data import observe_digest
from releases.services.features import feature_pipeline_version


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
    refusals.check_role("run.record_refused", by=by, subject=server, to="record MLflow runs")
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
            keep_dataset_links(
                ModelVersion.objects.filter(run__in=[run.pk for run, _ in rewire]).values_list("pk", flat=True)
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


def keep_dataset_links(model_versions: Collection[int]) -> None:
    """Make these model versions' dataset links (ModelVersionDataset) what their runs' inputs are now, and the
    endpoints their dataset versions reached follow (``_follow_endpoints``): in the transaction that changed a
    run's inputs or gave a model version its run (nine queries at most)."""
    ids = sorted(set(model_versions))
    if not ids:
        return
    runs = dict(ModelVersion.objects.filter(pk__in=ids, run__isnull=False).values_list("pk", "run_id"))
    run_ids = sorted(set(runs.values()))
    # The runs locked as record_runs locks them to change their inputs: a version linked here while another
    # transaction changes its run's inputs waits for it, then reads the inputs it left.
    list(ExperimentRun.objects.select_for_update().filter(pk__in=run_ids).order_by("pk").values_list("pk"))
    used: dict[int, set[int]] = defaultdict(set)
    for run, version in RunDatasetInput.objects.filter(run_id__in=run_ids).values_list("run_id", "dataset_version_id"):
        used[run].add(version)
    wanted = {(version, model_version) for model_version, run in runs.items() for version in used[run]}
    stored = {
        (version, model_version): pk
        for pk, version, model_version in ModelVersionDataset.objects.filter(model_version_id__in=ids).values_list(
            "pk", "dataset_version_id", "model_version_id"
        )
    }
    stale = [pk for pair, pk in stored.items() if pair not in wanted]
    if stale:
        ModelVersionDataset.objects.filter(pk__in=stale).delete()
    added = sorted(wanted - stored.keys())
    ModelVersionDataset.objects.bulk_create(
        [ModelVersionDataset(dataset_version_id=v, model_version_id=m) for v, m in added],
        batch_size=1000,
    )
    _follow_endpoints(added, [pair for pair in stored if pair not in wanted])


def _follow_endpoints(added: Sequence[tuple[int, int]], removed: Sequence[tuple[int, int]]) -> None:
    """The endpoints each dataset version reached (DatasetVersionEndpoint), after these (dataset version, model
    version) links were added and removed: a new link reaches every endpoint the model version's releases went
    live on; a removed one leaves an endpoint only if no other link of that dataset version still reaches it.
    Three queries at most; none when no link changed."""
    changed = {m for _, m in (*added, *removed)}
    if not changed:
        return
    went: dict[int, set[int]] = defaultdict(set)
    for model_version, endpoint in (
        Deployment.objects.filter(release__model_version_id__in=changed)
        .values_list("release__model_version_id", "endpoint_id")
        .distinct()
    ):
        went[model_version].add(endpoint)
    DatasetVersionEndpoint.objects.bulk_create(
        [
            DatasetVersionEndpoint(dataset_version_id=v, endpoint_id=e)
            for v, e in sorted({(v, e) for v, m in added for e in went[m]})
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    left: dict[int, set[int]] = defaultdict(set)
    for version, model_version in removed:
        left[version] |= went[model_version]
    if not any(left.values()):
        return
    still_reached = Deployment.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        release__model_version__dataset_links__dataset_version_id=OuterRef("dataset_version_id"),
    )
    candidates = Q(pk__in=[])
    for version, endpoints in left.items():
        candidates |= Q(dataset_version_id=version, endpoint_id__in=sorted(endpoints))
    DatasetVersionEndpoint.objects.filter(candidates).exclude(Exists(still_reached)).delete()


def reach_endpoint(model_version: ModelVersion, endpoint_id: int) -> None:
    """A release of ``model_version`` goes live on the endpoint: every dataset version its run used reached it
    (DatasetVersionEndpoint). In the deployment's transaction.

    The model version and its run are locked: a transaction that gives the version its run or changes the
    run's inputs holds one of them, so this waits for it and reads the links it left, or it waits for this
    deployment and then sees it (``keep_dataset_links``). Every deployment takes the endpoint's lock first,
    then these; a sync holding the run adds rows naming the endpoint, which do not wait for that lock (FOR NO
    KEY UPDATE), so neither waits for the other in a circle.
    """
    [run_id] = (
        ModelVersion.objects.select_for_update(no_key=True).filter(pk=model_version.pk).values_list("run_id", flat=True)
    )
    if run_id is not None:
        list(ExperimentRun.objects.select_for_update(no_key=True).filter(pk=run_id).values_list("pk"))
    versions = ModelVersionDataset.objects.filter(model_version=model_version).values_list(
        "dataset_version_id", flat=True
    )
    DatasetVersionEndpoint.objects.bulk_create(
        [DatasetVersionEndpoint(dataset_version_id=v, endpoint_id=endpoint_id) for v in sorted(versions)],
        ignore_conflicts=True,
    )


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
        number = version_number(version)
        if name and number is not None:
            query |= Q(dataset__name=name, version=number)
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
