"""An endpoint's past: what was live when, and the investigation of an incident."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from releases.lineage.compare import Comparison, compare_traces
from releases.lineage.live import EndpointStatus, Traced, endpoint_statuses
from releases.lineage.paging import Page, keyset_page
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

    Ten queries at most. Raises Endpoint.DoesNotExist.
    """
    statuses = endpoint_statuses(Endpoint.objects.filter(name=endpoint_name), when=at, traced=Traced.LIVE_AND_ROLLBACK)
    if not statuses:
        raise Endpoint.DoesNotExist(f"No endpoint named {endpoint_name}")
    status = statuses[0]
    comparison = None
    if status.live_trace is not None and status.rollback_trace is not None:
        comparison = compare_traces(status.rollback_trace, status.live_trace, commits_page=commits_page)
    return Investigation(status.endpoint, at, status, comparison)


@dataclass(frozen=True)
class EndpointHistory:
    endpoint: Endpoint
    now: EndpointStatus
    # Newest first, keyed on (deployed_at, id).
    deployments: Page[Deployment]
    then: EndpointStatus | None


DEPLOYMENT_ORDER = ("deployed_at", "id")


def endpoint_history(
    name: str, at: datetime.datetime | None = None, *, before: int | None = None, after: int | None = None
) -> EndpointHistory:
    """An endpoint's status now, a page of its deployments (the newest, or those just older than deployment
    ``before`` or newer than deployment ``after``), and (given ``at``) what was live then.

    At most eighteen queries: the status now (seven), the key of the deployment a page continues from (one),
    the page (one, or two past either end) and its counts (one), the status then (seven). Raises
    Endpoint.DoesNotExist.
    """
    statuses = endpoint_statuses(Endpoint.objects.filter(name=name))
    if not statuses:
        raise Endpoint.DoesNotExist(f"No endpoint named {name}")
    now = statuses[0]
    history = Deployment.objects.filter(endpoint=now.endpoint)
    wanted = [pk for pk in (before, after) if pk is not None]
    found = history.filter(pk__in=wanted).values_list("pk", *DEPLOYMENT_ORDER) if wanted else []
    cursors = {pk: key for pk, *key in found}
    deployments = keyset_page(
        history.select_related("release").only(
            "deployed_at", "kind", "actor", "source", "reason", "endpoint_id", "release_id", "release__name"
        ),
        DEPLOYMENT_ORDER,
        before=_key(cursors.get(before)),
        after=_key(cursors.get(after)),
    )
    then = endpoint_statuses(Endpoint.objects.filter(pk=now.endpoint.pk), when=at)[0] if at is not None else None
    return EndpointHistory(now.endpoint, now, deployments, then)


def _key(values: list[object] | None) -> tuple[object, ...] | None:
    return None if values is None else tuple(values)
