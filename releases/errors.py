"""Errors the services raise. Each carries the HTTP status its refusal maps to."""

from __future__ import annotations


class LineageError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, rule: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule or self.code
        # Set once the refusal is in the audit trail (releases.services.refusals), so it is recorded once.
        self.recorded = False


class InvalidInput(LineageError):
    """The request itself is malformed (a bad name, a missing reason)."""


class NotFound(LineageError):
    status_code = 404
    code = "not_found"


class Conflict(LineageError):
    """The request contradicts what is already recorded (immutable content differs)."""

    status_code = 409
    code = "conflict"


class RuleViolation(LineageError):
    """A product rule refuses the change (four-eyes, promotion gate, quarantine...)."""

    status_code = 409
    code = "refused"


class PermissionRefused(LineageError):
    status_code = 403
    code = "forbidden"
