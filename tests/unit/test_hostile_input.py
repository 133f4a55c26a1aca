"""Hostile input at every door: NUL characters, digits int() refuses, numbers past the columns, moments
past the calendar, bodies too deep or too big. Each gets a clear 400/404/413 (or exit 2), never a 500.

The last tests are generated: hypothesis sends hostile strings, numbers and moments to every route
parameter (enumerated from the URL resolver, so a new route is covered without editing this file) and
every query parameter and form field the pages read, as every persona.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLResolver, get_resolver
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from releases.api.hooks import expected_signature
from releases.management.commands.register_dataset import Command as RegisterDataset
from releases.models import DatasetVersion
from releases.models.base import MAX_BIG, MAX_VERSION, version_number
from releases.numbers import whole_number
from releases.views.params import BadParameter, parse_moment, parse_page
from tests.factories import World, content_hash
from tests.unit.conftest import api, client_for, token_for

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "webhook-secret"
DEEP_JSON = "[" * 100_000 + "]" * 100_000
THREE_MEGABYTES = json.dumps({"name": "x" * 3_000_000})


# One parser for numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        (str(MAX_VERSION), MAX_VERSION),
        (str(MAX_VERSION + 1), None),
        ("²", None),
        ("٣", None),
        ("\uff13", None),  # fullwidth three
        (" 3", None),
        ("3\n", None),
        ("1_0", None),
        ("-1", None),
        ("+1", None),
        ("", None),
        ("9" * 100_000, None),
    ],
)
def test_whole_number_takes_ascii_digits_within_the_column(text: str, expected: int | None) -> None:
    assert whole_number(text, most=MAX_VERSION) == expected


def test_version_numbers_start_at_one() -> None:
    assert version_number("0") is None
    assert version_number("1") == 1


@pytest.mark.parametrize("text", ["²", "٣", "1_0", " 2", "99999999999999999999", None, ""])
def test_unusable_page_numbers_mean_the_first_page(text: str | None) -> None:
    assert parse_page(text) == 1


# NUL: PostgreSQL cannot compare or store it, so it is refused before any lookup ---------------


@pytest.mark.parametrize(
    "url",
    [
        "/releases/churn%00v42/",
        "/releases/churn-v42/evidence/%00",
        "/endpoints/churn%00scoring/",
        "/datasets/churn%00train/17/",
        "/commits/ab%00cd/",
        "/runs/%00/",
        "/models/churn%00model/",
        "/releases/?model=churn%00model",
        "/endpoints/churn-scoring/?at=2024-01-01%00",
        "/investigate/?endpoint=churn%00scoring",
        "/releases/compare/?a=churn-v41&b=churn%00v42",
        "/?q=%00",
        "/admin/releases/release/%00/change/",
        "/admin/releases/release/?q=%00",
    ],
)
def test_nul_in_a_page_address_is_a_clear_400(story: dict[str, Any], lead: User, url: str) -> None:
    lead.is_staff = lead.is_superuser = True
    lead.save()

    response = client_for(lead).get(url)

    assert response.status_code == 400
    assert "contains a NUL character" in response.content.decode()


@pytest.mark.parametrize(
    "url",
    ["/api/releases/churn%00v42/", "/api/dataset-versions/?dataset=churn%00train", "/api/releases/?state=%00"],
)
def test_nul_in_an_api_address_is_a_400_json_error(story: dict[str, Any], lead: User, url: str) -> None:
    response = api(token_for(lead)).get(url)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "contains a NUL character" in response.json()["error"]


def test_nul_in_a_form_field_is_refused_before_the_service(story: dict[str, Any], lead: User) -> None:
    response = client_for(lead).post("/datasets/churn-train/18/quarantine/", {"reason": "bad\x00rows"})

    assert response.status_code == 400
    assert "the form contains a NUL character" in response.content.decode()
    assert DatasetVersion.objects.get(dataset__name="churn-train", version=18).status == DatasetVersion.Status.ACTIVE
    assert not AuditEvent.objects.filter(action="dataset_version.quarantined").exists()


def test_nul_in_the_session_cookie_is_a_400_not_a_session_lookup(story: dict[str, Any]) -> None:
    client = Client()
    client.cookies["sessionid"] = "abcdefgh\x00ijkl"

    response = client.get("/releases/")

    assert response.status_code == 400
    assert "the Cookie header contains a NUL character" in response.content.decode()


def test_nul_in_a_webhook_header_is_a_400_json_error(settings: Any) -> None:
    settings.LINEAGE_MLFLOW_WEBHOOK_SECRET = WEBHOOK_SECRET
    headers = {"X-MLflow-Signature": "v1,x", "X-MLflow-Delivery-Id": "d\x00", "X-MLflow-Timestamp": "1"}

    response = Client().post("/api/hooks/mlflow/", b"{}", content_type="application/json", headers=headers)

    assert response.status_code == 400
    assert response.json() == {"error": "the X-Mlflow-Delivery-Id header contains a NUL character"}


# Numbers past the columns ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("version", MAX_VERSION + 1), ("version", 10**30), ("size_bytes", MAX_BIG + 1), ("size_bytes", -1)],
)
def test_api_refuses_numbers_past_the_column(world: World, lead: User, field: str, value: int) -> None:
    body = {"name": "churn-train", "version": 3, "uri": "s3://d/3", "content_hash": content_hash("3"), field: value}

    response = api(token_for(lead)).post("/api/dataset-versions/", body, content_type="application/json")

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not DatasetVersion.objects.filter(dataset__name="churn-train", version=3).exists()


@pytest.mark.parametrize("typed", ["٣", "²", "1_0", str(MAX_VERSION + 1), "0"])
def test_cli_version_that_is_not_a_column_number_exits_2(typed: str, capsys: pytest.CaptureFixture[str]) -> None:
    command = RegisterDataset()
    command._called_from_command_line = True  # argparse then exits 2, as on a terminal
    parser = command.create_parser("manage.py", "register_dataset")

    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["churn-train", "--version", typed, "--uri", "s3://d", "--hash", "sha256:0", "--as", "x"])

    assert exited.value.code == 2
    assert (
        f"argument --version: expected a whole number from 1 to {MAX_VERSION}, not {typed!r}" in capsys.readouterr().err
    )


# Moments past the calendar ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00", "0001-01-01T00:30+00:45"])
def test_moment_whose_utc_leaves_the_calendar_is_a_bad_parameter(text: str) -> None:
    with pytest.raises(BadParameter, match="outside the years 1 to 9999"):
        parse_moment(text)


def test_moment_with_an_offset_is_read_in_utc() -> None:
    assert parse_moment("2024-05-01T15:30+02:00") == datetime.datetime(2024, 5, 1, 13, 30, tzinfo=datetime.UTC)


@pytest.mark.parametrize("page", ["/endpoints/churn-scoring/", "/investigate/?endpoint=churn-scoring&"])
def test_pages_answer_400_for_a_moment_past_the_calendar(story: dict[str, Any], lead: User, page: str) -> None:
    separator = "" if page.endswith("&") else "?"
    response = client_for(lead).get(f"{page}{separator}at={quote('0001-01-01T00:00+01:00')}")

    assert response.status_code == 400
    assert "outside the years 1 to 9999" in response.content.decode()


# Bodies too deep or too big ---------------------------------------------------------------------


def _signed_webhook(body: bytes) -> Any:
    delivery, timestamp = "d-1", str(int(time.time()))
    return Client().post(
        "/api/hooks/mlflow/?server=local",
        body,
        content_type="application/json",
        headers={
            "X-MLflow-Signature": expected_signature(WEBHOOK_SECRET, delivery, timestamp, body),
            "X-MLflow-Delivery-Id": delivery,
            "X-MLflow-Timestamp": timestamp,
        },
    )


@pytest.fixture
def webhook_secret(settings: Any) -> str:
    settings.LINEAGE_MLFLOW_WEBHOOK_SECRET = WEBHOOK_SECRET
    return WEBHOOK_SECRET


def test_api_json_nested_too_deep_is_a_400_json_error(lead: User, settings: Any) -> None:
    settings.DEBUG = False

    response = api(token_for(lead)).post("/api/releases/", DEEP_JSON, content_type="application/json")

    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]


def test_webhook_json_nested_too_deep_is_a_400_json_error(webhook_secret: str) -> None:
    response = _signed_webhook(DEEP_JSON.encode())

    assert response.status_code == 400
    assert "not an MLflow webhook event" in response.json()["error"]


def test_api_body_over_the_upload_limit_is_a_413_json_error(lead: User) -> None:
    response = api(token_for(lead)).post("/api/dataset-versions/", THREE_MEGABYTES, content_type="application/json")

    assert response.status_code == 413
    assert "larger than" in response.json()["error"]


def test_webhook_body_over_the_upload_limit_is_a_413_json_error(webhook_secret: str) -> None:
    response = _signed_webhook(THREE_MEGABYTES.encode())

    assert response.status_code == 413
    assert "larger than" in response.json()["error"]


def test_webhook_event_naming_a_nul_is_a_400(webhook_secret: str) -> None:
    response = _signed_webhook(json.dumps({"entity": "model_version", "data": {"name": "churn\x00"}}).encode())

    assert response.status_code == 400
    assert "NUL" in response.json()["error"]


# Generated: every route parameter and every query parameter, as every persona -------------------

FORM_NAMES = (
    "reason", "comment", "password", "meaning", "digest", "decision", "target", "release", "next", "full",
    "username", "confirm", "action", "_selected_action", "owner", "purpose", "note", "from", "to", "environment",
)  # fmt: skip
CODE_READS = re.compile(r"""(?:GET|POST|query_params)(?:\.get\(|\[)\s*"([a-z_]+)\"""")
FORM_INPUTS = re.compile(r"""<(?:input|select|textarea|button)[^>]*\bname="([a-z_]+)\"""")

printable = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
# Numbers past the integer columns, negative, or long enough to cost int() time.
numbers = st.integers(min_value=-(2**70), max_value=2**70).map(str) | st.sampled_from(
    [str(2**31), str(2**31 - 1), str(2**63), str(2**64), "9" * 5000, "1e309", "NaN", "1_0"]
)
# Moments in every time zone, and at the calendar's ends with an offset that carries UTC past them.
moments = st.one_of(
    printable,
    st.datetimes(timezones=st.timezones() | st.just(datetime.UTC)).map(datetime.datetime.isoformat),
    st.sampled_from(["9999-12-31", "0001-01-01", "2024-13-45", "2024-05-01T25:00"]),
    st.builds(
        lambda first, hours: f"0001-01-01T00:00+{hours:02}:00" if first else f"9999-12-31T23:59-{hours:02}:00",
        st.booleans(),
        st.integers(min_value=1, max_value=23),
    ),
)
hostile_text = st.one_of(
    printable,
    # Digits str.isdigit() accepts and int() refuses ("²"), or int() accepts and nobody means ("٣"); and
    # NUL, which PostgreSQL refuses in text. One branch for both: NUL is refused before any view runs, so
    # a request with one in every few parameters would never reach the views the other values test.
    st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=12)
    | st.tuples(printable, printable).map("\x00".join),
    numbers,
    moments,
    # Overlong, traversal, injection, direction overrides; and real names, so hostile values meet real rows.
    st.sampled_from(
        [
            "x" * 5000,
            "../../etc/passwd",
            "..",
            "%00",
            "%2F",
            "' OR 1=1 --",
            "<script>alert(1)</script>",
            "\u202e",
            "churn-v42",
            "churn-scoring",
            "churn-train",
            "churn-train:17",
            "churn-model/42",
            "17",
        ]
    ),
)
# Every query parameter a page or endpoint reads (and the admin's search, ordering and page), each with
# the values it expects as well as hostile ones.
QUERY_PARAMETERS = {
    **dict.fromkeys(
        [
            "a",
            "b",
            "dataset",
            "endpoint",
            "env",
            "model",
            "next",
            "o",
            "q",
            "release",
            "server",
            "state",
            "waiting",
            "actor",
            "action",
            "object",
            "request",
        ],
        hostile_text,
    ),
    **dict.fromkeys(
        [
            "page",
            "limit",
            "p",
            "before",
            "after",
            "runs_page",
            "versions_page",
            "releases_page",
            "endpoints_page",
            "live_page",
            "commits_page",
        ],
        numbers | hostile_text,
    ),
    **dict.fromkeys(["at", "from", "to"], moments),
}
FORM_FIELDS = dict.fromkeys(FORM_NAMES, hostile_text)


def _routes(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every URL pattern as a %-format string and its parameter names, named or not, namespaced or not."""
    for entries in resolver.reverse_dict.lists():
        for possibilities, *_ in entries[1]:
            for template, parameters in possibilities:
                yield prefix + template, tuple(parameters)
    for namespace_prefix, inner in resolver.namespace_dict.values():
        yield from _routes(inner, prefix + namespace_prefix)


ROUTES = sorted(set(_routes(get_resolver())))
ADMIN_EXAMPLES, EXAMPLES = 2, 20


def test_routes_are_enumerated_from_the_resolver() -> None:
    templates = {template for template, _ in ROUTES}
    assert {"releases/%(name)s/", "datasets/%(name)s/%(version)s/", "api/releases/%(name)s/submit/"} <= templates
    assert "admin/releases/release/%(object_id)s/change/" in templates


def test_every_parameter_the_code_reads_is_generated() -> None:
    """A new query parameter or form field must be added above, so the generated test sends it hostile values."""
    code = [*ROOT.glob("releases/**/*.py"), *ROOT.glob("audit/**/*.py")]
    read = {name for path in code for name in CODE_READS.findall(path.read_text())}
    read |= {name for path in ROOT.glob("templates/**/*.html") for name in FORM_INPUTS.findall(path.read_text())}
    assert read - set(QUERY_PARAMETERS) - set(FORM_FIELDS) == set()


@pytest.fixture
def personas(
    story: dict[str, Any], lead: User, auditor: User, oncall: User, release_manager: User
) -> dict[str, User | None]:
    admin = User.objects.create_superuser("admin", "admin@example.com", "x")
    people = {"lead": lead, "auditor": auditor, "oncall": oncall, "release manager": release_manager, "admin": admin}
    return {"anonymous": None, **people}


def test_generated_hostile_input_never_breaks_a_page(personas: dict[str, User | None], webhook_secret: str) -> None:
    """Every route, with hostile path values, query parameters and form fields, as every persona: no 5xx."""
    started, sent = time.monotonic(), 0
    for template, parameters in ROUTES:
        sent += _hammer(template, parameters, personas)
    elapsed = time.monotonic() - started
    print(f"hostile input: {len(ROUTES)} routes, {sent} requests in {elapsed:.0f}s")


def _hammer(template: str, parameters: tuple[str, ...], personas: dict[str, User | None]) -> int:
    admin = template.startswith("admin/")
    sent = 0

    @settings(
        max_examples=ADMIN_EXAMPLES if admin else EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        persona=st.just("admin") if admin else st.sampled_from(sorted(personas)),
        values=st.fixed_dictionaries(dict.fromkeys(parameters, hostile_text)),
        query=st.fixed_dictionaries({}, optional=QUERY_PARAMETERS),
        # Mostly reads; a third of the time a POST with hostile form fields (admin screens are only read).
        form=st.none() if admin else st.one_of(st.none(), st.none(), st.fixed_dictionaries({}, optional=FORM_FIELDS)),
    )
    def send(persona: str, values: dict[str, str], query: dict[str, str], form: dict[str, str] | None) -> None:
        nonlocal sent
        sent += 1
        path = "/" + template % {name: quote(value, safe="") for name, value in values.items()}
        # A fresh client each time: a generated POST to logout/ must not sign the persona out for the next one.
        person = personas[persona]
        client = Client() if person is None else client_for(person)
        response = client.get(path, query) if form is None else client.post(f"{path}?{_query(query)}", form)
        body = b"" if getattr(response, "streaming", False) else response.content
        assert response.status_code < 500, f"{response.status_code} for {persona}: {path} {query} {form}"
        assert b"Traceback" not in body, f"a traceback for {persona}: {path} {query} {form}"

    send()
    return sent


def _query(query: dict[str, str]) -> str:
    return "&".join(f"{quote(key)}={quote(value, safe='')}" for key, value in query.items())
