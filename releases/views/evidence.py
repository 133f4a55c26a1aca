"""Evidence export: a signed, self-verifying zip of one release's record."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from releases.evidence import export_evidence
from releases.models import Release
from releases.roles import AUDITORS, ML_LEADS
from releases.views.decorators import role_required


@require_POST
@role_required(AUDITORS, ML_LEADS, to="export evidence")
def export(request: HttpRequest, name: str) -> HttpResponse:
    release = Release.objects.filter(name=name).first()
    if release is None:
        raise Http404(f"No release named {name}")
    filename, data = export_evidence(release, by=request.user)
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
