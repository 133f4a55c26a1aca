"""An endpoint's past: what was live when, and the investigation of an incident."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from releases.lineage.compare import Comparison, compare_traces
from releases.lineage.live import EndpointStatus, endpoint_statuses
from releases.lineage.trace import Trace
from releases.models import (
    Deployment,
    Endpoint,
)


@dataclass(frozen=True)
class Investigation:
    """What was live on an endpoint at a moment, and how it differs from the previous stable release."""

    endpoint: Endpoint
    at: datetime.datetime
    status: EndpointStatus
    comparison: Comparison | None


def investigate(endpoint_name: str, at: datetime.datetime, *, commits_page: int = 1) -> Investigation:
    """The release live on ``endpoint_name`` at ``at``, its chain, and the diff with its rollback target
    (with page ``commits_page`` of the commits between them).

    Nine queries at most. Raises Endpoint.DoesNotExist.
    """
    statuses = endpoint_statuses(Endpoint.objects.filter(name=endpoint_name), when=at)
    if not statuses:
        raise Endpoint.DoesNotExist(f"No endpoint named {endpoint_name}")
    status = statuses[0]
    comparison = None
    if status.live_trace is not None and status.rollback_target is not None:
        comparison = compare_traces(Trace(status.rollback_target), status.live_trace, commits_page=commits_page)
    return Investigation(status.endpoint, at, status, comparison)


# The endpoint page lists the newest deployments; the full history is in the API and the admin.
DEPLOYMENT_HISTORY_LIMIT = 50


@dataclass(frozen=True)
class EndpointHistory:
    endpoint: Endpoint
    now: EndpointStatus
    deployments: list[Deployment]
    then: EndpointStatus | None
    truncated: bool


def endpoint_history(name: str, at: datetime.datetime | None = None) -> EndpointHistory:
    """An endpoint's status now, its newest deployments, and (given ``at``) what was live then.

    At most ten queries. Raises Endpoint.DoesNotExist.
    """
    statuses = endpoint_statuses(Endpoint.objects.filter(name=name))
    if not statuses:
        raise Endpoint.DoesNotExist(f"No endpoint named {name}")
    now = statuses[0]
    deployments = list(
        Deployment.objects.filter(endpoint=now.endpoint)
        .select_related("release")
        .order_by("-deployed_at", "-id")[: DEPLOYMENT_HISTORY_LIMIT + 1]
    )
    then = endpoint_statuses(Endpoint.objects.filter(pk=now.endpoint.pk), when=at)[0] if at is not None else None
    return EndpointHistory(
        now.endpoint, now, deployments[:DEPLOYMENT_HISTORY_LIMIT], then, len(deployments) > DEPLOYMENT_HISTORY_LIMIT
    )
