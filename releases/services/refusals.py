"""A refused write is evidence: every refusal a service raises is recorded through this one helper.

The event is committed on its own, after the refused change has rolled back, so the attempt stays
in the audit trail although nothing else was written. A refusal that passes through two services
(a rollback refused by the promotion gate) is recorded once, by the first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import transaction

from audit import log
from audit.log import Actor
from audit.models import AuditEvent
from releases.errors import LineageError
from releases.roles import require_role

# A refused creation is named by what the caller typed, which may be longer than the audit column.
KEY_MAX = AuditEvent._meta.get_field("object_key").max_length or 255


@contextmanager
def recorded(
    action: str,
    *,
    by: Actor,
    subject: object = None,
    object_type: str = "",
    object_key: str = "",
    **attempted: object,
) -> Iterator[None]:
    """Run a service body; if it refuses (any LineageError), record ``action`` with the rule and message.

    The refused object is ``subject`` when it exists, or the type and key the caller tried to create.
    """
    try:
        yield
    except LineageError as refusal:
        record(action, refusal, by=by, subject=subject, object_type=object_type, object_key=object_key, **attempted)
        raise


def record(
    action: str,
    refusal: LineageError,
    *,
    by: Actor,
    subject: object = None,
    object_type: str = "",
    object_key: str = "",
    **attempted: object,
) -> None:
    """Record ``refusal`` as ``action`` (once): for a door that refuses before any service runs, such as
    an API token without the scope of the write it attempts."""
    if refusal.recorded:
        return
    if len(object_key) > KEY_MAX:
        # Cut to the column, and marked so that it never reads as the name of a real object.
        object_key = object_key[: KEY_MAX - 1] + "…"
    with transaction.atomic():
        log.record(
            action,
            actor=by,
            subject=subject,
            object_type=object_type,
            object_key=object_key,
            new={"rule": refusal.rule, **attempted},
            reason=refusal.message,
        )
    refusal.recorded = True


def check_role(
    action: str,
    *roles: str,
    by: Actor,
    to: str,
    subject: object = None,
    object_type: str = "",
    object_key: str = "",
) -> None:
    """Refuse ``by`` outside ``roles`` (no roles: only the sync and superusers), recorded as ``action``.

    For services whose other refusals are not audit events (a sync step reporting what it skipped):
    only the refused role is recorded here.
    """
    with recorded(action, by=by, subject=subject, object_type=object_type, object_key=object_key):
        require_role(by, *roles, to=to)


Service = TypeVar("Service", bound=Callable[..., Any])


def audited(action: str, subject: Callable[..., tuple[str, str]]) -> Callable[[Service], Service]:
    """Decorate a service so that any refusal it raises is recorded as ``action``.

    ``subject`` receives the service's arguments and names the object refused, as (type, key); the
    acting person is the service's ``by`` argument.
    """

    def decorate(service: Service) -> Service:
        @functools.wraps(service)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            object_type, object_key = subject(*args, **kwargs)
            with recorded(action, by=kwargs["by"], object_type=object_type, object_key=object_key):
                return service(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
