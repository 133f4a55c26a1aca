"""Pages that answer questions across releases: search, compare, investigate."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from releases import lineage
from releases.models import Endpoint, Release
from releases.templatetags.lineage_tags import model_version_url
from releases.views.params import MOMENT_HELP, BadParameter, moment_value, parse_moment, parse_page

# The newest release names offered in the compare form; any other name can be typed.
RELEASE_CHOICES = 200
# The endpoint names offered in the investigate form, first by name; any other name can be typed.
ENDPOINT_CHOICES = 200

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
    if hit.kind == "model" and hit.version is not None:
        return model_version_url(hit.key, hit.version)
    args = hit.key.rsplit(":", 1) if hit.kind == "dataset_version" else [hit.key]
    return reverse(HIT_PAGES[hit.kind], args=args)


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
    names = Release.objects.order_by("-created_at", "-pk").values_list("name", flat=True)[:RELEASE_CHOICES]
    context: dict[str, object] = {"a": a, "b": b, "releases": names}
    status = 200
    if a and b:
        try:
            context["comparison"] = lineage.compare(a, b, commits_page=parse_page(request.GET.get("commits_page")))
        except Release.DoesNotExist as missing:
            context["error"], status = f"{missing} — check the spelling, e.g. churn-v42.", 404
    elif a or b:
        context["error"], status = "Choose two releases to compare.", 400
    return render(request, "releases/compare.html", context, status=status)


@login_required
def investigate(request: HttpRequest) -> HttpResponse:
    name = request.GET.get("endpoint", "").strip()
    endpoints = list(Endpoint.objects.only("name", "environment").order_by("name")[: ENDPOINT_CHOICES + 1])
    context: dict[str, object] = {
        "endpoint_name": name,
        "endpoints": endpoints[:ENDPOINT_CHOICES],
        "more_endpoints": len(endpoints) > ENDPOINT_CHOICES,
        "help": MOMENT_HELP,
    }
    status = 200
    try:
        at = parse_moment(request.GET["at"]) if request.GET.get("at") else timezone.now()
        context["at_value"] = moment_value(at)
        if name:
            commits_page = parse_page(request.GET.get("commits_page"))
            context["investigation"] = lineage.investigate(name, at, commits_page=commits_page)
    except BadParameter as bad:
        context["error"], status = str(bad), 400
    except Endpoint.DoesNotExist:
        context["error"], status = f"There is no endpoint named “{name}”.", 404
    return render(request, "releases/investigate.html", context, status=status)
