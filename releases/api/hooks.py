"""MLflow 3 webhooks: verify the HMAC signature, refuse a delivery seen before, then keep the delivery for
a sync of just what it names (services.queue_sync_request), which one queued sync serves with the others.

Refusals are evidence, but an anonymous caller must not be able to fill the audit chain (each event
takes the append lock): one event per kind of refusal, per address, per minute, and that address's next
event carries how many were refused in its previous minute. Every refusal is also logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from audit import log
from audit.log import SystemActor
from releases import services
from releases.models import SyncRequest, TrackingServer
from releases.numbers import whole_number
from releases.webhook_signature import signature as expected_signature

# MLflow signs "<delivery id>.<unix timestamp>.<body>" (releases/webhook_signature.py); an older timestamp
# is a replay.
MAX_AGE_SECONDS = 300
# Unix seconds up to the year 33658: anything longer is not a timestamp.
MAX_TIMESTAMP = 999_999_999_999
ACTOR = SystemActor("mlflow-webhook")
# A delivery id is remembered for as long as its signature could still be accepted (either side of now).
REMEMBER_SECONDS = 2 * MAX_AGE_SECONDS + 60
# What a delivery may name, as long as the columns that keep it until it is served.
MAX_MODEL_NAME = SyncRequest._meta.get_field("model_name").max_length or 0
MAX_RUN_ID = SyncRequest._meta.get_field("run_id").max_length or 0
# How long a refusal count is kept, to be carried into that address's next event.
COUNT_SECONDS = 24 * 3600

logger = logging.getLogger(__name__)


def _signature_problem(request: HttpRequest, secret: str) -> str:
    signature = request.headers.get("X-MLflow-Signature", "")
    delivery_id = request.headers.get("X-MLflow-Delivery-Id", "")
    timestamp = request.headers.get("X-MLflow-Timestamp", "")
    if not (signature and delivery_id and timestamp):
        return "the request is not signed (X-MLflow-Signature, -Delivery-Id and -Timestamp are required)"
    sent_at = whole_number(timestamp, most=MAX_TIMESTAMP)
    if sent_at is None or abs(time.time() - sent_at) > MAX_AGE_SECONDS:
        return "the signature timestamp is missing or more than five minutes off"
    if not hmac.compare_digest(signature, expected_signature(secret, delivery_id, timestamp, request.body)):
        return "the signature does not match the configured secret"
    return ""


def _refuse(
    request: HttpRequest, problem: str, *, action: str = "webhook.signature_refused", status: int = 403
) -> JsonResponse:
    """Answer a refusal; record it in the audit chain when it is the address's first this minute."""
    address = request.META.get("REMOTE_ADDR", "")
    delivery_id = request.headers.get("X-MLflow-Delivery-Id", "")[:100]
    logger.warning("MLflow webhook refused from %s (delivery %r): %s", address, delivery_id, problem)
    minute = int(time.time() // 60)
    counter = f"lineage:webhook:{action}:{address}:{minute}"
    cache.add(counter, 0, timeout=COUNT_SECONDS)
    if cache.incr(counter) == 1:
        last = f"lineage:webhook:{action}:{address}:last"
        previous = cache.get(last)
        cache.set(last, minute, timeout=COUNT_SECONDS)
        earlier = cache.get(f"lineage:webhook:{action}:{address}:{previous}") if previous is not None else None
        new = {"remote_addr": address, "delivery_id": delivery_id}
        if earlier:
            new["refused_in_its_previous_minute"] = {"minute": _iso_minute(previous), "count": earlier}
        with transaction.atomic():
            log.record(action, actor=ACTOR, object_type="webhook", object_key="mlflow", new=new, reason=problem)
    return JsonResponse({"error": problem}, status=status)


def _iso_minute(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(minute * 60))


def _first_delivery(request: HttpRequest) -> bool:
    """Remember a signed delivery id; False when it was delivered before (a replay of a captured call)."""
    delivery_id = request.headers.get("X-MLflow-Delivery-Id", "")
    digest = hashlib.sha256(delivery_id.encode()).hexdigest()
    return bool(cache.add(f"lineage:webhook:delivery:{digest}", 1, timeout=REMEMBER_SECONDS))


def _server(request: HttpRequest) -> TrackingServer | str:
    name = request.GET.get("server", "")
    servers = TrackingServer.objects.select_related("sync_state")
    servers = servers.filter(name=name) if name else servers
    found = list(servers[:2])
    if len(found) == 1:
        return found[0]
    if name:
        return f"no MLflow server named {name!r} is configured"
    return "name the MLflow server in the URL: /api/hooks/mlflow/?server=NAME"


@csrf_exempt
@require_POST
def mlflow_webhook(request: HttpRequest) -> JsonResponse:
    secret = settings.LINEAGE_MLFLOW_WEBHOOK_SECRET
    if not secret:
        return JsonResponse({"error": "webhooks are off: LINEAGE_MLFLOW_WEBHOOK_SECRET is not set"}, status=503)
    problem = _signature_problem(request, secret)
    if problem:
        return _refuse(request, problem)
    if not _first_delivery(request):
        problem = "this delivery was already received; a signed delivery is accepted once"
        return _refuse(request, problem, action="webhook.replay_refused", status=409)
    try:
        event = json.loads(request.body)
        data = event["data"]
        model_name = str(data.get("name", ""))
        run_id = str(data.get("run_id") or "")
    # RecursionError: JSON nested deeper than Python's parser goes.
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return JsonResponse(
            {"error": "the body is not an MLflow webhook event (JSON with entity, action, data)"}, status=400
        )
    if "\x00" in model_name + run_id:
        return JsonResponse({"error": "the event's model name or run id contains a NUL character"}, status=400)
    if len(model_name) > MAX_MODEL_NAME or len(run_id) > MAX_RUN_ID:
        return JsonResponse(
            {"error": f"the event's model name or run id is too long ({MAX_MODEL_NAME} and {MAX_RUN_ID} at most)"},
            status=400,
        )
    server = _server(request)
    if isinstance(server, str):
        return JsonResponse({"error": server}, status=400)
    what = f"{event.get('entity', '?')}.{event.get('action', '?')}"[:100]
    services.queue_sync_request(
        server.sync_state,
        by=SystemActor(f"mlflow-webhook:{server.name}"),
        delivery_id=request.headers.get("X-MLflow-Delivery-Id", "")[:100],
        event=what,
        model_name=model_name,
        run_id=run_id,
    )
    return JsonResponse({"queued": f"sync of {server.name} for {what} {model_name}".strip()}, status=202)
