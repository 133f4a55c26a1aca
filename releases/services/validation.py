from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from releases.errors import InvalidInput


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
