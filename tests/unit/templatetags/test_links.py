"""Every href and src a template builds from data passes through ``web_href`` (releases/templatetags/links.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Template
from django.urls import reverse

from releases.models import GitRepository, TrackingServer
from tests.unit.conftest import client_for

TEMPLATES = Path(settings.BASE_DIR) / "templates"
# An attribute that makes the browser follow an address, with a variable anywhere in its value.
# Quotes inside {% %} and {{ }} do not end the value.
URL_ATTRIBUTE = re.compile(
    r"""\b(?:href|src|action|formaction|xlink:href|poster|data)\s*=\s*(["'])((?:\{%.*?%\}|\{\{.*?\}\}|(?!\1).)*?)\1"""
)
# The value is a whole variable through the filter, or a {% url %} / {% static %} prefix followed by
# variables that only fill the query string or fragment (urlencoded there).
FILTERED = re.compile(r"^\{\{\s*[^}|]+\|web_href\s*\}\}$")
ROUTE_THEN_QUERY = re.compile(r"^\{%\s*(?:url|static|query_with)\b[^%]*%\}[?#]")


def unfiltered_addresses(text: str) -> list[str]:
    return [
        value
        for _, value in URL_ATTRIBUTE.findall(text)
        if "{{" in value and not FILTERED.match(value) and not ROUTE_THEN_QUERY.match(value)
    ]


def test_every_href_or_src_built_from_a_variable_goes_through_web_href():
    offenders = {
        str(path.relative_to(TEMPLATES)): found
        for path in sorted(TEMPLATES.rglob("*.html"))
        if (found := unfiltered_addresses(path.read_text()))
    }
    assert offenders == {}


def test_the_template_walk_sees_an_unfiltered_address():
    assert unfiltered_addresses('<a href="{{ run.url }}">') == ["{{ run.url }}"]
    assert unfiltered_addresses("<img src='{{ x }}'>") == ["{{ x }}"]
    assert unfiltered_addresses('<a href="{{ a }}{% url "x" %}">') == ['{{ a }}{% url "x" %}']
    assert unfiltered_addresses('<a href="{{ run.url|web_href }}">') == []
    assert unfiltered_addresses("<a href=\"{% url 'releases:investigate' %}?endpoint={{ e|urlencode }}\">") == []


@pytest.mark.parametrize(
    ("address", "rendered"),
    [
        ("javascript:alert(1)", "#"),
        ("java\tscript:alert(1)", "#"),
        ('https://x.example.com/"><script>', "https://x.example.com/&quot;&gt;&lt;script&gt;"),
        ("https://git.example.com/c/abc", "https://git.example.com/c/abc"),
    ],
)
def test_web_href_passes_web_addresses_escaped_and_nothing_else(address, rendered):
    html = Template('{% load links %}<a href="{{ address|web_href }}">').render(Context({"address": address}))
    assert html == f'<a href="{rendered}">'


def test_a_stored_script_address_is_not_a_link_on_the_commit_and_run_pages(world, lead, story):
    # Rows written before the rule existed (or behind the services' back) are still rendered safely.
    GitRepository.objects.filter(pk=world.repo.pk).update(commit_url_template="javascript:alert(1)//{sha}")
    TrackingServer.objects.filter(pk=world.server.pk).update(ui_url=" JaVaScRiPt:alert(1)")
    release = story["v42"]
    client = client_for(lead)
    pages = [
        reverse("releases:commit", args=[release.model_version.run.commit.sha]),
        reverse("releases:run", args=[release.model_version.run.run_id]),
        reverse("releases:release", args=[release.name]),
    ]
    for page in pages:
        html = client.get(page).content.decode()
        assert "javascript:" not in html.lower(), page
        assert 'href="#"' in html, page
