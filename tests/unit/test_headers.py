"""Every response carries the site's security headers; pages need no inline script or style to work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.unit.conftest import client_for

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def directives(header: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


def test_every_page_has_a_strict_content_security_policy(lead):
    for response in (Client().get("/login/"), client_for(lead).get("/"), client_for(lead).get("/releases/")):
        policy = directives(response["Content-Security-Policy"])
        assert policy["default-src"] == ["'self'"]
        assert policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'"]
        assert policy["img-src"] == ["'self'"]
        assert policy["object-src"] == ["'none'"]
        assert policy["base-uri"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["form-action"] == ["'self'"]
        assert not any("unsafe" in value for values in policy.values() for value in values)


def test_the_api_docs_relax_data_images_only(lead):
    response = client_for(lead).get("/api/docs/")
    assert response.status_code == 200
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["frame-ancestors"] == ["'none'"]
    html = response.content.decode()
    # Served from this site (drf-spectacular-sidecar), the start-up script from the view itself.
    assert "cdn.jsdelivr.net" not in html
    assert re.search(r'<script src="/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle\.js"', html)
    assert '<script src="/api/docs/?script="></script>' in html
    assert "<script>" not in html
    assert "<style>" not in html
    script = client_for(lead).get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")


def test_every_response_carries_the_other_security_headers(lead):
    response = client_for(lead).get("/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


# Inline code a strict policy refuses: <script> with a body (a src-only or JSON data block is fine),
# on*= handlers, style= attributes, <style> blocks, javascript: addresses.
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>"
    r"|\son[a-z]+\s*="
    r"|\sstyle\s*="
    r"|<style\b"
    r"|javascript:",
    re.IGNORECASE,
)
# The evidence report travels inside the evidence zip and is opened from disk, where no policy
# applies; it is self-contained on purpose (one file an auditor can print).
OFFLINE = {"audit/evidence_report.html", "audit/period_report.html", "audit/report_base.html"}


def inline_code(text: str) -> list[str]:
    return INLINE.findall(text)


def test_no_page_template_has_inline_script_or_style():
    found = {
        name: hits
        for path in sorted(TEMPLATES.rglob("*.html"))
        if (name := str(path.relative_to(TEMPLATES))) not in OFFLINE and (hits := inline_code(path.read_text()))
    }
    assert found == {}


@pytest.mark.parametrize(
    "markup",
    [
        "<script>alert(1)</script>",
        '<button onclick="go()">',
        '<div style="color:red">',
        "<style>p{}</style>",
        '<a href="javascript:go()">',
        "<script type='module'>x</script>",
    ],
)
def test_the_template_walk_finds_inline_code(markup):
    assert inline_code(markup)


@pytest.mark.parametrize(
    "markup", ['<script src="/static/x.js"></script>', '<script type="application/json" id="d">{}</script>']
)
def test_the_template_walk_allows_script_files_and_data(markup):
    assert not inline_code(markup)
