"""Turn service errors into JSON bodies with the right status, so the API never answers 500 for bad input."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from releases.errors import LineageError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, LineageError):
        return Response({"error": exc.message, "rule": exc.rule}, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "error" not in response.data:
        detail = response.data.get("detail")
        response.data = {"error": str(detail) if detail else "invalid request", "fields": response.data}
    return response
