"""The groups that carry the product's roles, and checks on them."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, Group, User

from audit.log import Actor, SystemActor
from releases.errors import PermissionRefused
from releases.prepared import PreparedQuery

ML_LEADS = "ml-leads"
AUDITORS = "auditors"
ON_CALL = "on-call"
RELEASE_MANAGERS = "release-managers"
ALL_ROLES = (ML_LEADS, AUDITORS, ON_CALL, RELEASE_MANAGERS)

# Asked on every request: the query is compiled once (releases/prepared.py).
_GROUPS_OF = PreparedQuery(lambda user: Group.objects.filter(user=user), user=int)


def has_role(user: User | AnonymousUser, *roles: str) -> bool:
    """True when an active user belongs to any of ``roles`` (cached on the user for the request)."""
    # A deactivated account keeps its groups (for the record) but acts in none of them.
    if not user.is_authenticated or not user.is_active:
        return False
    cached: set[str] | None = getattr(user, "_role_names", None)
    if cached is None:
        cached = {group.name for group in _GROUPS_OF.all(user=user.pk)}
        setattr(user, "_role_names", cached)  # noqa: B010 - a per-request cache on the user object
    return bool(cached & set(roles))


def may_act_as(user: User | AnonymousUser, *roles: str) -> bool:
    """Access check: a member of any of ``roles``, or a superuser.

    Signing rules (four-eyes approval) use ``has_role`` instead: a superuser who is not an ML lead
    must not be able to approve.
    """
    return bool(user.is_active and (user.is_superuser or has_role(user, *roles)))


def require_role(actor: Actor, *roles: str, to: str) -> None:
    """Refuse a person outside ``roles`` (no roles: every person), or deactivated; system jobs and superusers pass."""
    if isinstance(actor, SystemActor):
        return
    if not may_act_as(actor, *roles):
        who = actor.get_username() if actor.is_authenticated else "anonymous"
        if not actor.is_active and actor.is_authenticated:
            raise PermissionRefused(f"{who} may not {to}: the account is deactivated", rule="role")
        if not roles:
            raise PermissionRefused(
                f"{who} may not {to}: only an administrator or the system (a sync, a command) may", rule="role"
            )
        raise PermissionRefused(f"{who} may not {to}: it needs the role {' or '.join(roles)}", rule="role")


def is_admin(user: User | AnonymousUser) -> bool:
    """Administrators are superusers: they alone manage API tokens and unlock accounts."""
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def require_admin(actor: Actor, *, to: str) -> None:
    """Refuse anyone but an administrator; system jobs (manage.py, run by whoever runs the deployment) pass."""
    if isinstance(actor, SystemActor):
        return
    if not is_admin(actor):
        who = actor.get_username() if actor.is_authenticated else "anonymous"
        raise PermissionRefused(f"{who} may not {to}: only an administrator may", rule="admin_only")
