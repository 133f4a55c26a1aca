"""Everything downstream of a dataset version, commit or run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from releases.lineage.live import endpoints_with_live
from releases.models import (
    Commit,
    DatasetVersion,
    Deployment,
    Endpoint,
    ExperimentRun,
    ModelVersion,
    Release,
)


@dataclass(frozen=True)
class Impact:
    runs: list[ExperimentRun]
    model_versions: list[ModelVersion]
    releases: list[Release]
    deployments: list[Deployment]
    live_endpoints: list[Endpoint]

    @property
    def endpoints_ever(self) -> list[Endpoint]:
        seen: dict[int, Endpoint] = {}
        for deployment in self.deployments:
            seen.setdefault(deployment.endpoint_id, deployment.endpoint)
        return sorted(seen.values(), key=lambda e: e.name)


def _impact(run_filter: Q, release_filter: Q | None = None) -> Impact:
    runs = ExperimentRun.objects.filter(run_filter).distinct()
    model_versions = ModelVersion.objects.filter(run__in=runs.values("pk"))
    releases = Release.objects.filter(
        Q(model_version__in=model_versions.values("pk")) | (release_filter or Q(pk__in=[]))
    )
    deployments = Deployment.objects.filter(release__in=releases.values("pk"))
    live_now = endpoints_with_live().filter(live_release_id__in=releases.values("pk"))
    return Impact(
        runs=list(runs.select_related("server").order_by("-start_time", "run_id")),
        model_versions=list(model_versions.select_related("registered_model", "run")),
        releases=list(releases.select_related("model_version__registered_model").order_by("-created_at")),
        deployments=list(deployments.select_related("endpoint", "release")),
        live_endpoints=list(live_now.order_by("name")),
    )


def impact_of_dataset_version(version: DatasetVersion) -> Impact:
    """Everything downstream of one dataset version."""
    return _impact(Q(dataset_inputs__dataset_version=version))


def impact_of_commit(commit: Commit) -> Impact:
    """Everything built from one commit: runs on it, runs on features built from it, releases cut from it."""
    return _impact(
        Q(commit=commit) | Q(feature_pipeline_version__commit=commit),
        Q(commit=commit) | Q(git_tag__commit=commit),
    )


def impact_of_run(run: ExperimentRun) -> Impact:
    """Everything downstream of one run."""
    return _impact(Q(pk=run.pk))


def releases_using(versions: Iterable[DatasetVersion]) -> QuerySet[Release]:
    """Releases whose run trained or evaluated on any of ``versions``."""
    return Release.objects.filter(
        model_version__run__dataset_inputs__dataset_version__in=[v.pk for v in versions]
    ).distinct()
