"""What a person sees when the server cannot answer: a lost database is said in plain words, as a 503.

Django calls ``handler500`` for any exception no view or middleware handled, while it is handling that
exception, so ``sys.exc_info()`` names it. The database going away (a restart, a failover, a network cut)
raises ``OperationalError`` or ``InterfaceError`` wherever the next query happens: in a view, or in the
middleware that loads the session. Nothing here may query the database: the page is rendered without
the request's context, as Django renders its own 500 page.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.template.loader import render_to_string
from django.views.defaults import server_error as plain_server_error

from releases.middleware import API_PREFIX

# The database usually returns within this many seconds: what a client is told to wait before trying again.
RETRY_AFTER_SECONDS = 30
DATABASE_UNAVAILABLE = (
    "the database is unavailable; try again in a minute. A change you were making was recorded whole "
    "or not at all: check before repeating it"
)


def server_error(request: HttpRequest) -> HttpResponseBase:
    """A 503 saying the database is unavailable (JSON for the API and webhooks), else Django's plain 500."""
    if not isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        return plain_server_error(request)
    response: HttpResponse
    if request.path_info.startswith(API_PREFIX):
        response = JsonResponse({"error": DATABASE_UNAVAILABLE, "rule": "database_unavailable"}, status=503)
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
