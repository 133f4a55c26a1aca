"""Who may call which API endpoint: token authentication, scopes, and roles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from releases.errors import PermissionRefused
from releases.models import ApiToken
from releases.models.access import active_token
from releases.roles import ALL_ROLES, may_act_as
from releases.services import refusals

if TYPE_CHECKING:
    from rest_framework.views import APIView


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer rl_...``: a service-account token, looked up by its hash."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Bearer <token>, with no spaces")
        token = active_token(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("unknown or revoked API token")
        now = timezone.now()
        if token.has_expired(now):
            raise exceptions.AuthenticationFailed(
                f"this API token ({token.hint}…) expired at {token.expires_at:%Y-%m-%d %H:%M} UTC; "
                "ask an administrator for a new one"
            )
        token.note_use(now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request with no credentials.
        return self.keyword


def _record_scope_refusal(request: Request, scope: str, message: str) -> PermissionRefused:
    refusal = PermissionRefused(message, rule="scope")
    refusals.record(
        "api_token.scope_refused", refusal, by=request.user, subject=request.auth, scope=scope, path=request.path
    )
    return refusal


def require_scope(request: Request, scope: str) -> None:
    """Refuse a token without ``scope`` for a write that needs more than its view's scope (a backfill), recorded."""
    if isinstance(request.auth, ApiToken) and not request.auth.allows(scope):
        raise _record_scope_refusal(request, scope, f"this token lacks the scope {scope}")


class ScopedRolePermission(permissions.BasePermission):
    """Reads need any role; a token also needs the scope. Writes go on to their service.

    The service checks the role of a write and records a refusal as audit evidence, so a refused write
    leaves the same one event through every door, and its rule is written once, in the service.
    """

    message = "this needs a role (or a token scope) you do not have"

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if not hasattr(view, (request.method or "").lower()):
            # No such operation: the view answers 405, rather than a 403 naming a scope nobody can hold.
            return True
        safe = request.method in permissions.SAFE_METHODS
        scope = ApiToken.Scope.READ if safe else getattr(view, "write_scope", "")
        if isinstance(request.auth, ApiToken) and not request.auth.allows(scope):
            self.message = f"this token lacks the scope {scope}"
            if not safe:
                _record_scope_refusal(request, scope, self.message)
            return False
        if not safe or may_act_as(user, *ALL_ROLES):
            return True
        self.message = f"{user.get_username()} needs the role {' or '.join(ALL_ROLES)}"
        return False
