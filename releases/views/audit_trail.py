"""The audit trail in the browser, for auditors and ML leads: every event, filtered and paged, each with
its object, its old and new values and its inclusion proof; the filtered set exported as CSV or JSON Lines.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_http_methods

from audit import checkpoints, trail, vocabulary
from audit.models import Acknowledgment, AuditEvent, VerificationRun
from releases import lineage, services
from releases.errors import LineageError, NotFound, PermissionRefused
from releases.models import Endpoint
from releases.models.base import MAX_BIG, MAX_VERSION
from releases.numbers import whole_number
from releases.roles import AUDITORS, ML_LEADS, is_admin
from releases.templatetags.lineage_tags import model_version_url
from releases.views.decorators import role_required
from releases.views.params import MOMENT_HELP, BadParameter, moment_value, parse_moment

READ_TRAIL = "read the audit trail"
# Free-text filters longer than this are cut: nothing in the log is named by a longer string.
MAX_FILTER_LENGTH = 255


@dataclass
class ParsedFilter:
    trail: trail.TrailFilter
    values: dict[str, str]
    errors: list[str] = field(default_factory=list)


def _text(request: HttpRequest, name: str) -> str:
    # A NUL never reaches a view (RefuseUnreadableInputMiddleware).
    return request.GET.get(name, "").strip()[:MAX_FILTER_LENGTH]


def _moment(request: HttpRequest, name: str, label: str, errors: list[str]) -> datetime.datetime | None:
    text = _text(request, name)
    if not text:
        return None
    try:
        return parse_moment(text)
    except BadParameter as bad:
        errors.append(f"{label}: {bad}")
        return None


def parse_filter(request: HttpRequest) -> ParsedFilter:
    """The trail filter the query string asks for; a part that cannot be understood is named and left out."""
    errors: list[str] = []
    values = {
        name: _text(request, name)
        for name in ("actor", "action", "object", "release", "endpoint", "request", "q", "from", "to")
    }
    action = values["action"]
    if action and action not in vocabulary.ACTIONS:
        errors.append(f"“{action}” is not an action this log records.")
        action = ""
    object_type, _, object_key = values["object"].partition(":")
    if values["object"] and not object_key:
        errors.append(f"“{values['object']}” does not name an object: use type:key, e.g. release:churn-v42.")
        object_type = ""
    if values["endpoint"]:
        if object_type and object_type != Endpoint.audit_type:
            errors.append("Filter by an object or by an endpoint, not both.")
        object_type, object_key = Endpoint.audit_type, values["endpoint"]
    scope = None
    if values["release"]:
        try:
            scope = lineage.release_scope(lineage.trace(values["release"]))
        except NotFound:
            errors.append(f"There is no release named “{values['release']}”.")
    since = _moment(request, "from", "From", errors)
    until = _moment(request, "to", "To", errors)
    if since and until and until <= since:
        errors.append("The time range is empty: “to” must come after “from”.")
        since = until = None
    return ParsedFilter(
        trail.TrailFilter(
            actor=values["actor"],
            action=action,
            object_type=object_type if object_key else "",
            object_key=object_key,
            request_id=values["request"],
            since=since,
            until=until,
            text=values["q"],
            scope=scope,
        ),
        values,
        errors,
    )


def _before(request: HttpRequest) -> int | None:
    return whole_number(request.GET.get("before", ""), most=MAX_BIG)


def _after(request: HttpRequest) -> int | None:
    return whole_number(request.GET.get("after", ""), most=MAX_BIG)


def object_url(event: AuditEvent) -> str:
    """The page of the object an event is about, or "" when it has none."""
    key = event.object_key
    try:
        if event.object_type == "release":
            return reverse("releases:release", args=[key])
        if event.object_type == "endpoint":
            return reverse("releases:endpoint", args=[key])
        if event.object_type == "dataset_version":
            name, _, text = key.rpartition(":")
            version = whole_number(text, most=MAX_VERSION)
            if version is not None:
                return reverse("releases:dataset_version", args=[name, version])
        if event.object_type == "model_version":
            name, _, text = key.rpartition("/")
            number = whole_number(text, most=MAX_VERSION)
            if number is not None:
                return model_version_url(name, number)
        if event.object_type == "run":
            return reverse("releases:run", args=[key.partition(":")[2]])
    except NoReverseMatch:
        return ""
    return ""


@require_GET
@role_required(AUDITORS, ML_LEADS, to=READ_TRAIL)
def events(request: HttpRequest) -> HttpResponse:
    parsed = parse_filter(request)
    shown = trail.page(parsed.trail, before=_before(request), after=_after(request))
    context = {
        "page": shown,
        "rows": [(event, vocabulary.describe(event.action), object_url(event)) for event in shown.events],
        "filters": parsed.values,
        "errors": parsed.errors,
        "actions": sorted(vocabulary.ACTIONS.items()),
        "moment_help": MOMENT_HELP,
        "checkpoint": trail.covering_checkpoint(),
        "integrity": trail.integrity_status(),
        "from_value": moment_value(parsed.trail.since),
        "to_value": moment_value(parsed.trail.until),
    }
    return render(request, "releases/audit_events.html", context, status=400 if parsed.errors else 200)


@require_GET
@role_required(AUDITORS, ML_LEADS, to=READ_TRAIL)
def event(request: HttpRequest, seq: int) -> HttpResponse:
    found = AuditEvent.objects.filter(seq=seq).first()
    if found is None:
        raise Http404(f"No audit event #{seq}")
    checkpoint = trail.covering_checkpoint()
    proof = ""
    if checkpoint is not None and seq <= checkpoint.size:
        proof = checkpoints.inclusion_proofs([seq], checkpoint)[seq]
    old, new = found.old or {}, found.new or {}
    keys = sorted(set(old) | set(new)) if isinstance(old, dict) and isinstance(new, dict) else []
    context = {
        "event": found,
        "meaning": vocabulary.describe(found.action),
        "object_url": object_url(found),
        "changes": [(key, old.get(key), new.get(key), old.get(key) != new.get(key)) for key in keys],
        "checkpoint": checkpoint,
        "proof": proof,
    }
    return render(request, "releases/audit_event.html", context)


@require_GET
@role_required(AUDITORS, ML_LEADS, to=READ_TRAIL)
def export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    parsed = parse_filter(request)
    if parsed.errors:
        return HttpResponse(" ".join(parsed.errors) + "\n", status=400, content_type="text/plain; charset=utf-8")
    checkpoint = trail.covering_checkpoint()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    response: StreamingHttpResponse
    if fmt == "csv":
        response = StreamingHttpResponse(trail.export_csv(parsed.trail), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(
            trail.export_jsonl(parsed.trail, checkpoint), content_type="application/x-ndjson; charset=utf-8"
        )
    response["Content-Disposition"] = f'attachment; filename="audit-trail-{stamp}.{fmt}"'
    if checkpoint is not None:
        response["X-Audit-Checkpoint-Size"] = str(checkpoint.size)
    return response


@require_http_methods(["GET", "POST"])
@login_required
def acknowledge(request: HttpRequest, run: int) -> HttpResponse:
    """An administrator acknowledges a failed verification (GET: what failed; POST: the note, to the service)."""
    found = VerificationRun.objects.filter(pk=run, ok=False).first()
    if found is None:
        raise Http404(f"No failed verification {run}")
    if request.method == "GET" and not is_admin(request.user):
        raise PermissionDenied("Only an administrator may acknowledge a failed verification of the audit log.")
    note, error, status = request.POST.get("note", ""), "", 200
    if request.method == "POST":
        try:
            services.acknowledge_alarm(found, note=note, by=request.user)  # type: ignore[arg-type]
        except PermissionRefused as refused:
            raise PermissionDenied(refused.message) from refused
        except LineageError as refused:
            error, status = refused.message, refused.status_code
        else:
            messages.success(request, "The alarm is acknowledged; the failed verification stays on record.")
            return redirect("releases:audit_events")
    context = {
        "run": found,
        "note": note,
        "error": error,
        "acknowledged": Acknowledgment.objects.filter(run=found).first(),
    }
    return render(request, "releases/acknowledge_alarm.html", context, status=status)
