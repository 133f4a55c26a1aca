"""Writes for outbound events: adding and changing the webhooks that receive them. Administrators only.

What is sent, and when, follows from the audit log (``audit.log`` announces the events
``audit.vocabulary.OUTBOUND_EVENTS`` names); the delivery itself is bookkeeping of the worker
(``releases/outbound/``), not a change anyone makes.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from django.db import transaction

from audit import log
from audit.log import Actor
from audit.vocabulary import OUTBOUND_EVENTS, object_ref
from releases import credentials
from releases.errors import Conflict, InvalidInput
from releases.models import WebhookSubscription
from releases.models.code import name_validator
from releases.models.outbound import SECRET_PREFIX, event_types_problem
from releases.roles import require_admin
from releases.services import refusals
from releases.services.validation import check
from releases.web_links import delivery_url_problem

# What a subscription is, as the audit log shows it before and after a change (the secret's name, never a value).
FIELDS = ("url", "events", "format", "secret_env", "active")


def _checked(
    *, url: str, events: Iterable[str], format: str, secret_env: str, active: bool
) -> dict[str, str | list[str] | bool]:
    """The subscription's values, each checked, in the order of FIELDS; a bad one is refused in one line."""
    url = url.strip()
    problem = delivery_url_problem(url)
    if problem:
        raise InvalidInput(f"the webhook URL {_shown(url)!r} cannot be used: {problem}", rule="not_a_web_url")
    chosen = list(dict.fromkeys(event.strip() for event in events if event.strip()))
    problem = event_types_problem(chosen)
    if problem:
        raise InvalidInput(f"a webhook's events: {problem}", rule="unknown_event")
    if format not in WebhookSubscription.Format.values:
        raise InvalidInput(
            f"the format must be {' or '.join(WebhookSubscription.Format.values)}, not {format!r}", rule="bad_format"
        )
    secret_env = secret_env.strip()
    if secret_env:
        problem = credentials.name_problem(secret_env, prefix=SECRET_PREFIX)
        if problem:
            raise InvalidInput(problem, rule="bad_secret_name")
    elif format != WebhookSubscription.Format.SLACK:
        raise InvalidInput(
            f"a JSON webhook is signed: name the environment variable holding its secret ({SECRET_PREFIX}...)",
            rule="secret_required",
        )
    # Kept in the order of OUTBOUND_EVENTS, so the same choice is the same value whatever order it was typed in.
    ordered = [event for event in OUTBOUND_EVENTS if event in chosen]
    return {"url": url, "events": ordered, "format": format, "secret_env": secret_env, "active": active}


def _shown(url: str) -> str:
    """The address as a refusal may repeat it (in the audit log too): never a password in it."""
    try:
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            url = parts._replace(netloc="…@" + parts.netloc.rpartition("@")[2]).geturl()
    except ValueError:
        url = "…@" + url.rpartition("@")[2] if "@" in url else url
    return url[:80]


def _snapshot(subscription: WebhookSubscription) -> dict[str, object]:
    return {field: getattr(subscription, field) for field in FIELDS}


@refusals.audited("webhook_subscription.add_refused", lambda **kw: ("webhook_subscription", kw["name"]))
def add_webhook(
    *,
    name: str,
    url: str,
    events: Iterable[str] = tuple(OUTBOUND_EVENTS),
    format: str = WebhookSubscription.Format.JSON,
    secret_env: str = "",
    active: bool = True,
    by: Actor,
) -> tuple[WebhookSubscription, bool]:
    """Add a webhook receiving ``events``; the same values again are a no-op, other values under its name refused."""
    require_admin(by, to="add a webhook")
    check(name_validator, name, "webhook name")
    wanted = _checked(url=url, events=events, format=format, secret_env=secret_env, active=active)
    with transaction.atomic():
        existing = WebhookSubscription.objects.select_for_update().filter(name=name).first()
        if existing is not None:
            differ = [field for field in FIELDS if getattr(existing, field) != wanted[field]]
            if differ:
                raise Conflict(
                    f"webhook {name} already exists with another {', '.join(differ)}; change it in the admin",
                    rule="webhook_exists",
                )
            return existing, False
        subscription = WebhookSubscription.objects.create(name=name, **wanted)
        log.record("webhook_subscription.added", actor=by, subject=subscription, new=_snapshot(subscription))
    return subscription, True


@refusals.audited("webhook_subscription.change_refused", lambda subscription, **_: object_ref(subscription))
def change_webhook(
    subscription: WebhookSubscription,
    *,
    url: str,
    events: Iterable[str],
    format: str,
    secret_env: str,
    active: bool,
    by: Actor,
) -> WebhookSubscription:
    """Change a webhook's address, events, format, secret or whether it is on; the log keeps before and after."""
    require_admin(by, to="change a webhook")
    wanted = _checked(url=url, events=events, format=format, secret_env=secret_env, active=active)
    with transaction.atomic():
        # Lock the row: two administrators saving at once are recorded one after the other, each against
        # what the other left.
        locked = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        old = _snapshot(locked)
        changed = [field for field in FIELDS if old[field] != wanted[field]]
        if not changed:
            return locked
        for field in changed:
            setattr(locked, field, wanted[field])
        locked.save(update_fields=changed)
        log.record(
            "webhook_subscription.changed",
            actor=by,
            subject=locked,
            old={field: old[field] for field in changed},
            new={field: wanted[field] for field in changed},
        )
    return locked
