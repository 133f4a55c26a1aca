"""MLflow 3 webhooks: verify the HMAC signature, then enqueue a sync of just what the event names."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from audit import log
from audit.log import SystemActor
from releases import services
from releases.models import SyncState, TrackingServer
from releases.models.base import whole_number

# MLflow signs "<delivery id>.<unix timestamp>.<body>"; an older timestamp is a replay.
MAX_AGE_SECONDS = 300
# Unix seconds up to the year 33658: anything longer is not a timestamp.
MAX_TIMESTAMP = 999_999_999_999
ACTOR = SystemActor("mlflow-webhook")


def expected_signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


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


def _refuse(request: HttpRequest, problem: str) -> JsonResponse:
    with transaction.atomic():
        log.record(
            "webhook.signature_refused",
            actor=ACTOR,
            object_type="webhook",
            object_key="mlflow",
            new={
                "remote_addr": request.META.get("REMOTE_ADDR", ""),
                "delivery_id": request.headers.get("X-MLflow-Delivery-Id", "")[:100],
            },
            reason=problem,
        )
    return JsonResponse({"error": problem}, status=403)


def _server(request: HttpRequest) -> TrackingServer | str:
    name = request.GET.get("server", "")
    servers = TrackingServer.objects.filter(name=name) if name else TrackingServer.objects.all()
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
    server = _server(request)
    if isinstance(server, str):
        return JsonResponse({"error": server}, status=400)
    services.request_sync(
        SyncState.objects.get(server=server),
        by=SystemActor(f"mlflow-webhook:{server.name}"),
        model_name=model_name,
        run_ids=(run_id,) if run_id else (),
    )
    what = f"{event.get('entity', '?')}.{event.get('action', '?')}"
    return JsonResponse({"queued": f"sync of {server.name} for {what} {model_name}".strip()}, status=202)
