"""Permission decorators for pages: who may open a page."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from releases.roles import may_act_as

View = TypeVar("View", bound=Callable[..., Any])

READING = ("GET", "HEAD")


def role_required(*roles: str, to: str) -> Callable[[View], View]:
    """Refuse (403, naming the role) anyone outside ``roles`` who opens the page; superusers pass.

    Only reading is guarded here. A write (POST) always goes on to its service, which checks the role
    itself and records a refusal as audit evidence: a refused attempt leaves the same one event
    whichever door it came through (page, API, command).
    """

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.method in READING and not may_act_as(request.user, *roles):
                raise PermissionDenied(f"Only {' or '.join(roles)} may {to}.")
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
