"""Evidence export: a signed, self-verifying zip of one release's record."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

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
