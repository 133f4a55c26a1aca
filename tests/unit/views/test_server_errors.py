"""handler500: the database being unavailable is a 503 that says so, in a page or in the API's JSON."""

from __future__ import annotations

import json

import pytest
from django.db import InterfaceError, OperationalError
from django.http import HttpResponseBase
from django.test import RequestFactory
from django.urls import get_resolver

from releases.views import server_errors

LOST = "connection to server at 127.0.0.1, port 5432 failed: Connection refused"


def answer_while_handling(error: Exception, path: str) -> HttpResponseBase:
    """The site's handler500, called as Django calls it: while the request's exception is being handled."""
    handler = get_resolver().resolve_error_handler(500)
    try:
        raise error
    except Exception:
        return handler(RequestFactory().post(path))


@pytest.mark.parametrize("error", [OperationalError(LOST), InterfaceError("connection already closed")])
def test_a_lost_database_is_a_503_page_saying_so(error: Exception) -> None:
    response = answer_while_handling(error, "/releases/churn-v42/sign/")

    page = response.content.decode()
    assert (response.status_code, response["Retry-After"]) == (503, "30")
    assert "The database is unavailable" in page
    assert "recorded whole or not at all" in page
    assert LOST not in page
    assert "Traceback" not in page


def test_a_lost_database_is_a_503_json_error_in_the_api() -> None:
    response = answer_while_handling(OperationalError(LOST), "/api/releases/")

    assert (response.status_code, response["Content-Type"]) == (503, "application/json")
    assert json.loads(response.content) == {
        "error": server_errors.DATABASE_UNAVAILABLE,
        "rule": "database_unavailable",
    }


def test_any_other_error_is_still_a_plain_500() -> None:
    response = answer_while_handling(ValueError("a bug"), "/")

    assert response.status_code == 500
    assert b"a bug" not in response.content
    assert "Retry-After" not in response
