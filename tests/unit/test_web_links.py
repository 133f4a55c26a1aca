"""The one rule for an address a page links to (releases/web_links.py), at every door that stores one."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from releases import services
from releases.errors import InvalidInput
from releases.models import GitRepository, TrackingServer
from releases.web_links import (
    delivery_url_problem,
    is_site_path,
    is_web_url,
    safe_href,
    validate_delivery_url,
    validate_web_url,
)
from tests.factories import SYSTEM

# Addresses that hide a script (or another site) behind what a browser forgives before it reads a scheme.
HOSTILE = [
    "javascript:alert(document.cookie)",
    " javascript:alert(1)",
    "\tjavascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "java\rscript:alert(1)",
    "javascript:alert(1)//http://example.com/{sha}",
    "\x00javascript:alert(1)",
    "\x01javascript:alert(1)",
    "javascript\x7f:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "javascript&#58;alert(1)",
    "&#106;avascript:alert(1)",
    "javascript&colon;alert(1)",
    "&#x6A;avascript&#x3A;alert(1)",
    "//evil.example.com/commit/{sha}",
    "\\\\evil.example.com/x",
    "/\\evil.example.com/x",
    "http:evil.example.com",
    "https:///evil",
    "http://",
    "http://[::1",
    "ftp://files.example.com/x",
    "file:///etc/passwd",
    "mailto:someone@example.com",
    "https://git.example.com/ commit",
    "",
]
WEB = [
    "https://git.example.com/churn/commit/{sha}",
    "http://mlflow.example.com",
    "HTTPS://MLflow.Example.com:8443/ui/",
    "http://mlflow:5000",
    "http://127.0.0.1:5000/#/experiments/1",
    "https://[::1]:8080/",
]


@pytest.mark.parametrize("address", HOSTILE)
def test_an_address_that_hides_another_scheme_is_not_a_web_address(address):
    assert not is_web_url(address)
    with pytest.raises(ValidationError) as refused:
        validate_web_url(address)
    assert refused.value.code == "not_a_web_url"


@pytest.mark.parametrize("address", WEB)
def test_http_and_https_addresses_with_a_host_are_web_addresses(address):
    assert is_web_url(address)
    validate_web_url(address)
    assert safe_href(address) == address


@pytest.mark.parametrize("address", HOSTILE)
def test_an_address_refused_as_a_link_is_refused_as_a_webhook_address(address):
    assert delivery_url_problem(address)
    with pytest.raises(ValidationError) as refused:
        validate_delivery_url(address)
    assert refused.value.code == "not_a_delivery_url"


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        (
            "https://bob:hunter2@hooks.example.com/x",
            "an address cannot carry a user name or password; name the secret instead",
        ),
        ("https://bob@hooks.example.com/x", "an address cannot carry a user name or password; name the secret instead"),
        ("https://:@hooks.example.com/x", "an address cannot carry a user name or password; name the secret instead"),
        ("https://hooks.example.com:65536/x", "the address's port is not a number from 0 to 65535"),
        ("https://hooks.example.com:http/x", "the address's port is not a number from 0 to 65535"),
    ],
)
def test_a_webhook_address_carries_no_credentials_and_a_readable_port(address, problem):
    assert is_web_url(address), "a page could link to it"
    assert delivery_url_problem(address) == problem


@pytest.mark.parametrize("address", WEB)
def test_a_web_address_without_credentials_is_a_webhook_address(address):
    assert delivery_url_problem(address) == ""


@pytest.mark.parametrize("address", HOSTILE)
def test_a_hostile_address_is_rendered_as_an_inert_link(address):
    assert safe_href(address) == "#"


@pytest.mark.parametrize("path", ["/releases/churn-v42/", "/search/?q=churn", "?page=2", "#sign", "/"])
def test_a_path_on_this_site_is_a_link(path):
    assert is_site_path(path)
    assert safe_href(path) == path


@pytest.mark.parametrize("value", [None, 42, ["https://example.com"], "//evil.example.com", "/\tjavascript:x"])
def test_anything_else_is_not_a_link(value):
    assert safe_href(value) == "#"


@pytest.mark.parametrize("address", HOSTILE[:-1])
def test_the_service_refuses_a_hostile_commit_url_template_and_records_it(db, address):
    with pytest.raises(InvalidInput) as refused:
        services.add_git_repository(name="fraud", url="/srv/git/fraud.git", commit_url_template=address, by=SYSTEM)
    assert refused.value.rule == "not_a_web_url"
    assert not GitRepository.objects.filter(name="fraud").exists()
    [event] = AuditEvent.objects.filter(action="git_repository.add_refused", object_key="fraud")
    assert event.new["rule"] == "not_a_web_url"


@pytest.mark.parametrize("address", HOSTILE[:-1])
def test_the_service_refuses_a_hostile_mlflow_ui_url_and_records_it(db, address):
    with pytest.raises(InvalidInput):
        services.add_mlflow_server(name="evil", tracking_uri="http://127.0.0.1:5000", ui_url=address, by=SYSTEM)
    assert not TrackingServer.objects.filter(name="evil").exists()
    [event] = AuditEvent.objects.filter(action="tracking_server.add_refused", object_key="evil")
    assert event.new["rule"] == "not_a_web_url"


def test_a_tracking_uri_that_is_no_web_address_is_not_used_as_the_ui_address(db):
    server = services.add_mlflow_server(name="local", tracking_uri="file:///srv/mlruns", by=SYSTEM).server
    assert server is not None
    server.refresh_from_db()
    assert server.ui_url == ""
    web = services.add_mlflow_server(name="web", tracking_uri="http://mlflow:5000", by=SYSTEM).server
    assert web is not None
    web.refresh_from_db()
    assert web.ui_url == "http://mlflow:5000"


def test_surrounding_spaces_are_trimmed_before_the_address_is_stored(db):
    state = services.add_git_repository(
        name="spaced", url="/srv/git/x.git", commit_url_template="  https://git.example.com/x/{sha}\n", by=SYSTEM
    )
    assert state.repository is not None
    state.repository.refresh_from_db()
    assert state.repository.commit_url_template == "https://git.example.com/x/{sha}"


@pytest.mark.parametrize(("model", "field"), [(GitRepository, "commit_url_template"), (TrackingServer, "ui_url")])
def test_the_model_fields_carry_the_rule_so_every_model_form_applies_it(model, field):
    row = model(name="x", **{field: "JaVaScRiPt:alert(1)"})
    with pytest.raises(ValidationError) as refused:
        row.full_clean(exclude=[f.name for f in model._meta.fields if f.name != field])
    assert field in refused.value.message_dict


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("add_git_repository", ["fraud", "/srv/git/fraud.git", "--commit-url-template", "java\tscript:alert(1)"]),
        ("add_mlflow_server", ["evil", "http://127.0.0.1:5000", "--ui-url", "JaVaScRiPt:alert(1)"]),
    ],
)
def test_a_command_given_a_script_address_exits_2_with_one_line(db, command, args):
    with pytest.raises(CommandError) as refused:
        call_command(command, *args, stdout=StringIO())
    assert refused.value.returncode == 2
    assert "must be an http:// or https:// address" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not GitRepository.objects.filter(name="fraud").exists()
    assert not TrackingServer.objects.filter(name="evil").exists()


def test_the_admin_refuses_a_script_mlflow_ui_address_as_a_form_error_and_records_it(client, db):
    root = User.objects.create_superuser("root", password="x" * 12)
    client.force_login(root)
    response = client.post(
        reverse("admin:releases_trackingserver_add"),
        {"name": "evil", "tracking_uri": "http://127.0.0.1:5000", "ui_url": "data:text/html,<script>alert(1)</script>"},
    )
    assert response.status_code == 200
    assert "the MLflow UI URL must be an http:// or https:// address" in response.content.decode()
    assert not TrackingServer.objects.filter(name="evil").exists()
    [event] = AuditEvent.objects.filter(action="tracking_server.add_refused", object_key="evil")
    assert event.new["rule"] == "not_a_web_url"


def _as_a_browser_reads_it(href: str) -> str:
    # The WHATWG URL parser: leading and trailing C0 controls and spaces dropped, tabs and newlines
    # removed anywhere, backslashes read as slashes, the scheme compared without case.
    href = href.strip("".join(chr(c) for c in range(0x21)))
    return re.sub(r"[\t\n\r]", "", href).replace("\\", "/").lower()


SCHEMES = st.sampled_from(["javascript", "JaVaScRiPt", "data", "vbscript", "http", "https", "file", ""])
NOISE = st.lists(st.sampled_from([*" \t\n\r\x00\x01\x7f\\/:&#;", "&#58;", "&colon;"]), max_size=4).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(lambda a, s, b, c, rest: f"{a}{s}{b}:{c}{rest}", NOISE, SCHEMES, NOISE, NOISE, st.text(max_size=12)),
    )
)
def test_whatever_passes_is_a_web_address_or_a_path_here_as_a_browser_reads_it(candidate: str) -> None:
    href = safe_href(candidate)
    if href == "#":
        return
    read = _as_a_browser_reads_it(href)
    assert href == candidate
    assert read.startswith(("http://", "https://")) or (read[:1] in "/?#" and not read.startswith("//")), read
