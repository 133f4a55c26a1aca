"""One page per link of the chain: dataset versions, commits, runs, models, endpoints."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from releases import lineage, services
from releases.errors import LineageError
from releases.models import DatasetVersion, Endpoint, ExperimentRun, RegisteredModel
from releases.roles import ML_LEADS, has_role
from releases.views.decorators import role_required
from releases.views.params import MOMENT_HELP, BadParameter, moment_value, parse_moment


@login_required
def dataset_version(request: HttpRequest, name: str, version: int) -> HttpResponse:
    try:
        detail = lineage.dataset_version_detail(name, version)
    except DatasetVersion.DoesNotExist:
        raise Http404(f"No dataset version {name}:{version}") from None
    context = {"detail": detail, "dv": detail.version, "can_quarantine": has_role(request.user, ML_LEADS)}
    return render(request, "releases/dataset_version.html", context)


@require_POST
@role_required(ML_LEADS, to="quarantine a dataset version")
def quarantine(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = get_object_or_404(DatasetVersion.objects.select_related("dataset"), dataset__name=name, version=version)
    try:
        impact = services.quarantine_dataset_version(found, by=request.user, reason=request.POST.get("reason", ""))
    except LineageError as refused:
        messages.error(request, f"Not quarantined: {refused.message}")
    else:
        messages.success(
            request,
            f"{found.key} is quarantined. {len(impact.releases)} release(s) and "
            f"{len(impact.live_endpoints)} live endpoint(s) are affected.",
        )
    return redirect("releases:dataset_version", name=name, version=version)


@login_required
def commit(request: HttpRequest, sha: str) -> HttpResponse:
    commits, impact = lineage.commit_detail(sha)
    if not commits:
        raise Http404(f"No synced commit starts with {sha}")
    return render(request, "releases/commit.html", {"prefix": sha, "commits": commits, "impact": impact})


@login_required
def run(request: HttpRequest, run_id: str) -> HttpResponse:
    try:
        found, impact = lineage.run_detail(run_id)
    except ExperimentRun.DoesNotExist:
        raise Http404(f"No MLflow run {run_id}") from None
    return render(request, "releases/run.html", {"run": found, "impact": impact})


@login_required
def model(request: HttpRequest, name: str) -> HttpResponse:
    try:
        history = lineage.model_history(name)
    except RegisteredModel.DoesNotExist:
        raise Http404(f"No registered model {name}") from None
    return render(request, "releases/model.html", {"history": history})


@login_required
def endpoint(request: HttpRequest, name: str) -> HttpResponse:
    error, at = "", None
    try:
        at = parse_moment(request.GET["at"]) if request.GET.get("at") else None
    except BadParameter as bad:
        error = str(bad)
    try:
        history = lineage.endpoint_history(name, at)
    except Endpoint.DoesNotExist:
        raise Http404(f"No endpoint {name}") from None
    context = {
        "history": history,
        "status": history.now,
        "at": at,
        "at_value": moment_value(at),
        "error": error,
        "help": MOMENT_HELP,
    }
    return render(request, "releases/endpoint.html", context, status=400 if error else 200)
