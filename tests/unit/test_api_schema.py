"""The API answers what its published schema (/api/schema/) says, for inputs generated from that schema.

Schemathesis reads the schema the app serves, generates requests for every operation (ones that fit
the schema and ones that deliberately do not), sends them to the app in-process with a token holding
every scope, and checks each answer: no server error, a documented status code and content type,
documented headers, a body that matches the documented schema.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup

from tests.unit.conftest import api, token_for

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION_AND_MODE = 30


@pytest.fixture
def same_connection() -> Iterator[None]:
    """The app runs inside the test's transaction: keep Django from closing the connection after each
    request, as its own test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_api_answers_as_its_schema_says(story: dict[str, Any], lead: Any, same_connection: None) -> None:
    # An ML lead may use every write; the token holds every scope.
    headers = {"Authorization": f"Bearer {token_for(lead)}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), headers=headers)
    failures: dict[tuple[str, str], str] = {}
    cases = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            cases += _exercise(operation.as_strategy(generation_mode=mode), headers, failures)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {cases} cases in {elapsed:.0f}s, {len(failures)} distinct failures")
    report = "\n".join(f"{where} {what}: {example}" for (where, what), example in failures.items())
    assert not failures, f"{len(failures)} distinct failures in {cases} cases:\n{report}"


def _exercise(strategy: Any, headers: dict[str, str], failures: dict[tuple[str, str], str]) -> int:
    """Send the strategy's cases, collecting every distinct failure (not just the first); returns how many ran."""
    sent = 0

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Failure, FailureGroup) as found:
            for failure in found.exceptions if isinstance(found, FailureGroup) else (found,):
                where = f"{case.operation.label} [{case.meta.generation.mode if case.meta else '?'}]"
                what = f"{failure.title} ({response.status_code})"
                failures.setdefault((where, what), f"{failure.message}\n  {case.as_curl_command()}")

    send()
    return sent


@pytest.mark.parametrize(("method", "url"), [("post", "/api/releases/churn-v42/"), ("put", "/api/endpoints/")])
def test_a_method_an_endpoint_does_not_have_is_405_not_a_missing_scope(
    story: dict[str, Any], lead: Any, method: str, url: str
) -> None:
    response = getattr(api(token_for(lead)), method)(url, {}, content_type="application/json")

    assert response.status_code == 405
    assert response.json()["error"] == f'Method "{method.upper()}" not allowed.'


def test_a_body_in_a_type_the_api_does_not_read_is_a_documented_415(lead: Any) -> None:
    response = api(token_for(lead)).post("/api/releases/", "name: churn-v43", content_type="text/yaml")

    assert response.status_code == 415
    assert response.json()["error"] == 'Unsupported media type "text/yaml" in request.'
    schema = api(token_for(lead)).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "415" in schema["paths"]["/api/releases/"]["post"]["responses"]
