"""Recording a deployment from the pages: the same promotion gate as the API and the command."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from releases import services
from releases.approval_forms import DeploymentForm
from releases.errors import LineageError
from releases.models import Deployment, Endpoint, Release
from releases.roles import ML_LEADS, RELEASE_MANAGERS
from releases.views.decorators import role_required


@require_http_methods(["GET", "POST"])
@role_required(RELEASE_MANAGERS, ML_LEADS, to="record a deployment")
def deploy(request: HttpRequest, name: str) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, name=name)
    form = DeploymentForm(request.POST or None, initial={"release": request.GET.get("release", "")})
    code = 400 if form.is_bound else 200
    if form.is_bound and form.is_valid():
        release = Release.objects.filter(name=form.cleaned_data["release"]).first()
        if release is None:
            form.add_error("release", f"No release named {form.cleaned_data['release']}.")
        else:
            try:
                services.record_deployment(
                    endpoint, release, by=request.user, source=Deployment.Source.UI, reason=form.cleaned_data["reason"]
                )
            except LineageError as exc:
                form.add_error(None, exc.message)
                code = exc.status_code
            else:
                messages.success(request, f"{release.name} is live on {endpoint.name}.")
                return redirect("releases:endpoint", name=endpoint.name)
    return render(request, "releases/deploy_form.html", {"endpoint": endpoint, "form": form}, status=code)
