"""Pages. Each view parses, calls one lineage or service function, and renders."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from audit.models import AuditEvent
from releases import lineage
from releases.models import Endpoint, Release


@login_required
def board(request: HttpRequest) -> HttpResponse:
    statuses = lineage.endpoint_statuses()
    environments = [
        (label, [s for s in statuses if s.endpoint.environment == value])
        for value, label in Endpoint.Environment.choices
    ]
    return render(request, "releases/board.html", {"environments": environments})


@login_required
def release_detail(request: HttpRequest, name: str) -> HttpResponse:
    try:
        trace = lineage.trace(name)
    except Release.DoesNotExist:
        raise Http404(f"No release named {name}") from None
    endpoints = Endpoint.objects.filter(deployments__release=trace.release).distinct()
    context = {
        "trace": trace,
        "approval": trace.approval_state(),
        "endpoint_statuses": lineage.endpoint_statuses(endpoints),
        "previous": lineage.previous_release(trace.release),
        "events": AuditEvent.objects.for_objects(lineage.audit_refs(trace)),
    }
    return render(request, "releases/release_detail.html", context)
