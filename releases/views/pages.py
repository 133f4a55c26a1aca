"""Pages. Each view parses, calls one lineage or service function, and renders."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audit import trail
from releases import lineage
from releases.models import Endpoint, RegisteredModel, Release
from releases.views.params import parse_page

RELEASES_PER_PAGE = 25
# The board pages through endpoints so it stays fast with hundreds of them; search narrows it.
ENDPOINTS_PER_PAGE = 25


@login_required
def board(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    environment = request.GET.get("env", "").strip()
    endpoints = Endpoint.objects.order_by("environment", "name")
    if query:
        endpoints = endpoints.filter(name__icontains=query)
    if environment in Endpoint.Environment.values:
        endpoints = endpoints.filter(environment=environment)
    page = Paginator(endpoints, ENDPOINTS_PER_PAGE).get_page(parse_page(request.GET.get("page")))
    statuses = lineage.endpoint_statuses(cast("QuerySet[Endpoint]", page.object_list))
    environments = [
        (label, [s for s in statuses if s.endpoint.environment == value])
        for value, label in Endpoint.Environment.choices
        if not environment or environment == value
    ]
    context = {
        "environments": environments,
        "page": page,
        "filters": {"q": query, "env": environment},
        "integrity": trail.integrity_status(),
    }
    return render(request, "releases/board.html", context)


@login_required
def release_detail(request: HttpRequest, name: str) -> HttpResponse:
    trace = lineage.trace(name)
    approval = lineage.approval_state(trace)
    endpoints = Endpoint.objects.filter(pk__any_of=sorted({d.endpoint_id for d in trace.deployments}))
    context = {
        "trace": trace,
        "approval": approval,
        "status": lineage.release_status(trace, approval),
        # What is live on each endpoint it went to and what a rollback there restores, by name.
        "endpoint_statuses": lineage.endpoint_statuses(endpoints, traced=lineage.Traced.NOTHING),
        "previous": lineage.previous_release(trace.release),
        # The newest events with their total; the audit trail pages through all of them.
        "events": lineage.release_timeline(trace),
    }
    return render(request, "releases/release_detail.html", context)


@login_required
def release_list(request: HttpRequest) -> HttpResponse:
    model = request.GET.get("model", "").strip()
    state = request.GET.get("state", "").strip()
    mine = request.GET.get("waiting") == "me"
    error = "" if not state or state in Release.State.values else f"“{state}” is not a release state."
    releases = lineage.release_list(
        model=model, state=state if not error else "", waiting_for=request.user if mine else None
    )
    page = Paginator(releases, RELEASES_PER_PAGE).get_page(parse_page(request.GET.get("page")))
    context = {
        "page": page,
        "traces": [lineage.Trace(release) for release in page.object_list],
        "models": RegisteredModel.objects.values_list("name", flat=True),
        "states": Release.State.values,
        "filters": {"model": model, "state": state, "mine": mine},
        "error": error,
    }
    return render(request, "releases/release_list.html", context, status=400 if error else 200)
