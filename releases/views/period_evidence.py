"""Evidence for a period in the browser: choose the period and environments, a worker prepares the bundle
while the page shows its progress, then it is kept for download until it expires."""

from __future__ import annotations

import datetime
import uuid

from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from releases import evidence, lineage
from releases.errors import LineageError, PermissionRefused
from releases.models import Endpoint, EvidenceExport
from releases.models.base import get_or_refuse
from releases.roles import AUDITORS, ML_LEADS
from releases.views.decorators import role_required
from releases.views.params import BadParameter, parse_bound

EXPORT_EVIDENCE = "export evidence"
RECENT = 20
# How often the page reloads itself while a worker prepares the bundle.
REFRESH_SECONDS = 2


def _default_days(today: datetime.date) -> tuple[str, str]:
    """The last full calendar quarter: what an audit period usually is."""
    quarter_start = datetime.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    last = quarter_start - datetime.timedelta(days=1)
    first = datetime.date(last.year, 3 * ((last.month - 1) // 3) + 1, 1)
    return first.isoformat(), last.isoformat()


@require_http_methods(["GET", "POST"])
@role_required(AUDITORS, ML_LEADS, to=EXPORT_EVIDENCE)
def period_evidence(request: HttpRequest) -> HttpResponse:
    first, last = _default_days(timezone.now().date())
    # Nothing that names a day is longer than this; a longer value is cut and then refused as not a day.
    since_text = request.POST.get("from", first).strip()[:40]
    until_text = request.POST.get("to", last).strip()[:40]
    chosen_names = request.POST.getlist("environment") if request.method == "POST" else ["production"]
    error, status = "", 200
    if request.method == "POST":
        try:
            period = lineage.Period.checked(parse_bound(since_text, end=False), parse_bound(until_text, end=True))
            chosen = lineage.environments(chosen_names)
            export = evidence.request_period_evidence(period, chosen, by=request.user)
        except BadParameter as bad:
            error, status = str(bad), 400
        except PermissionRefused as refused:
            raise PermissionDenied(refused.message) from refused
        except LineageError as refused:
            error, status = refused.message, refused.status_code
        else:
            return redirect("releases:period_evidence_status", pk=export.pk)
    context = {
        "values": {"from": since_text, "to": until_text, "environments": chosen_names},
        "error": error,
        "environment_choices": Endpoint.Environment.values,
        "exports": [
            (export, lineage.Period(export.since, export.until).label)
            for export in EvidenceExport.objects.select_related("requested_by")[:RECENT]
        ],
    }
    return render(request, "releases/period_evidence.html", context, status=status)


def _status_page(request: HttpRequest, export: EvidenceExport, *, status: int = 200) -> HttpResponse:
    """Where a bundle stands: waiting, its progress (the page reloads itself), ready, failed or expired."""
    context = {
        "export": export,
        "period": lineage.Period(export.since, export.until),
        "expired": export.is_expired(),
        "refresh": REFRESH_SECONDS if export.in_progress else None,
    }
    return render(request, "releases/period_evidence_status.html", context, status=status)


@require_GET
@role_required(AUDITORS, ML_LEADS, to=EXPORT_EVIDENCE)
def period_evidence_status(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    return _status_page(request, get_or_refuse(EvidenceExport.objects.select_related("requested_by"), "bundle", pk=pk))


@require_GET
@role_required(AUDITORS, ML_LEADS, to=EXPORT_EVIDENCE)
def period_evidence_download(request: HttpRequest, pk: uuid.UUID) -> HttpResponseBase:
    export = get_or_refuse(EvidenceExport.objects.select_related("requested_by"), "bundle", pk=pk)
    if not export.is_downloadable():
        # Gone (410) once past its expiry; not yet there (409) while it is prepared or if it failed.
        return _status_page(request, export, status=410 if export.is_expired() else 409)
    return FileResponse(export.bundle.open("rb"), as_attachment=True, filename=export.filename)
