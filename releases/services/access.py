"""Writes for access: granting roles and issuing API tokens. Each is an audit event."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from audit import log
from audit.log import Actor
from audit.vocabulary import object_ref
from releases.errors import InvalidInput, NotFound, RuleViolation
from releases.models import ApiToken
from releases.models.access import hash_token, new_token
from releases.roles import ALL_ROLES, require_role
from releases.services import refusals


@refusals.audited("role.grant_refused", lambda user, role, **_: object_ref(user))
def grant_role(user: User, role: str, *, by: Actor) -> bool:
    """Add ``user`` to ``role``; False when they already had it. Only administrators grant roles."""
    require_role(by, to="grant a role")
    if role not in ALL_ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ALL_ROLES)}", rule="unknown_role")
    group = Group.objects.filter(name=role).first()
    if group is None:
        raise NotFound(f"the group {role} does not exist; run manage.py migrate")
    with transaction.atomic():
        if user.groups.filter(pk=group.pk).exists():
            return False
        user.groups.add(group)
        log.record("role.granted", actor=by, subject=user, new={"role": role})
    return True


@refusals.audited("role.revoke_refused", lambda user, role, **_: object_ref(user))
def revoke_role(user: User, role: str, *, by: Actor) -> bool:
    """Remove ``user`` from ``role``; False when they did not have it. Only administrators revoke roles."""
    require_role(by, to="revoke a role")
    if role not in ALL_ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ALL_ROLES)}", rule="unknown_role")
    with transaction.atomic():
        group = user.groups.filter(name=role).first()
        if group is None:
            return False
        user.groups.remove(group)
        log.record("role.revoked", actor=by, subject=user, old={"role": role})
    return True


@refusals.audited("api_token.creation_refused", lambda user, **kw: ("api_token", kw.get("name", "")))
def create_api_token(user: User, *, name: str, scopes: Iterable[str], by: Actor) -> tuple[ApiToken, str]:
    """Issue a scoped token acting as ``user``. Returns the row and the raw token (shown once, stored hashed)."""
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
    with transaction.atomic():
        token = ApiToken.objects.create(
            name=name.strip(),
            user=user,
            token_hash=hash_token(raw),
            hint=raw[:8],
            scopes=scopes,
            created_by=log.actor_label(by),
        )
        log.record(
            "api_token.created",
            actor=by,
            subject=token,
            new={"user": user.get_username(), "scopes": scopes, "hint": token.hint},
        )
    return token, raw


@refusals.audited("api_token.revoke_refused", lambda token, **_: object_ref(token))
def revoke_api_token(token: ApiToken, *, by: Actor, reason: str = "") -> ApiToken:
    """Stop a token from authenticating; the row stays as a record."""
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
