"""What is live on each endpoint, at any moment, and what a rollback would restore."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from releases.lineage.trace import Trace, traced_releases
from releases.models import (
    DatasetVersion,
    Deployment,
    Endpoint,
    Release,
    RunDatasetInput,
)


def restorable(prefix: str = "") -> Q:
    """Condition for a release safe to restore: approved (so not retired), clean data, tag not moved.

    ``prefix`` points at the release from another model (``"release__"`` from a deployment). The data
    check is a correlated NOT EXISTS on the release's own run, so it touches a handful of index
    entries per candidate instead of every run input of the whole history.
    """
    unsafe_input = RunDatasetInput.objects.filter(
        run_id=OuterRef(f"{prefix}model_version__run_id"),
        dataset_version__in=DatasetVersion.objects.unsafe().values("pk"),
    )
    return (
        Q(**{f"{prefix}state": Release.State.APPROVED})
        & ~Q(**{f"{prefix}git_tag__moved_to_sha__gt": ""})
        & Q(~Exists(unsafe_input))
    )


class LiveAnnotations(TypedDict):
    live_deployment_id: int | None
    live_release_id: int | None


if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    EndpointWithLive = WithAnnotations[Endpoint, LiveAnnotations]
else:
    EndpointWithLive = Endpoint


def endpoints_with_live(when: datetime.datetime | None = None) -> QuerySet[EndpointWithLive]:
    """Endpoints annotated with their live deployment (and its release) at ``when`` (one query)."""
    live = Deployment.objects.filter(endpoint=OuterRef("pk")).live_at(when or timezone.now())
    annotated: QuerySet[EndpointWithLive] = Endpoint.objects.annotate(
        live_deployment_id=Subquery(live.values("id")[:1]),
        live_release_id=Subquery(live.values("release_id")[:1]),
    )
    return annotated


def with_rollback_target(deployments: QuerySet[Deployment]) -> QuerySet[Deployment]:
    """Live deployments annotated with ``rollback_release_id``: the most recent earlier deployment on the
    same endpoint of an older release that is safe to restore.

    The candidates are read against the live deployment's own columns, so each endpoint costs one
    index range scan, not a re-evaluation of "what is live" per candidate row.
    """
    target = (
        Deployment.objects.filter(
            endpoint_id=OuterRef("endpoint_id"),
            deployed_at__lt=OuterRef("deployed_at"),
            release__created_at__lt=OuterRef("release__created_at"),
        )
        .filter(restorable("release__"))
        .exclude(release_id=OuterRef("release_id"))
        .order_by("-deployed_at", "-id")
    )
    return deployments.annotate(rollback_release_id=Subquery(target.values("release_id")[:1]))


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: Endpoint
    live: Deployment | None
    live_trace: Trace | None
    rollback_target: Release | None

    @property
    def rollback_blocker(self) -> str:
        """Why there is no rollback target, in words an on-call engineer can act on."""
        if self.rollback_target is not None:
            return ""
        if self.live is None:
            return "Nothing is live on this endpoint."
        return (
            "No earlier release on this endpoint is approved, unretired and free of quarantined data; "
            "deploy a known-good release explicitly."
        )


def endpoint_statuses(
    endpoints: QuerySet[Endpoint] | None = None, when: datetime.datetime | None = None
) -> list[EndpointStatus]:
    """Live release, its trace and the rollback target of each endpoint (four queries in all)."""
    annotated = endpoints_with_live(when)
    if endpoints is not None:
        annotated = annotated.filter(pk__in=endpoints.values("pk"))
    rows = list(annotated)
    live_ids = [row.live_deployment_id for row in rows if row.live_deployment_id]
    deployments = with_rollback_target(Deployment.objects.select_related("actor_user")).in_bulk(live_ids)
    targets = {d.pk: d.rollback_release_id for d in deployments.values()}  # type: ignore[attr-defined]
    release_ids = {d.release_id for d in deployments.values()} | {t for t in targets.values() if t}
    releases = traced_releases().in_bulk(release_ids)
    statuses = []
    for row in rows:
        live = deployments.get(row.live_deployment_id) if row.live_deployment_id else None
        live_release = releases.get(live.release_id) if live else None
        if live is not None and live_release is not None:
            live.release = live_release
        statuses.append(
            EndpointStatus(
                endpoint=row,
                live=live,
                live_trace=Trace(live_release) if live_release else None,
                rollback_target=releases.get(targets[live.pk]) if live is not None and targets[live.pk] else None,
            )
        )
    return statuses
