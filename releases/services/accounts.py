"""Signing in and the lockout: sign-ins, sign-outs and failures as audit events, and wrong signing passwords
counted toward the same lockout as wrong sign-in passwords (21 CFR Part 11 asks for both).

django-axes keeps the count (one row per account, address and browser, see settings AXES_*); this module
feeds it the signature failures and records what it decides. A lockout ends when an administrator unlocks
the account (``unlock_account``), or after the configured cool-off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_ip_address, get_client_user_agent
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.http import HttpRequest

from audit import context, log
from audit.log import Actor
from releases.errors import PermissionRefused
from releases.roles import require_admin
from releases.services import refusals

# Set while unlock_account clears attempts, so the delete receiver does not record the same unlock twice.
_unlocking: ContextVar[bool] = ContextVar("unlocking", default=False)


@contextmanager
def _unlocking_now() -> Iterator[None]:
    token = _unlocking.set(True)
    try:
        yield
    finally:
        _unlocking.reset(token)


LOCKED_OUT_MESSAGE = (
    "this account is locked after too many wrong passwords; an administrator must unlock it "
    "before it can sign in or sign again"
)


def _client(request: HttpRequest | None) -> dict[str, Any]:
    if request is not None:
        return {"ip_address": get_client_ip_address(request), "user_agent": get_client_user_agent(request)}
    known = context.client.get()
    if known is not None:
        return {"ip_address": known.ip_address, "user_agent": known.user_agent}
    return {"ip_address": None, "user_agent": ""}


def record_sign_in(user: User, request: HttpRequest | None) -> None:
    with transaction.atomic():
        log.record("auth.signed_in", actor=user, subject=user, new=_client(request))


def record_sign_out(user: User | None, request: HttpRequest | None, *, reason: str = "") -> None:
    """A sign-out: by the person, or by the site (``reason`` says why, e.g. idle too long)."""
    if user is None or not user.is_authenticated:
        return
    with transaction.atomic():
        log.record("auth.signed_out", actor=user, subject=user, new=_client(request), reason=reason)


def record_sign_in_failure(username: str, request: HttpRequest | None) -> None:
    """A failed sign-in, under the username tried (which may name nobody, or be hostile: PostgreSQL stores no NUL)."""
    username = username.replace("\x00", "\ufffd")
    with transaction.atomic():
        log.record(
            "auth.sign_in_failed",
            actor=AnonymousUser(),
            object_type="user",
            object_key=username[:150],
            new={"username": username[:150], **_client(request)},
        )


def record_lockout(username: str, request: HttpRequest | None) -> None:
    username = username.replace("\x00", "\ufffd")
    with transaction.atomic():
        log.record(
            "auth.locked_out",
            actor=AnonymousUser(),
            object_type="user",
            object_key=username[:150],
            new={"username": username[:150], **_client(request)},
        )


def _request_for_lockout(user: User) -> HttpRequest:
    """The request axes counts a signature failure against: the account, from where it was tried.

    Signing has no request of its own in the command line; the page and the admin leave their client's
    address in the audit context.
    """
    request = HttpRequest()
    known = context.client.get()
    if known is not None and known.ip_address:
        request.META["REMOTE_ADDR"] = known.ip_address
    if known is not None:
        request.META["HTTP_USER_AGENT"] = known.user_agent
    request.META["PATH_INFO"] = "signature"
    return request


def _credentials(user: User) -> dict[str, str]:
    return {"username": user.get_username()}


def is_locked_out(user: User) -> bool:
    """True while the account may neither sign in nor sign (too many wrong passwords, not yet unlocked)."""
    return bool(AxesProxyHandler.is_locked(_request_for_lockout(user), _credentials(user)))


def refuse_if_locked_out(user: User) -> None:
    if is_locked_out(user):
        raise PermissionRefused(LOCKED_OUT_MESSAGE, rule="locked_out")


def count_wrong_signing_password(user: User) -> None:
    """A wrong password at a signature counts toward the account's lockout, like one at sign-in."""
    AxesProxyHandler.user_login_failed(
        sender=count_wrong_signing_password, credentials=_credentials(user), request=_request_for_lockout(user)
    )


def record_lock_cleared(attempt: AccessAttempt, *, by: Actor) -> None:
    """A lock ended some other way than ``unlock_account`` (axes' own reset commands, the cool-off ending)."""
    if _unlocking.get() or attempt.failures_since_start < settings.AXES_FAILURE_LIMIT:
        return
    with transaction.atomic():
        log.record(
            "auth.unlocked",
            actor=by,
            object_type="user",
            object_key=attempt.username or "",
            old={"failures": attempt.failures_since_start},
            new={"failures": 0},
            reason="wrong-password count cleared outside the admin's Unlock (cool-off or a reset command)",
        )


def unlock_account(username: str, *, by: Actor, reason: str = "") -> int:
    """Clear the wrong-password count of ``username`` so it may sign in (and sign) again. Administrators only."""
    with refusals.recorded("auth.unlock_refused", by=by, object_type="user", object_key=username):
        require_admin(by, to="unlock an account")
        with transaction.atomic(), _unlocking_now():
            attempts = AccessAttempt.objects.select_for_update().filter(username=username)
            failures = sum(attempts.values_list("failures_since_start", flat=True))
            count, _ = attempts.delete()
            if count:
                log.record(
                    "auth.unlocked",
                    actor=by,
                    object_type="user",
                    object_key=username,
                    old={"failures": failures},
                    new={"failures": 0},
                    reason=reason,
                )
    return count
