"""One page per link of the chain: dataset versions, commits, runs, models, endpoints."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from releases import lineage, services
from releases.errors import LineageError, PermissionRefused
from releases.models import DatasetVersion, Endpoint, ExperimentRun, RegisteredModel
from releases.roles import ML_LEADS, has_role
from releases.views.decorators import role_required
from releases.views.params import MOMENT_HELP, BadParameter, moment_value, parse_cursor, parse_moment, parse_page

# Names shown in a message before "and N more".
NAMES_IN_A_MESSAGE = 10


def impact_pages(request: HttpRequest) -> lineage.ImpactPageNumbers:
    """Which page of each impact list the query string asks for (``templates/releases/_impact.html`` links them)."""
    return lineage.ImpactPageNumbers(
        runs=parse_page(request.GET.get("runs_page")),
        model_versions=parse_page(request.GET.get("versions_page")),
        releases=parse_page(request.GET.get("releases_page")),
        endpoints_ever=parse_page(request.GET.get("endpoints_page")),
        live_endpoints=parse_page(request.GET.get("live_page")),
    )


@login_required
def dataset_version(request: HttpRequest, name: str, version: int) -> HttpResponse:
    detail = _dataset_version_detail(request, name, version)
    context = {"detail": detail, "dv": detail.version, "can_quarantine": has_role(request.user, ML_LEADS)}
    return render(request, "releases/dataset_version.html", context)


def _dataset_version_detail(request: HttpRequest, name: str, version: int) -> lineage.DatasetVersionDetail:
    try:
        return lineage.dataset_version_detail(name, version, impact_pages(request))
    except DatasetVersion.DoesNotExist:
        raise Http404(f"No dataset version {name}:{version}") from None


def _confirmed_change(
    request: HttpRequest, detail: lineage.DatasetVersionDetail, change: Callable[[str], str], template: str
) -> HttpResponse:
    """GET shows what the change will do; POST with a reason makes it and returns to the dataset page."""
    reason, error, code = request.POST.get("reason", ""), "", 200
    if request.method == "POST":
        try:
            done = change(reason)
        except PermissionRefused as refused:
            raise PermissionDenied(refused.message) from refused
        except LineageError as refused:
            error, code = refused.message, refused.status_code
        else:
            messages.success(request, done)
            return redirect(
                "releases:dataset_version", name=detail.version.dataset.name, version=detail.version.version
            )
    context = {"detail": detail, "dv": detail.version, "reason": reason, "error": error}
    return render(request, template, context, status=code)


@require_http_methods(["GET", "POST"])
@role_required(ML_LEADS, to="quarantine a dataset version")
def quarantine(request: HttpRequest, name: str, version: int) -> HttpResponse:
    detail = _dataset_version_detail(request, name, version)

    def change(reason: str) -> str:
        impact = services.quarantine_dataset_version(detail.version, by=request.user, reason=reason)
        return (
            f"{detail.version.key} is quarantined. {impact.releases.count():,} release(s) and "
            f"{impact.live_endpoints.count():,} live endpoint(s) are affected."
        )

    return _confirmed_change(request, detail, change, "releases/quarantine_confirm.html")


@require_http_methods(["GET", "POST"])
@role_required(ML_LEADS, to="lift a quarantine")
def lift_quarantine(request: HttpRequest, name: str, version: int) -> HttpResponse:
    detail = _dataset_version_detail(request, name, version)

    def change(reason: str) -> str:
        to_sign = services.lift_quarantine(detail.version, by=request.user, reason=reason)
        names = ", ".join(r.name for r in to_sign[:NAMES_IN_A_MESSAGE])
        if len(to_sign) > NAMES_IN_A_MESSAGE:
            names += f" and {len(to_sign) - NAMES_IN_A_MESSAGE:,} more"
        again = f" {names} must be signed again before going to production." if to_sign else ""
        return f"The quarantine of {detail.version.key} is lifted.{again}"

    return _confirmed_change(request, detail, change, "releases/lift_quarantine_confirm.html")


@login_required
def commit(request: HttpRequest, sha: str) -> HttpResponse:
    commits, impact = lineage.commit_detail(sha, impact_pages(request))
    if not commits:
        raise Http404(f"No synced commit starts with {sha}")
    return render(request, "releases/commit.html", {"prefix": sha, "commits": commits, "impact": impact})


@login_required
def run(request: HttpRequest, run_id: str) -> HttpResponse:
    try:
        found, impact = lineage.run_detail(run_id, impact_pages(request))
    except ExperimentRun.DoesNotExist:
        raise Http404(f"No MLflow run {run_id}") from None
    return render(request, "releases/run.html", {"run": found, "impact": impact})


@login_required
def model(request: HttpRequest, name: str) -> HttpResponse:
    try:
        history = lineage.model_history(
            name,
            before=parse_cursor(request.GET.get("before")),
            after=parse_cursor(request.GET.get("after")),
            endpoints_page=parse_page(request.GET.get("endpoints_page")),
        )
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
        history = lineage.endpoint_history(
            name, at, before=parse_cursor(request.GET.get("before")), after=parse_cursor(request.GET.get("after"))
        )
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
