"""OpenAPI description of the token authentication, so /api/docs/ offers an 'Authorize' box."""

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
