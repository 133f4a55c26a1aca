"""The model inventory (SR 11-7): a page and a CSV of every registered model, and the owner and purpose
ML leads keep for each."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from audit import trail
from releases import lineage, services
from releases.errors import InvalidInput, LineageError, PermissionRefused
from releases.models import RegisteredModel
from releases.models.base import get_or_refuse
from releases.roles import ML_LEADS, has_role
from releases.views.decorators import role_required
from releases.views.params import MOMENT_HELP, BadParameter, moment_value, parse_moment, parse_page

MODELS_PER_PAGE = 50
CSV_CHUNK = 200
CSV_COLUMNS = (
    "model",
    "owner",
    "purpose",
    "validators",
    "last_validated",
    "newest_release",
    "approval_status",
    "live_endpoints",
    "open_quarantines",
    "releases_in_period",
)


def _period(request: HttpRequest) -> tuple[lineage.Period, str]:
    """The period the query string asks for (default: the last 365 days) and what was wrong with it."""
    default = lineage.Period.last_year()
    try:
        since = parse_moment(request.GET["from"]) if request.GET.get("from", "").strip() else default.since
        until = parse_moment(request.GET["to"]) if request.GET.get("to", "").strip() else default.until
    except BadParameter as bad:
        return default, f"{bad} Showing the last 365 days."
    try:
        return lineage.Period.checked(since, until), ""
    except InvalidInput as bad:
        return default, f"{bad.message} Showing the last 365 days."


@require_GET
@login_required
def inventory(request: HttpRequest) -> HttpResponse:
    period, error = _period(request)
    page = Paginator(lineage.inventory_models(), MODELS_PER_PAGE).get_page(parse_page(request.GET.get("page")))
    context = {
        "rows": lineage.inventory(list(page.object_list), period),
        "page": page,
        "period": period,
        "from_value": moment_value(period.since),
        "to_value": moment_value(period.until),
        "moment_help": MOMENT_HELP,
        "error": error,
        "can_describe": has_role(request.user, ML_LEADS),
    }
    return render(request, "releases/inventory.html", context, status=400 if error else 200)


def _csv_rows(period: lineage.Period) -> Iterator[tuple[object, ...]]:
    paginator = Paginator(lineage.inventory_models(), CSV_CHUNK)
    for number in paginator.page_range:
        for row in lineage.inventory(list(paginator.page(number).object_list), period):
            yield (
                row.model.name,
                row.model.owner,
                row.model.purpose,
                "; ".join(row.validators),
                row.last_validated.astimezone(datetime.UTC).isoformat() if row.last_validated else "",
                row.newest_release.name if row.newest_release else "",
                row.status.label if row.status else "no release",
                "; ".join(row.live_endpoints),
                "; ".join(row.open_quarantines),
                row.releases_in_period,
            )


@require_GET
@login_required
def inventory_csv(request: HttpRequest) -> HttpResponse:
    period, error = _period(request)
    if error:
        return HttpResponse(error + "\n", status=400, content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(
        trail.csv_lines(CSV_COLUMNS, _csv_rows(period)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="model-inventory-{period.since:%Y%m%d}-{period.until:%Y%m%d}.csv"'
    )
    return response  # type: ignore[return-value]


@require_http_methods(["GET", "POST"])
@role_required(ML_LEADS, to="describe a model in the inventory")
def describe(request: HttpRequest, name: str) -> HttpResponse:
    model = get_or_refuse(RegisteredModel.objects.all(), "registered model", name=name)
    owner = request.POST.get("owner", model.owner)
    purpose = request.POST.get("purpose", model.purpose)
    error, status = "", 200
    if request.method == "POST":
        try:
            services.describe_model(model, owner=owner, purpose=purpose, by=request.user)
        except PermissionRefused as refused:
            raise PermissionDenied(refused.message) from refused
        except LineageError as refused:
            error, status = refused.message, refused.status_code
        else:
            messages.success(request, f"The inventory now describes {model.name}.")
            return redirect("releases:inventory")
    context = {"model": model, "owner": owner, "purpose": purpose, "error": error}
    return render(request, "releases/inventory_describe.html", context, status=status)
