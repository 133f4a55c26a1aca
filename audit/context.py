"""Per-request context the audit log picks up without every caller passing it along."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

request_id: ContextVar[str] = ContextVar("audit_request_id", default="")


@dataclass(frozen=True)
class Client:
    """Where a request came from, as far as the server can tell: recorded with sign-ins and signatures."""

    ip_address: str | None
    user_agent: str


client: ContextVar[Client | None] = ContextVar("audit_client", default=None)
# The request being served, so a change made through Django's own forms (the user admin) can name the
# person signed in (read when the change happens: the API sets its user late) although no service ran.
request: ContextVar[Any] = ContextVar("audit_request", default=None)
# Who a service acts for while it makes a change that a signal receiver records (a role granted).
acting: ContextVar[Any] = ContextVar("audit_acting", default=None)


@contextmanager
def acting_as(actor: Any) -> Iterator[None]:
    """Within the block, changes recorded by signal receivers name ``actor``."""
    token = acting.set(actor)
    try:
        yield
    finally:
        acting.reset(token)


def current_actor() -> Any:
    """Who is making a change now: the actor a service named, else the signed-in person, else None."""
    actor = acting.get()
    if actor is not None:
        return actor
    user = getattr(request.get(), "user", None)
    return user if user is not None and user.is_authenticated else None
