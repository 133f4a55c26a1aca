"""Per-request context the audit log picks up without every caller passing it along."""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("audit_request_id", default="")
