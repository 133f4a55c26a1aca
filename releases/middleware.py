"""Site-wide rules for every page: a signed-in person who holds a role; no stored copies of live state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBadRequest, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

from releases.errors import NotFound, PermissionRefused
from releases.models.base import MAX_BIG
from releases.numbers import whole_number
from releases.roles import ALL_ROLES, ML_LEADS, RELEASE_MANAGERS, has_role, may_act_as

# When the session last saw its person, in seconds since the epoch.
LAST_SEEN = "lineage_last_seen"
# The session is written at most this often just to move LAST_SEEN, so reading pages costs no write.
TOUCH_SECONDS = 60


def is_privileged(user: User | AnonymousUser) -> bool:
    """People whose session ends when the browser closes: they sign, release or administer."""
    return bool(user.is_superuser or user.is_staff or has_role(user, ML_LEADS, RELEASE_MANAGERS))


def start_session(request: HttpRequest, user: User) -> None:
    """At sign-in: note the time, and for privileged people make the cookie last only as long as the browser."""
    request.session[LAST_SEEN] = int(time.time())
    if is_privileged(user):
        request.session.set_expiry(0)


class SessionTimeoutMiddleware:
    """Ends a session idle longer than LINEAGE_SESSION_IDLE_MINUTES (a sign-out, audited with the reason)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.user.is_authenticated:
            now = int(time.time())
            last = request.session.get(LAST_SEEN)
            if last is not None and now - last > settings.LINEAGE_SESSION_IDLE_MINUTES * 60:
                request.signed_out_because = (  # type: ignore[attr-defined]
                    f"idle for more than {settings.LINEAGE_SESSION_IDLE_MINUTES} minutes"
                )
                logout(request)
                messages.info(
                    request,
                    "You were signed out after a period of inactivity. Please sign in again.",
                    fail_silently=True,
                )
            elif last is None or now - last >= TOUCH_SECONDS:
                request.session[LAST_SEEN] = now
                if not request.session.get_expire_at_browser_close() and is_privileged(request.user):
                    request.session.set_expiry(0)
        return self.get_response(request)


# The API and the webhooks answer JSON, even when they refuse a request before any view runs.
API_PREFIX = "/api/"


class RefuseUnreadableInputMiddleware:
    """Refuse, before any view runs, input no page or endpoint can look up or store.

    PostgreSQL refuses the NUL character in text, so a lookup with one (in the path, a header or cookie,
    the query string or a form field) would fail inside the database: it is refused here with a 400 naming
    where it was, for every page, endpoint and admin screen at once. An API or webhook body over the upload
    limit gets a 413 in JSON (Django alone would answer its HTML page when the body is read).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        api = request.path_info.startswith(API_PREFIX)
        if api and self.too_big(request):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            problem = f"the request body is larger than {limit} bytes (or its Content-Length is not a number)"
            return JsonResponse({"error": problem}, status=413)
        if problem := self.nul_in_headers(request):
            # Not the page template: it shows the signed-in user, and reading the session cookie is the lookup
            # that would fail.
            if api:
                return JsonResponse({"error": problem}, status=400)
            return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
        problem = self.nul_problem(request, form=not api)
        if problem and api:
            return JsonResponse({"error": problem}, status=400)
        if problem:
            return render(request, "400.html", {"exception": problem}, status=400)
        return self.get_response(request)

    @staticmethod
    def nul_in_headers(request: HttpRequest) -> str:
        for key, value in request.META.items():
            if key.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
                return f"the {key[5:].replace('_', '-').title()} header contains a NUL character"
        # A quoted cookie value may spell NUL as an escape ("\\000") that parsing turns into the character.
        if any("\x00" in name + value for name, value in request.COOKIES.items()):
            return "the Cookie header contains a NUL character"
        return ""

    @staticmethod
    def too_big(request: HttpRequest) -> bool:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = whole_number(request.META.get("CONTENT_LENGTH") or "0", most=MAX_BIG)
        return limit is not None and (length is None or length > limit)

    @staticmethod
    def nul_problem(request: HttpRequest, *, form: bool) -> str:
        if "\x00" in request.path_info:
            return "the address contains a NUL character"
        # API bodies are checked by the serializers (DRF refuses NUL in text fields).
        sources = (("query string", request.GET), ("form", request.POST if form else None))
        for where, values in sources:
            if values is not None and any("\x00" in key + "".join(vs) for key, vs in values.lists()):
                return f"the {where} contains a NUL character"
        return ""


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
