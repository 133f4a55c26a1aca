"""Evidence export: a signed zip of one release's record, and the verifier auditors check it with."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET, require_POST

from audit import verifier
from releases.evidence import export_evidence
from releases.models import Release
from releases.models.base import get_or_refuse
from releases.roles import AUDITORS, ML_LEADS
from releases.views.decorators import role_required


@require_POST
@role_required(AUDITORS, ML_LEADS, to="export evidence")
def export(request: HttpRequest, name: str) -> HttpResponse:
    release = get_or_refuse(Release.objects, "release", name=name)
    filename, data = export_evidence(release, by=request.user)
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@login_required
def verifier_source(request: HttpRequest) -> HttpResponse:
    """The current verify.py as plain text, at a stable address auditors can fetch their own copy from."""
    response = HttpResponse(Path(verifier.__file__).read_bytes(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="verify.py"'
    return response
