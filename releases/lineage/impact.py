"""Everything downstream of a dataset version, commit or run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from releases.lineage.live import endpoints_with_live
from releases.lineage.paging import Page, numbered_page
from releases.models import (
    Commit,
    DatasetVersion,
    Deployment,
    Endpoint,
    ExperimentRun,
    ModelVersion,
    Release,
    RunDatasetInput,
)
from releases.prepared import planned_for_their_values


@dataclass(frozen=True)
class Impact:
    """Everything downstream, as five ordered lists of just the columns the pages show; nothing is read
    until a list is paged or walked, so a version a hundred thousand runs used costs one page of each.

    Runs and model versions come newest recorded first: reading the primary key backwards stops at the
    page's last row, where ordering by start time would sort every run that used the version first.
    """

    runs: QuerySet[ExperimentRun]
    model_versions: QuerySet[ModelVersion]
    releases: QuerySet[Release]
    endpoints_ever: QuerySet[Endpoint]
    live_endpoints: QuerySet[Endpoint]
    # The ids of ``runs`` in the same order, from an index that holds them so (a dataset version's inputs):
    # a page is cut from them and its runs read by id, however many newer runs other versions have.
    run_keys: QuerySet[Any] | None = None

    def pages(self, numbers: ImpactPageNumbers) -> ImpactPages:
        """One page of each list with its exact total (ten queries), each planned for the version, commit or run
        it is about: one a hundred thousand runs used needs another plan than one a single run used."""
        with planned_for_their_values():
            return ImpactPages(
                runs=numbered_page(self.runs, numbers.runs, keys=self.run_keys),
                model_versions=numbered_page(self.model_versions, numbers.model_versions),
                releases=numbered_page(self.releases, numbers.releases),
                endpoints_ever=numbered_page(self.endpoints_ever, numbers.endpoints_ever),
                live_endpoints=numbered_page(self.live_endpoints, numbers.live_endpoints),
            )


@dataclass(frozen=True)
class ImpactPageNumbers:
    """Which page of each impact list to show (from 1; past the last means the last)."""

    runs: int = 1
    model_versions: int = 1
    releases: int = 1
    endpoints_ever: int = 1
    live_endpoints: int = 1


@dataclass(frozen=True)
class ImpactPages:
    runs: Page[ExperimentRun]
    model_versions: Page[ModelVersion]
    releases: Page[Release]
    endpoints_ever: Page[Endpoint]
    live_endpoints: Page[Endpoint]


def _impact(
    runs: QuerySet[ExperimentRun],
    used: Callable[[OuterRef], QuerySet[Any]],
    release_filter: Q | None = None,
    run_keys: QuerySet[Any] | None = None,
) -> Impact:
    """The lists downstream of ``runs`` (which ``used(run)`` finds too, given a reference to a run's id),
    and of the releases ``release_filter`` names directly.

    Each list asks of its own rows whether they lead to such a run (EXISTS), rather than gathering every
    such run first (IN): a page then stops at its fiftieth row, and SQLite, which builds an IN list in
    full for every query, probes an index per row instead.
    """
    releases = Release.objects.filter(
        Q(Exists(used(OuterRef("model_version__run_id")))) | (release_filter or Q(pk__in=[]))
    )
    # The impacted releases, read once per query (an uncorrelated IN) and looked up for each deployment.
    deployed = Deployment.objects.filter(endpoint_id=OuterRef("pk"), release_id__in=releases.values("pk"))
    endpoint_columns = ("name", "environment")
    return Impact(
        runs=runs.only("run_id", "name").order_by("-pk"),
        model_versions=ModelVersion.objects.filter(Exists(used(OuterRef("run_id"))))
        .select_related("registered_model")
        .only("version", "registered_model__name")
        .order_by("-pk"),
        releases=releases.only("name", "state").order_by("-created_at", "-pk"),
        endpoints_ever=Endpoint.objects.filter(Exists(deployed)).only(*endpoint_columns).order_by("name"),
        # An endpoint is live on an impacted release only if it ever deployed one: asked first, that
        # narrows the endpoints whose live deployment is looked up to those few.
        live_endpoints=endpoints_with_live()
        .filter(Exists(deployed), Exists(releases.filter(pk=OuterRef("live_release_id"))))
        .only(*endpoint_columns)
        .order_by("name"),
        run_keys=run_keys,
    )


def impact_of_dataset_version(version: DatasetVersion) -> Impact:
    """Everything downstream of one dataset version."""
    inputs = RunDatasetInput.objects.filter(dataset_version=version)
    # Newest first from the (dataset version, run) index; a run may use the version in two contexts
    # (training and evaluation), so each run once.
    keys = inputs.values("run_id").order_by("-run_id").distinct()
    runs = ExperimentRun.objects.filter(Exists(inputs.filter(run_id=OuterRef("pk"))))
    return _impact(runs, lambda run: inputs.filter(run_id=run), run_keys=keys)


def impact_of_commit(commit: Commit) -> Impact:
    """Everything built from one commit: runs on it, runs on features built from it, releases cut from it."""
    runs = ExperimentRun.objects.filter(Q(commit=commit) | Q(feature_pipeline_version__commit=commit))
    return _impact(runs, lambda run: runs.filter(pk=run), Q(commit=commit) | Q(git_tag__commit=commit))


def impact_of_run(run: ExperimentRun) -> Impact:
    """Everything downstream of one run."""
    just_this = ExperimentRun.objects.filter(pk=run.pk)
    return _impact(just_this, lambda ref: just_this.filter(pk=ref))


def releases_using(versions: Iterable[DatasetVersion]) -> QuerySet[Release]:
    """Releases whose run trained or evaluated on any of ``versions``."""
    return Release.objects.filter(
        model_version__run__dataset_inputs__dataset_version__in=[v.pk for v in versions]
    ).distinct()
