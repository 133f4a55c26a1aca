"""Permission decorators for pages: who may open a page or press a button."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from releases.roles import may_act_as

View = TypeVar("View", bound=Callable[..., Any])


def role_required(*roles: str, to: str) -> Callable[[View], View]:
    """Refuse (403, naming the role) anyone outside ``roles``; superusers pass."""

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not may_act_as(request.user, *roles):
                raise PermissionDenied(f"Only {' or '.join(roles)} may {to}.")
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
