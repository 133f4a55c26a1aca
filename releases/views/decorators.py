"""Permission decorators for pages: who may open a page or press a button."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from releases.roles import may_act_as

View = TypeVar("View", bound=Callable[..., Any])


def role_required(*roles: str, to: str, audited_by_service: bool = False) -> Callable[[View], View]:
    """Refuse (403, naming the role) anyone outside ``roles``; superusers pass.

    With ``audited_by_service`` only reading the page is refused here: a write goes on to the service,
    which refuses it itself and records the attempt as audit evidence.
    """

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            checked_here = not audited_by_service or request.method in ("GET", "HEAD")
            if checked_here and not may_act_as(request.user, *roles):
                raise PermissionDenied(f"Only {' or '.join(roles)} may {to}.")
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
