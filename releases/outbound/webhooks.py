"""Delivering outbound events to webhooks: one delivery per subscription and audit event, every attempt kept.

Each delivery's body is fixed when it is created, so every attempt sends the same bytes under the same
delivery id (a receiver can drop a repeat); the timestamp and signature are made at each attempt, so a
retry is never refused as stale. A 2xx answer ends it; a 408, a 429, a 5xx or no answer is retried with
backoff, up to MAX_ATTEMPTS attempts; any other answer (a 4xx, a redirect) stops it, saying why. Nothing
is ever sent but a POST over http or https to the subscription's own address: redirects are not
followed, and the address is checked again at every attempt, whatever the row says about itself.
"""

from __future__ import annotations

import datetime
import hashlib
import http
import http.client
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditEvent
from audit.vocabulary import ANNOUNCED
from releases import credentials
from releases.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from releases.outbound import events
from releases.web_links import delivery_url_problem
from releases.webhook_signature import signature

MAX_ATTEMPTS = 6
# 30 s, 1, 2, 4 and 8 minutes between the six attempts: well below the broker's one-hour visibility timeout.
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 600
# An attempt holds its delivery this much longer than the timeout: a worker killed mid-attempt releases it.
HOLD_MARGIN_SECONDS = 60
# How much of a refusing receiver's answer is kept in the log.
ANSWER_CHARS = 200
USER_AGENT = "release-lineage-webhooks/1"
# Answers worth asking again: the receiver timed out waiting for us, or asked us to slow down.
RETRIED_CLIENT_ERRORS = (408, 429)


@dataclass(frozen=True)
class Announced:
    """What announcing one audit event started: the deliveries to attempt, and whether to email the ML leads."""

    deliveries: list[int]
    ask_for_signatures: bool = False


@dataclass(frozen=True)
class Outcome:
    """How one delivery stands after an attempt: ``retry_in`` seconds when another attempt is due."""

    status: str
    detail: str = ""
    retry_in: int | None = None


@dataclass(frozen=True)
class _Answer:
    status_code: int | None = None
    error: str = ""
    final: bool = False
    retry_after: int = 0

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(attempts: int) -> int:
    """Seconds to wait after ``attempts`` failed attempts: 30 s doubling, at most ten minutes."""
    return int(min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (attempts - 1)))


def announce(seq: int) -> Announced:
    """Create the deliveries of audit event ``seq`` to every subscription that wants it (once, however often asked).

    Returns every delivery of the event still to attempt, so asking again after a lost task resumes them.
    """
    event = AuditEvent.objects.filter(seq=seq).first()
    event_type = ANNOUNCED.get(event.action) if event is not None else None
    if event is None or event_type is None:
        return Announced([])
    asks = event_type == "release.submitted" and settings.LINEAGE_EMAIL_SIGNATURE_REQUESTS
    subscriptions = WebhookSubscription.objects.wanting(event_type)
    announcement = events.announcement(event) if subscriptions else None
    if announcement is None:
        return Announced([], asks)
    bodies: dict[str, bytes] = {
        WebhookSubscription.Format.JSON: _encode(announcement.document()),
        WebhookSubscription.Format.SLACK: _encode(announcement.slack()),
    }
    now = timezone.now()
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                subscription=subscription,
                event=event_type,
                audit_seq=seq,
                delivery_id=str(uuid.uuid4()),
                body=bodies[subscription.format].decode(),
                payload_digest="sha256:" + hashlib.sha256(bodies[subscription.format]).hexdigest(),
                next_attempt_at=now,
            )
            for subscription in subscriptions
        ],
        ignore_conflicts=True,
    )
    open_deliveries = WebhookDelivery.objects.filter(audit_seq=seq, status__in=WebhookDelivery.OPEN).order_by("pk")
    return Announced(list(open_deliveries.values_list("pk", flat=True)), asks)


def _encode(document: dict[str, object]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), cls=DjangoJSONEncoder).encode()


def due(now: datetime.datetime, *, limit: int = 500) -> list[int]:
    """Deliveries whose next attempt is due: for beat, in case a worker's own retry was lost."""
    return list(WebhookDelivery.objects.due(now).order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def attempt(delivery_id: int) -> Outcome:
    """Make the next attempt of a delivery, if it is due and no one else is making it, and record it."""
    now = timezone.now()
    hold = now + datetime.timedelta(seconds=settings.LINEAGE_WEBHOOK_TIMEOUT_SECONDS + HOLD_MARGIN_SECONDS)
    # One conditional UPDATE claims the attempt: a worker's retry and beat's sweep never send it twice.
    claimed = (
        WebhookDelivery.objects.due(now).filter(pk=delivery_id).update(attempts=F("attempts") + 1, next_attempt_at=hold)
    )
    if not claimed:
        return Outcome("skipped", "not due, or already being attempted")
    delivery = WebhookDelivery.objects.select_related("subscription").get(pk=delivery_id)
    started = time.monotonic()
    answer = _post(delivery)
    return _record(delivery, answer, at=now, duration_ms=int((time.monotonic() - started) * 1000))


def _post(delivery: WebhookDelivery) -> _Answer:
    subscription = delivery.subscription
    if not subscription.active:
        return _Answer(error="the webhook was switched off before this attempt; not sent", final=True)
    problem = delivery_url_problem(subscription.url)
    if problem:
        return _Answer(error=f"the webhook's URL cannot be used ({problem}); not sent", final=True)
    body = delivery.body.encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Lineage-Event": delivery.event,
        "X-Lineage-Delivery-Id": delivery.delivery_id,
        "X-Lineage-Timestamp": timestamp,
    }
    if subscription.secret_env:
        try:
            secret = credentials.resolve(subscription.secret_env)
        except credentials.SecretUnavailable as exc:
            return _Answer(error=f"{exc}; not sent", final=True)
        headers["X-Lineage-Signature"] = signature(secret, delivery.delivery_id, timestamp, body)
    request = urllib.request.Request(subscription.url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only, checked above and by the opener
    timeout = settings.LINEAGE_WEBHOOK_TIMEOUT_SECONDS
    try:
        with _opener().open(request, timeout=timeout) as response:
            status = int(response.status)
            answer = response.read(ANSWER_CHARS)
            location = response.headers.get("Location", "")
            retry_after = response.headers.get("Retry-After", "")
    except TimeoutError:
        return _Answer(error=f"no answer within {timeout} seconds")
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return _Answer(error=f"no connection within {timeout} seconds")
        why = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        return _Answer(error=f"could not reach the receiver: {why}")
    except http.client.HTTPException as exc:
        return _Answer(error=f"the receiver's answer could not be read ({type(exc).__name__})")
    except OSError as exc:
        return _Answer(error=f"could not reach the receiver: {exc.strerror or exc}")
    except ValueError as exc:
        return _Answer(error=f"the request could not be made: {exc}", final=True)
    return _judge(status, answer, location=location, retry_after=retry_after)


def _opener() -> urllib.request.OpenerDirector:
    """HTTP and HTTPS only (through the environment's proxy, if one is set), and nothing else: no redirect
    handler, so a 3xx is an answer and never followed; no error processor, so every status comes back."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


def _judge(status: int, answer: bytes, *, location: str, retry_after: str) -> _Answer:
    words = _status_words(status)
    said = _said(answer)
    if 200 <= status < 300:
        return _Answer(status)
    if 300 <= status < 400:
        to = f" to {location[:200]}" if location else ""
        return _Answer(
            status,
            f"the receiver redirects ({words}){to}; deliveries never follow a redirect: set the webhook's URL to "
            "the final address",
            final=True,
        )
    if 400 <= status < 500 and status not in RETRIED_CLIENT_ERRORS:
        return _Answer(
            status,
            f"the receiver refused the delivery ({words}){said}; not retried: check the webhook's URL and secret",
            final=True,
        )
    wait = int(retry_after) if retry_after.strip().isdigit() and len(retry_after.strip()) < 6 else 0
    return _Answer(status, f"the receiver answered {words}{said}", retry_after=wait)


def _status_words(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _said(answer: bytes) -> str:
    text = " ".join(answer.decode("utf-8", errors="replace").split())
    text = "".join(ch for ch in text if ch.isprintable())
    return f": {text[:ANSWER_CHARS]}" if text else ""


def _record(delivery: WebhookDelivery, answer: _Answer, *, at: datetime.datetime, duration_ms: int) -> Outcome:
    number = delivery.attempts
    retry_in: int | None = None
    error = answer.error
    if answer.delivered:
        status = WebhookDelivery.Status.DELIVERED
    elif answer.final:
        status = WebhookDelivery.Status.FAILED
    elif number >= MAX_ATTEMPTS:
        status = WebhookDelivery.Status.FAILED
        error = f"{error} (gave up after {number} attempts)"
    else:
        status = WebhookDelivery.Status.RETRYING
        retry_in = min(MAX_RETRY_SECONDS, max(retry_delay(number), answer.retry_after))
    now = timezone.now()
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            at=at,
            status_code=answer.status_code,
            error=answer.error,
            duration_ms=duration_ms,
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=status,
            last_status_code=answer.status_code,
            last_error=error,
            next_attempt_at=now + datetime.timedelta(seconds=retry_in) if retry_in is not None else None,
            delivered_at=now if answer.delivered else None,
        )
    detail = f"{answer.status_code}" if answer.delivered else error
    return Outcome(status, detail, retry_in)
