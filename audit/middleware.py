from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit import context


class RequestIdMiddleware:
    """Tags every audit event written during a request with the request's id.

    An incoming ``X-Request-ID`` (from a load balancer or CI) is kept, so one id ties the
    CI log, the web log and the audit trail together.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")[:64]
        rid = incoming if incoming.isprintable() and incoming else uuid.uuid4().hex
        token = context.request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            context.request_id.reset(token)
        response["X-Request-ID"] = rid
        return response
