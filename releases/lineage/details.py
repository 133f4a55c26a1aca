"""The pages of the other links: dataset versions, commits, runs, models, the release list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.utils import timezone

from releases.lineage.compare import as_float
from releases.lineage.impact import (
    Impact,
    ImpactPageNumbers,
    ImpactPages,
    impact_of_commit,
    impact_of_dataset_version,
    impact_of_run,
)
from releases.lineage.paging import Page, keyset_page, numbered_page
from releases.lineage.rules import awaiting_signature
from releases.lineage.trace import traced_releases
from releases.models import (
    Commit,
    DatasetDigest,
    DatasetVersion,
    Deployment,
    Endpoint,
    EndpointModel,
    ExperimentRun,
    ModelVersion,
    RegisteredModel,
    Release,
    RunDatasetInput,
)


@dataclass(frozen=True)
class DatasetVersionDetail:
    version: DatasetVersion
    digests: list[DatasetDigest]
    # Everything downstream, and the page of each list the page shows.
    downstream: Impact
    impact: ImpactPages

    @cached_property
    def approved_releases(self) -> Page[Release]:
        """Approved releases on this version, the newest first (a page with the total; two queries when read):
        a quarantine stops their approvals counting for good, so after a lift they must be signed again."""
        return numbered_page(self.downstream.releases.filter(state=Release.State.APPROVED), 1)


def dataset_version_detail(name: str, version: int, numbers: ImpactPageNumbers | None = None) -> DatasetVersionDetail:
    """One dataset version, the digests seen for it and a page of each list of its impact (twelve queries)."""
    found = (
        DatasetVersion.objects.select_related("dataset")
        .prefetch_related("digests")
        .get(dataset__name=name, version=version)
    )
    impact = impact_of_dataset_version(found)
    return DatasetVersionDetail(found, list(found.digests.all()), impact, impact.pages(numbers or ImpactPageNumbers()))


def commit_detail(sha_prefix: str, numbers: ImpactPageNumbers | None = None) -> tuple[list[Commit], ImpactPages | None]:
    """Commits matching a sha prefix, and a page of each list of the impact of the commit when exactly one
    matches (eleven queries)."""
    commits = list(Commit.objects.by_prefix(sha_prefix).select_related("repository")[:20])
    if len(commits) != 1:
        return commits, None
    return commits, impact_of_commit(commits[0]).pages(numbers or ImpactPageNumbers())


def run_detail(run_id: str, numbers: ImpactPageNumbers | None = None) -> tuple[ExperimentRun, ImpactPages]:
    """One MLflow run with its inputs and a page of each list of its impact (twelve queries).
    Raises ExperimentRun.DoesNotExist."""
    run = (
        ExperimentRun.objects.select_related("server", "commit__repository", "feature_pipeline_version__pipeline")
        .prefetch_related(
            Prefetch(
                "dataset_inputs",
                queryset=RunDatasetInput.objects.select_related("dataset_version__dataset").order_by(
                    "context", "dataset_version__dataset__name"
                ),
            )
        )
        .filter(run_id=run_id)
        .order_by("server__name")[:1]
        .get()
    )
    return run, impact_of_run(run).pages(numbers or ImpactPageNumbers())


LOWER_IS_BETTER = ("loss", "error", "rmse", "mae", "mse", "latency")


@dataclass(frozen=True)
class MetricPoint:
    version: int
    value: float
    worse: bool


@dataclass(frozen=True)
class MetricSeries:
    key: str
    points: list[MetricPoint]

    @property
    def lower_is_better(self) -> bool:
        return any(word in self.key.lower() for word in LOWER_IS_BETTER)


@dataclass(frozen=True)
class ModelHistory:
    model: RegisteredModel
    # Newest first, keyed on the version number.
    versions: Page[ModelVersion]
    # Each metric across the versions on this page.
    metrics: list[MetricSeries]
    # Every endpoint a release of this model went to, annotated with what is live on it now.
    endpoints: Page[Endpoint]
    # The endpoints each version on this page is live on now, by model version id.
    live_on: dict[int, list[Endpoint]]

    @property
    def rows(self) -> list[tuple[ModelVersion, list[Endpoint]]]:
        """Each version on this page with the endpoints it is live on now, from the recorded deployments."""
        return [(mv, self.live_on.get(mv.pk, [])) for mv in self.versions.rows]


def _metric_series(versions: Sequence[ModelVersion]) -> list[MetricSeries]:
    """Each metric across ``versions`` (newest first), oldest to newest, each point marked when worse than before."""
    series: dict[str, list[MetricPoint]] = {}
    for mv in reversed(versions):
        for key, raw in sorted((mv.run.metrics if mv.run else {}).items()):
            value = as_float(raw)
            if value is None:
                continue
            points = series.setdefault(key, [])
            lower = any(word in key.lower() for word in LOWER_IS_BETTER)
            worse = bool(points) and (value > points[-1].value if lower else value < points[-1].value)
            points.append(MetricPoint(mv.version, value, worse))
    return [MetricSeries(k, v) for k, v in sorted(series.items())]


def model_history(
    name: str, *, before: int | None = None, after: int | None = None, endpoints_page: int = 1
) -> ModelHistory:
    """A page of a registered model's versions (newest first, or those below version ``before`` or above
    ``after``) with their runs' metrics and their releases, each metric across them, and a page of the
    endpoints its releases went to with what is live there now (seven queries; eight past either end of
    the versions).

    What is live comes from the recorded deployments, never from the registry aliases a sync copied:
    a rollback recorded a second ago shows at once.
    """
    model = RegisteredModel.objects.get(name=name)
    releases = Release.objects.only("name", "state", "model_version_id").order_by("-created_at")
    versions = keyset_page(
        ModelVersion.objects.filter(registered_model=model)
        .select_related("run")
        .only("version", "aliases", "created_at", "registered_model_id", "run__run_id", "run__name", "run__metrics")
        .prefetch_related(Prefetch("releases", queryset=releases)),
        ("version",),
        before=None if before is None else (before,),
        after=None if after is None else (after,),
    )
    for mv in versions.rows:
        mv.registered_model = model
    live = Deployment.objects.filter(endpoint=OuterRef("pk")).live_at(timezone.now())
    annotated = Endpoint.objects.only("name", "environment").annotate(
        live_release_name=Subquery(live.values("release__name")[:1]),
        live_model_version_id=Subquery(live.values("release__model_version_id")[:1]),
    )
    went_to = EndpointModel.objects.filter(registered_model=model).values("endpoint_id")
    endpoints = numbered_page(annotated.filter(pk__in=went_to).order_by("environment", "name"), endpoints_page)
    live_on: dict[int, list[Endpoint]] = {}
    shown = [mv.pk for mv in versions.rows]
    # Only an endpoint that ever deployed a release of a version shown can have one live: asked first, that
    # narrows the endpoints whose live deployment is looked up from all of them to those few.
    deployed_shown = Deployment.objects.filter(release__model_version_id__in=shown).values("endpoint_id")
    for endpoint in annotated.filter(pk__in=deployed_shown, live_model_version_id__in=shown).order_by(
        "environment", "name"
    ):
        live_on.setdefault(endpoint.live_model_version_id, []).append(endpoint)
    return ModelHistory(model, versions, _metric_series(versions.rows), endpoints, live_on)


def release_list(*, model: str = "", state: str = "", waiting_for: Any = None) -> QuerySet[Release]:
    """Releases for the list page, newest first, filtered; rows carry their chain for completeness."""
    releases = traced_releases().order_by("-created_at", "-id")
    if model:
        releases = releases.filter(model_version__registered_model__name=model)
    if state:
        releases = releases.filter(state=state)
    if waiting_for is not None:
        releases = releases.filter(pk__in=[trace.release.pk for trace in awaiting_signature(waiting_for)])
    return releases
