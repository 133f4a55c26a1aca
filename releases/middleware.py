"""Site-wide rules for every page: a signed-in person who holds a role; no stored copies of live state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBadRequest, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

from releases.errors import NotFound
from releases.models.base import MAX_BIG, whole_number
from releases.roles import ALL_ROLES, may_act_as

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
    """Anonymous visitors are sent to the login page; signed-in people without any role get 403.

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
        if may_act_as(request.user, *ALL_ROLES):
            return None
        raise PermissionDenied(f"{request.user.get_username()} has no role yet; ask an administrator to grant one.")

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # A page asking for something that is not recorded answers 404 with what was not found.
        if isinstance(exception, NotFound):
            raise Http404(exception.message)


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
