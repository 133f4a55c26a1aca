"""The sync page: where each Git and MLflow source stands, and a "sync now" button."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from releases import services
from releases.models import SyncState, WriteBack
from releases.roles import ALL_ROLES, ML_LEADS, ON_CALL
from releases.views.decorators import role_required


@require_GET
@role_required(*ALL_ROLES, to="see the sync status")
def sync_status(request: HttpRequest) -> HttpResponse:
    context = {
        "states": list(SyncState.objects.listed()),
        "write_backs": list(WriteBack.objects.outstanding().select_related("server")[:50]),
        "applied": list(WriteBack.objects.filter(status=WriteBack.Status.DONE).select_related("server")[:10]),
    }
    return render(request, "releases/sync.html", context)


@require_POST
@role_required(ML_LEADS, ON_CALL, to="start a sync")
def sync_now(request: HttpRequest, pk: int) -> HttpResponse:
    state = get_object_or_404(SyncState, pk=pk)
    services.request_sync(state, by=request.user, full=request.POST.get("full") == "1")
    state.refresh_from_db()
    if state.last_error and state.last_attempt_at and not state.is_running:
        messages.error(request, f"Sync of {state.source_name} failed: {state.last_error}")
    else:
        messages.success(request, f"Sync of {state.source_name} started; this page shows its progress.")
    return redirect("releases:sync")
