"""The OpenAPI description: the token authentication (an "Authorize" box on /api/docs/) and the JSON errors."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "releases.api.permissions.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A service-account token from `manage.py create_api_token USER --scope ...`.",
        }


ERROR_SCHEMA = {
    "type": "object",
    "description": "Every refusal: what went wrong in plain words, the rule that refused it, the fields at fault.",
    "properties": {
        "error": {"type": "string"},
        "rule": {"type": "string", "description": "the product rule that refused the request, when one did"},
        "fields": {"type": "object", "description": "per-field messages, when the request body was at fault"},
    },
    "required": ["error"],
}
ERRORS = {
    "400": "The request cannot be understood: a malformed body or parameter, or a NUL character anywhere.",
    "401": "No credentials, or an unknown or revoked token.",
    "403": "The token lacks the scope, or its user the role, this operation needs.",
    "404": "Something the request names is not recorded.",
    "409": "The request contradicts what is recorded, or a product rule refuses it.",
    "413": "The request body is over the upload limit.",
    "415": "The request body is not JSON, a form or multipart.",
}
# Reads can fail to find only what their path names; writes also name things in their bodies.
READ_ERRORS, WRITE_ERRORS = ("400", "401", "403"), ("400", "401", "403", "404", "409", "413", "415")


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular hook: every operation documents the JSON errors it can answer, in one shape."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            codes = READ_ERRORS if method in ("get", "head") else WRITE_ERRORS
            if "{" in path:
                codes = (*codes, "404")
            for code in codes:
                operation["responses"][code] = {"description": ERRORS[code], "content": error}
    return result
