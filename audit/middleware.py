from __future__ import annotations

import uuid
from collections.abc import Callable

from axes.helpers import get_client_ip_address, get_client_user_agent
from django.http import HttpRequest, HttpResponse

from audit import context


class RequestIdMiddleware:
    """Tags every audit event written during a request with the request's id, and keeps who made it.

    An incoming ``X-Request-ID`` (from a load balancer or CI) is kept, so one id ties the
    CI log, the web log and the audit trail together. The client's address and user agent (read the
    way the lockout reads them) and the signed-in person are kept for events that need them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")[:64]
        rid = incoming if incoming.isprintable() and incoming else uuid.uuid4().hex
        tokens = (
            context.request_id.set(rid),
            context.client.set(context.Client(get_client_ip_address(request), get_client_user_agent(request))),
            context.request.set(request),
        )
        try:
            response = self.get_response(request)
        finally:
            context.request_id.reset(tokens[0])
            context.client.reset(tokens[1])
            context.request.reset(tokens[2])
        response["X-Request-ID"] = rid
        return response
