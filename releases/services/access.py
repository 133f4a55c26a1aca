"""Writes for access: granting roles and issuing API tokens. Each is an audit event."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from audit import context, log
from audit.log import Actor
from audit.vocabulary import object_ref
from releases.errors import InvalidInput, NotFound, RuleViolation
from releases.models import ApiToken
from releases.models.access import hash_token, new_token
from releases.roles import ALL_ROLES, require_admin
from releases.services import refusals


@refusals.audited("role.grant_refused", lambda user, role, **_: object_ref(user))
def grant_role(user: User, role: str, *, by: Actor) -> bool:
    """Add ``user`` to ``role``; False when they already had it. Administrators only."""
    require_admin(by, to="grant a role")
    if role not in ALL_ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ALL_ROLES)}", rule="unknown_role")
    group = Group.objects.filter(name=role).first()
    if group is None:
        raise NotFound(f"the group {role} does not exist; run manage.py migrate")
    with transaction.atomic(), context.acting_as(by):
        if user.groups.filter(pk=group.pk).exists():
            return False
        # The membership change is recorded (role.granted, roles before and after) by releases/signals.py,
        # as it is whatever door it comes through.
        user.groups.add(group)
    return True


@refusals.audited("role.revoke_refused", lambda user, role, **_: object_ref(user))
def revoke_role(user: User, role: str, *, by: Actor) -> bool:
    """Remove ``user`` from ``role``; False when they did not have it. Administrators only."""
    require_admin(by, to="revoke a role")
    if role not in ALL_ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ALL_ROLES)}", rule="unknown_role")
    with transaction.atomic(), context.acting_as(by):
        group = user.groups.filter(name=role).first()
        if group is None:
            return False
        user.groups.remove(group)  # recorded as role.revoked by releases/signals.py
    return True


@refusals.audited("api_token.creation_refused", lambda user, **kw: ("api_token", kw.get("name", "")))
def create_api_token(
    user: User, *, name: str, scopes: Iterable[str], by: Actor, expires_in_days: int | None = None
) -> tuple[ApiToken, str]:
    """Issue a scoped token acting as ``user``, valid ``expires_in_days`` (default LINEAGE_API_TOKEN_DAYS).

    Returns the row and the raw token (shown once, stored hashed). Administrators only.
    """
    require_admin(by, to="issue an API token")
    days = settings.LINEAGE_API_TOKEN_DAYS if expires_in_days is None else expires_in_days
    if not 1 <= days <= settings.LINEAGE_API_TOKEN_MAX_DAYS:
        raise InvalidInput(
            f"a token must expire in 1 to {settings.LINEAGE_API_TOKEN_MAX_DAYS} days, not {days}",
            rule="bad_expiry",
        )
    scopes = sorted(set(scopes))
    unknown = [s for s in scopes if s not in ApiToken.Scope.values]
    if unknown or not scopes:
        raise InvalidInput(
            f"scope {', '.join(unknown) or '(none)'} is not valid; scopes are {', '.join(ApiToken.Scope.values)}",
            rule="unknown_scope",
        )
    if not name.strip():
        raise InvalidInput("a token needs a name saying what uses it")
    if not user.is_active:
        raise RuleViolation(f"{user.get_username()} is not active; a token for it would never work")
    raw = new_token()
    now = timezone.now()
    with transaction.atomic():
        token = ApiToken.objects.create(
            name=name.strip(),
            user=user,
            token_hash=hash_token(raw),
            hint=raw[:8],
            scopes=scopes,
            created_at=now,
            created_by=log.actor_label(by),
            expires_at=now + datetime.timedelta(days=days),
        )
        log.record(
            "api_token.created",
            actor=by,
            subject=token,
            new={
                "user": user.get_username(),
                "scopes": scopes,
                "hint": token.hint,
                "expires_at": token.expires_at.isoformat(),
            },
        )
    return token, raw


@refusals.audited("api_token.revoke_refused", lambda token, **_: object_ref(token))
def revoke_api_token(token: ApiToken, *, by: Actor, reason: str = "") -> ApiToken:
    """Stop a token from authenticating; the row stays as a record. Administrators only."""
    require_admin(by, to="revoke an API token")
    with transaction.atomic():
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            return locked
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        log.record(
            "api_token.revoked",
            actor=by,
            subject=locked,
            reason=reason,
        )
    return locked
