"""Who may call which API endpoint: token authentication, scopes, and roles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from releases.models import ApiToken
from releases.roles import ALL_ROLES, may_act_as

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
        token = ApiToken.objects.active().for_raw(header[1]).select_related("user").first()
        if token is None:
            raise exceptions.AuthenticationFailed("unknown or revoked API token")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request with no credentials.
        return self.keyword


class ScopedRolePermission(permissions.BasePermission):
    """Reads need any role; writes need one of the view's ``write_roles``; a token also needs the scope.

    The services check the role again (so every door refuses the same way); this class gives
    the API its 401/403 before any work is done.
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
            return False
        roles: tuple[str, ...] = ALL_ROLES if safe else getattr(view, "write_roles", ())
        if may_act_as(user, *roles):
            return True
        self.message = f"{user.get_username()} needs the role {' or '.join(roles) or '(none allowed)'}"
        return False
