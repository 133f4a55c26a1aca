"""The facts kept beside the rows they come from, so that pages read them from one index, checked against those rows.

Four facts are written by the services as the rows they follow change, in the same transaction:

- what is live on each endpoint now (``Endpoint.live_deployment_now`` and ``live_release_now``): the newest of
  its deployments up to now, as ``endpoints_with_live`` finds it at any moment;
- where each registered model's releases went (``EndpointModel``): every (model, endpoint) a deployment of one
  of its releases names;
- the dataset versions each model version's run used (``ModelVersionDataset``): its run's inputs;
- the endpoints each dataset version reached (``DatasetVersionEndpoint``): every endpoint a release of a model
  version whose run used it went live on.

The board, the model, dataset, commit and run pages read them instead of walking every deployment and input.
A kept fact that drifted from its rows (a write that went around the services, a restore of some tables
only, a bug) would make those pages disagree with the deployments and the audit trail; ``disagreements``
finds every such row by recomputing each fact from its rows in the database (one query a fact, each way).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from releases.lineage.live import endpoints_with_live
from releases.models import (
    DatasetVersion,
    DatasetVersionEndpoint,
    Deployment,
    Endpoint,
    EndpointModel,
    ModelVersion,
    ModelVersionDataset,
    RegisteredModel,
    Release,
)


@dataclass(frozen=True)
class Disagreement:
    """One kept row that its source rows do not give, or one they give that is not kept."""

    fact: str
    subject: str
    problem: str

    def __str__(self) -> str:
        return f"{self.fact}: {self.subject}: {self.problem}"


@dataclass(frozen=True)
class KeptFacts:
    """What was checked, and what disagreed (at most ``limit`` rows of each fact, each way)."""

    endpoints: int
    model_endpoints: int
    model_version_datasets: int
    dataset_version_endpoints: int
    disagreements: list[Disagreement]

    @property
    def agree(self) -> bool:
        return not self.disagreements


_DATASET_VERSIONS = DatasetVersion.objects.select_related("dataset")


def check(limit: int = 100) -> KeptFacts:
    """Each kept fact recomputed from its rows and compared with what is kept, all read at one moment."""
    with _one_snapshot():
        return _check(limit)


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Every read inside sees the database as it was at one moment, so a deployment recorded while the check
    runs is in both what is kept and its rows, or in neither: on PostgreSQL a read-only REPEATABLE READ
    transaction (inside a caller's own transaction, that transaction's view)."""
    connection = connections[Endpoint.objects.db]
    own = not connection.in_atomic_block
    with transaction.atomic(using=connection.alias):
        if own and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _check(limit: int) -> KeptFacts:
    counts = KeptFacts(
        endpoints=Endpoint.objects.count(),
        model_endpoints=EndpointModel.objects.count(),
        model_version_datasets=ModelVersionDataset.objects.count(),
        dataset_version_endpoints=DatasetVersionEndpoint.objects.count(),
        disagreements=[],
    )
    # Taken once the transaction's snapshot is (by the first read): every deployment it holds is dated before.
    now = timezone.now()
    found = [
        *_live_now(now, limit),
        *_pairs(
            "where a model's releases went",
            EndpointModel.objects.values_list("registered_model_id", "endpoint_id"),
            Deployment.objects.values_list("release__model_version__registered_model_id", "endpoint_id"),
            (RegisteredModel.objects.all(), Endpoint.objects.all()),
            ("deployed there", "no release of it went live there"),
            limit,
        ),
        *_pairs(
            "a model version's datasets",
            ModelVersionDataset.objects.values_list("model_version_id", "dataset_version_id"),
            ModelVersion.objects.filter(run__dataset_inputs__isnull=False).values_list(
                "pk", "run__dataset_inputs__dataset_version_id"
            ),
            (ModelVersion.objects.select_related("registered_model"), _DATASET_VERSIONS),
            ("its run used it", "its run did not use it"),
            limit,
        ),
        *_pairs(
            "where a dataset version reached",
            DatasetVersionEndpoint.objects.values_list("dataset_version_id", "endpoint_id"),
            Deployment.objects.filter(release__model_version__run__dataset_inputs__isnull=False).values_list(
                "release__model_version__run__dataset_inputs__dataset_version_id", "endpoint_id"
            ),
            (_DATASET_VERSIONS, Endpoint.objects.all()),
            ("a release trained on it went live there", "no release trained on it went live there"),
            limit,
        ),
    ]
    return dataclasses.replace(counts, disagreements=found)


def _live_now(now: datetime.datetime, limit: int) -> list[Disagreement]:
    """Each endpoint whose kept live deployment or release is not the newest of its deployments up to ``now``."""
    columns = ("pk", "live_deployment_id", "live_release_id")
    kept = endpoints_with_live().order_by().values_list(*columns)
    derived = endpoints_with_live(now).order_by().values_list(*columns)
    wrong = [pk for pk, _, _ in kept.difference(derived)[:limit]]
    if not wrong:
        return []
    names = dict(Endpoint.objects.filter(pk__in=wrong).values_list("pk", "name"))
    said = {pk: (deployment, release) for pk, deployment, release in derived.filter(pk__in=wrong)}
    held = {pk: (deployment, release) for pk, deployment, release in kept.filter(pk__in=wrong)}
    releases = dict(
        Release.objects.filter(pk__in=[r for _, r in [*said.values(), *held.values()] if r is not None]).values_list(
            "pk", "name"
        )
    )

    def live(deployment: int | None, release: int | None) -> str:
        if deployment is None and release is None:
            return "nothing live"
        name = "no release" if release is None else releases.get(release, f"release id {release}")
        return f"{name} (deployment {deployment if deployment is not None else 'none'})"

    return [
        Disagreement(
            "what is live now",
            f"endpoint {names[pk]}",
            f"kept as {live(*held[pk])}, its deployments say {live(*said[pk])}",
        )
        for pk in sorted(wrong, key=names.__getitem__)
    ]


def _pairs(
    fact: str,
    kept: QuerySet[Any, tuple[int, int]],
    derived: QuerySet[Any, tuple[int, int]],
    rows: tuple[QuerySet[Any], QuerySet[Any]],
    problems: tuple[str, str],
    limit: int,
) -> list[Disagreement]:
    """The pairs of ids derived and not kept, then kept and not derived, each named by its rows (from ``rows``)."""
    kept, derived = kept.order_by(), derived.order_by()
    extra = list(kept.difference(derived)[:limit])
    missing = list(derived.difference(kept)[:limit])
    if not extra and not missing:
        return []
    first = {row.pk: row for row in rows[0].filter(pk__in=[a for a, _ in extra + missing])}
    second = {row.pk: row for row in rows[1].filter(pk__in=[b for _, b in extra + missing])}

    def named(pairs: list[tuple[int, int]], problem: str) -> list[Disagreement]:
        return [Disagreement(fact, f"{first[a]} and {second[b]}", problem) for a, b in sorted(pairs)]

    return named(missing, f"not kept, though {problems[0]}") + named(extra, f"kept, though {problems[1]}")
