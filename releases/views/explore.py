"""Pages that answer questions across releases: search, compare, investigate."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from releases import lineage
from releases.models import Endpoint, Release
from releases.views.params import MOMENT_HELP, BadParameter, moment_value, parse_moment

HIT_PAGES = {
    "release": "releases:release",
    "dataset_version": "releases:dataset_version",
    "model": "releases:model",
    "commit": "releases:commit",
    "run": "releases:run",
    "endpoint": "releases:endpoint",
}


def hit_url(hit: lineage.SearchHit) -> str:
    if not hit.kind:
        return ""
    args = hit.key.rsplit(":", 1) if hit.kind == "dataset_version" else [hit.key]
    return reverse(HIT_PAGES[hit.kind], args=args) + (f"#{hit.anchor}" if hit.anchor else "")


@login_required
def search(request: HttpRequest) -> HttpResponse:
    results = lineage.search(request.GET.get("q", ""))
    if results.jump is not None:
        return HttpResponseRedirect(hit_url(results.jump))
    context = {
        "query": results.query,
        "results": results,
        "exact": [(hit, hit_url(hit)) for hit in results.exact],
        "groups": [(group, [(hit, hit_url(hit)) for hit in group.hits]) for group in results.groups],
    }
    return render(request, "releases/search.html", context, status=400 if results.problem else 200)


@login_required
def compare(request: HttpRequest) -> HttpResponse:
    a, b = request.GET.get("a", "").strip(), request.GET.get("b", "").strip()
    context: dict[str, object] = {"a": a, "b": b, "releases": Release.objects.order_by("-created_at")[:200]}
    status = 200
    if a and b:
        try:
            context["comparison"] = lineage.compare(a, b)
        except Release.DoesNotExist as missing:
            context["error"], status = f"{missing} — check the spelling, e.g. churn-v42.", 404
    elif a or b:
        context["error"], status = "Choose two releases to compare.", 400
    return render(request, "releases/compare.html", context, status=status)


@login_required
def investigate(request: HttpRequest) -> HttpResponse:
    name = request.GET.get("endpoint", "").strip()
    context: dict[str, object] = {"endpoint_name": name, "endpoints": Endpoint.objects.all(), "help": MOMENT_HELP}
    status = 200
    try:
        at = parse_moment(request.GET["at"]) if request.GET.get("at") else timezone.now()
        context["at_value"] = moment_value(at)
        if name:
            context["investigation"] = lineage.investigate(name, at)
    except BadParameter as bad:
        context["error"], status = str(bad), 400
    except Endpoint.DoesNotExist:
        context["error"], status = f"There is no endpoint named “{name}”.", 404
    return render(request, "releases/investigate.html", context, status=status)
