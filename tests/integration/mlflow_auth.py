"""The authorization function the tests' `mlflow server --app-name basic-auth` runs with.

MLflow's basic-auth app takes a custom ``authorization_function`` (its documented extension point). This
one adds what a token-protected MLflow (behind an identity proxy, or a managed one) does: a bearer token
stands for a user of the auth store. Any other request goes through MLflow's own Basic authentication.
The server process imports this module; the tokens come from its environment
(``LINEAGE_TEST_MLFLOW_TOKENS``: JSON, token -> username).
"""

from __future__ import annotations

import json
import os
from typing import Any


def token_or_basic() -> Any:
    from flask import request
    from mlflow.server.auth import authenticate_request_basic_auth, make_basic_auth_response
    from werkzeug.datastructures import Authorization

    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        tokens = json.loads(os.environ.get("LINEAGE_TEST_MLFLOW_TOKENS", "{}"))
        username = tokens.get(header[len("bearer ") :].strip())
        if username:
            return Authorization("basic", {"username": username})
        return make_basic_auth_response()
    return authenticate_request_basic_auth()
