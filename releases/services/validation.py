from __future__ import annotations

from typing import Any, NoReturn

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import transaction

from audit import log
from audit.log import Actor
from releases.errors import InvalidInput, LineageError


def check(validator: RegexValidator, value: str, what: str) -> None:
    """Run a field validator and turn its failure into an InvalidInput naming the value."""
    try:
        validator(value)
    except ValidationError as exc:
        raise InvalidInput(f"{what} {value!r} is not valid: {exc.messages[0]}") from exc


def require_reason(reason: str, what: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidInput(f"a reason is required to {what}")
    return reason


def refuse(
    error: LineageError,
    *,
    by: Actor,
    action: str,
    object_type: str,
    object_key: str,
    details: dict[str, Any] | None = None,
) -> NoReturn:
    """Record a refused write as an audit event (with the rule that refused it), then raise ``error``.

    A refusal is evidence, so it is committed although the change is not: call this outside the
    transaction of the refused change, which rolls back.
    """
    with transaction.atomic():
        log.record(
            action,
            actor=by,
            object_type=object_type,
            object_key=object_key,
            new={**(details or {}), "rule": error.rule},
            reason=error.message,
        )
    raise error
