"""Site-wide rules for every page: a signed-in person who holds a role; no stored copies of live state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers

from releases.errors import NotFound, PermissionRefused
from releases.roles import ALL_ROLES, may_act_as


class RoleRequiredMiddleware(LoginRequiredMiddleware):
    """Anonymous visitors are sent to the login page; signed-in people without any role get 403 on reading.

    Views marked ``login_not_required`` (the login page, the API, which authenticates its own
    tokens and answers JSON) are exempt. The admin keeps its own staff and model-permission checks.
    """

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponseBase],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        response = super().process_view(request, view_func, view_args, view_kwargs)
        if response is not None or not getattr(view_func, "login_required", True):
            return response
        match = request.resolver_match
        if match is not None and match.app_name == "admin":
            return None
        # A write goes on to its service, which refuses it for the role and records the attempt as evidence.
        if request.method not in ("GET", "HEAD") or may_act_as(request.user, *ALL_ROLES):
            return None
        raise PermissionDenied(f"{request.user.get_username()} has no role yet; ask an administrator to grant one.")

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # A page asking for something that is not recorded answers 404 with what was not found.
        if isinstance(exception, NotFound):
            raise Http404(exception.message)
        # A write a service refused for the person's role (already recorded as evidence) answers 403 with why.
        if isinstance(exception, PermissionRefused):
            raise PermissionDenied(exception.message)


class NeverCacheMiddleware:
    """Every answer shows state that a deployment or rollback changes at once: tell browsers and proxies to
    keep no copy, so neither the Back button nor a shared cache shows what was live before.

    Static files are answered by WhiteNoise, above this middleware, with their own long-lived headers;
    a view that sets its own Cache-Control keeps it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response
