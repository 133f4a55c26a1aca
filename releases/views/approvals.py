"""Signing decisions and rolling back from the pages. Each view parses, calls one service, renders."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from releases import lineage, services
from releases.approval_forms import RollbackForm, SignatureForm
from releases.errors import LineageError
from releases.models import Deployment, Endpoint, Release
from releases.roles import ML_LEADS, ON_CALL
from releases.views.decorators import role_required


@require_GET
@role_required(ML_LEADS, to="see the approval queue")
def approval_queue(request: HttpRequest) -> HttpResponse:
    return render(request, "releases/approvals.html", {"queue": lineage.approval_queue(request.user)})


@require_POST
def sign(request: HttpRequest, name: str) -> HttpResponse:
    # No role decorator on purpose: the service refuses a non-lead and records the attempt as audit evidence.
    assert isinstance(request.user, User)  # the site middleware lets only signed-in people through
    release = get_object_or_404(Release, name=name)
    form = SignatureForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            approval = services.sign_release(
                release,
                by=request.user,
                decision=form.cleaned_data["decision"],
                password=form.cleaned_data["password"],
                meaning=form.cleaned_data["meaning"],
                comment=form.cleaned_data["comment"],
                expected_digest=form.cleaned_data["digest"],
            )
        except LineageError as exc:
            form.add_error(None, exc.message)
            status = exc.status_code
        else:
            messages.success(request, f"{release.name}: {approval.decision} by {approval.approver_name}, signed.")
            return redirect("releases:release", name=release.name)
    trace = lineage.trace(name)
    context = {"trace": trace, "approval": lineage.approval_state(trace), "form": form}
    return render(request, "releases/sign.html", context, status=status)


def _back_to(request: HttpRequest) -> str:
    """Where to go after the rollback: the page it was started from, if it is one of ours."""
    wanted = request.POST.get("next") or request.GET.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, {request.get_host()}, request.is_secure()):
        return wanted
    return reverse("releases:board")


def _rollback_plan(name: str) -> lineage.RollbackPlan:
    try:
        return lineage.rollback_plan(name)
    except Endpoint.DoesNotExist:
        raise Http404(f"No endpoint named {name}") from None


@require_http_methods(["GET", "POST"])
@role_required(ON_CALL, ML_LEADS, to="roll back an endpoint")
def rollback(request: HttpRequest, name: str) -> HttpResponse:
    plan = _rollback_plan(name)
    back = _back_to(request)
    target = plan.target.name if plan.target else ""
    form = RollbackForm(request.POST or None, initial={"target": target, "next": back})
    code, overtaken = 200, ""
    if form.is_bound and form.is_valid():
        try:
            deployment = services.roll_back(
                plan.endpoint,
                by=request.user,
                reason=form.cleaned_data["reason"],
                source=Deployment.Source.UI,
                expected_target=form.cleaned_data["target"],
            )
        except LineageError as exc:
            code = exc.status_code
            if exc.rule == "rollback_target_changed":
                # Someone rolled back first: show what is live now, and arm nothing for a deeper rollback.
                overtaken, plan = exc.message, _rollback_plan(name)
            else:
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"{plan.endpoint.name} rolled back to {deployment.release.name}.")
            return redirect(back)
    elif form.is_bound:
        code = 400
    context = {"plan": plan, "status": plan.status, "form": form, "back": back, "overtaken": overtaken}
    return render(request, "releases/rollback_confirm.html", context, status=code)
