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
    DatasetVersionEndpoint,
    Deployment,
    Endpoint,
    ExperimentRun,
    ModelVersion,
    ModelVersionDataset,
    Release,
    RunDatasetInput,
)
from releases.prepared import planned_for_their_values, sorted_not_walked


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
    # The ids of ``runs`` and of ``model_versions`` in the same order, from an index that holds them so (a
    # dataset version's inputs and links): a page is cut from them and its rows read by id, however many
    # newer rows other versions have.
    run_keys: QuerySet[Any] | None = None
    model_version_keys: QuerySet[Any] | None = None

    def pages(self, numbers: ImpactPageNumbers) -> ImpactPages:
        """One page of each list with its exact total (ten queries), each planned for the version, commit or run
        it is about: one a hundred thousand runs used needs another plan than one a single run used."""
        with planned_for_their_values():
            return ImpactPages(
                runs=numbered_page(self.runs, numbers.runs, keys=self.run_keys),
                model_versions=numbered_page(self.model_versions, numbers.model_versions, keys=self.model_version_keys),
                releases=numbered_page(self.releases, numbers.releases),
                endpoints_ever=numbered_page(
                    self.endpoints_ever, numbers.endpoints_ever, few=_sorted_by_name(self.endpoints_ever)
                ),
                live_endpoints=numbered_page(
                    self.live_endpoints, numbers.live_endpoints, few=_sorted_by_name(self.live_endpoints)
                ),
            )


def _sorted_by_name(endpoints: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
    """The endpoints gathered, then sorted by name: for a list of a few, where walking the name index would
    test every endpoint's deployments (1.9 s at 5,000 endpoints for a dataset version none went live from)."""
    return endpoints.order_by(sorted_not_walked("name"))


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
    model_versions: QuerySet[ModelVersion],
    releases: QuerySet[Release],
    *,
    run_keys: QuerySet[Any] | None = None,
    model_version_keys: QuerySet[Any] | None = None,
    reached: QuerySet[DatasetVersionEndpoint] | None = None,
) -> Impact:
    """The lists downstream, given the runs, model versions and releases it reaches (filtered, unordered), and
    the kept rows naming the endpoints it reached when there are any (``reached``, a dataset version's).

    Each list asks of its own rows whether they are downstream (EXISTS), rather than gathering the whole
    set first (IN): a page then stops at its fiftieth row, and SQLite, which builds an IN list in full for
    every query, probes an index per row instead.
    """
    deployed: QuerySet[Any]
    if reached is not None:
        deployed = reached.filter(endpoint_id=OuterRef("pk"))
    else:
        # The impacted releases, read once per query (an uncorrelated IN) and looked up for each deployment.
        deployed = Deployment.objects.filter(endpoint_id=OuterRef("pk"), release_id__in=releases.values("pk"))
    endpoint_columns = ("name", "environment")
    return Impact(
        runs=runs.only("run_id", "name").order_by("-pk"),
        model_versions=model_versions.select_related("registered_model")
        .only("version", "registered_model__name")
        .order_by("-pk"),
        # Sorted, not walked: the releases of a dataset version's oldest runs are the far end of the newest-first index.
        releases=releases.only("name", "state").order_by(sorted_not_walked("created_at").desc(), "-pk"),
        endpoints_ever=Endpoint.objects.filter(Exists(deployed)).only(*endpoint_columns).order_by("name"),
        # An endpoint is live on an impacted release only if it ever deployed one: asked first, that
        # narrows the endpoints whose live deployment is looked up to those few.
        live_endpoints=endpoints_with_live()
        .filter(Exists(deployed), Exists(releases.filter(pk=OuterRef("live_release_id"))))
        .only(*endpoint_columns)
        .order_by("name"),
        run_keys=run_keys,
        model_version_keys=model_version_keys,
    )


def _from_runs(runs: QuerySet[ExperimentRun], used: Callable[[OuterRef], QuerySet[Any]], release_filter: Q) -> Impact:
    """The impact of ``runs`` (which ``used(run)`` finds too, given a reference to a run's id), and of the
    releases ``release_filter`` names directly."""
    return _impact(
        runs,
        ModelVersion.objects.filter(Exists(used(OuterRef("run_id")))),
        Release.objects.filter(Q(Exists(used(OuterRef("model_version__run_id")))) | release_filter),
    )


def impact_of_dataset_version(version: DatasetVersion) -> Impact:
    """Everything downstream of one dataset version: its model versions and the endpoints it reached read from
    their kept links to it (``ModelVersionDataset``, ``DatasetVersionEndpoint``), not found among every run that
    used it and every deployment of their releases."""
    inputs = RunDatasetInput.objects.filter(dataset_version=version)
    links = ModelVersionDataset.objects.filter(dataset_version=version)
    return _impact(
        ExperimentRun.objects.filter(Exists(inputs.filter(run_id=OuterRef("pk")))),
        ModelVersion.objects.filter(Exists(links.filter(model_version_id=OuterRef("pk")))),
        Release.objects.filter(Exists(links.filter(model_version_id=OuterRef("model_version_id")))),
        # Newest first from the (dataset version, run) index; a run may use the version in two contexts
        # (training and evaluation), so each run once.
        run_keys=inputs.values("run_id").order_by("-run_id").distinct(),
        model_version_keys=links.values("model_version_id").order_by("-model_version_id"),
        reached=DatasetVersionEndpoint.objects.filter(dataset_version=version),
    )


def impact_of_commit(commit: Commit) -> Impact:
    """Everything built from one commit: runs on it, runs on features built from it, releases cut from it."""
    runs = ExperimentRun.objects.filter(Q(commit=commit) | Q(feature_pipeline_version__commit=commit))
    return _from_runs(runs, lambda run: runs.filter(pk=run), Q(commit=commit) | Q(git_tag__commit=commit))


def impact_of_run(run: ExperimentRun) -> Impact:
    """Everything downstream of one run."""
    just_this = ExperimentRun.objects.filter(pk=run.pk)
    return _from_runs(just_this, lambda ref: just_this.filter(pk=ref), Q(pk__in=[]))


def releases_using(versions: Iterable[DatasetVersion]) -> QuerySet[Release]:
    """Releases whose run trained or evaluated on any of ``versions`` (their model versions' kept links)."""
    return Release.objects.filter(model_version__dataset_links__dataset_version__in=[v.pk for v in versions]).distinct()
