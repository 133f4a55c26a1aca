"""Search jumps to the page it names; the investigation page; comparing two releases."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from audit.log import SystemActor
from releases import services
from releases.models import Release
from releases.views import explore
from tests.factories import World

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ("churn-v42", "/releases/churn-v42/"),
        ("churn-train:18", "/datasets/churn-train/18/"),
        # A model's versions are paged newest first: the page that starts with version 41.
        ("churn-model/41", "/models/churn-model/?before=42#v41"),
        ("churn-scoring", "/endpoints/churn-scoring/"),
    ],
)
def test_search_jumps_to_the_page_it_names(
    client: Client, lead: User, deployed_world: World, query: str, target: str
) -> None:
    client.force_login(lead)
    response = client.get("/search/", {"q": query})
    assert response.status_code == 302
    assert response["Location"] == target


def test_search_by_commit_prefix_and_run_id(client: Client, lead: User, deployed_world: World) -> None:
    client.force_login(lead)
    trace_commit = Release.objects.get(name="churn-v42").model_version.run.commit  # type: ignore[union-attr]
    response = client.get("/search/", {"q": trace_commit.sha[:8]})
    assert response["Location"] == f"/commits/{trace_commit.sha}/"
    run_id = Release.objects.get(name="churn-v42").model_version.source_run_id
    assert client.get("/search/", {"q": run_id})["Location"] == f"/runs/{run_id}/"


def test_search_without_a_match_says_so(client: Client, lead: User, deployed_world: World) -> None:
    client.force_login(lead)
    response = client.get("/search/", {"q": "nothing-like-this"})
    assert "Nothing matches “nothing-like-this”" in response.content.decode()


def test_investigate_shows_live_release_its_data_and_the_diff(
    client: Client, lead: User, deployed_world: World
) -> None:
    client.force_login(lead)
    at = (timezone.now() - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    html = client.get("/investigate/", {"endpoint": "churn-scoring", "at": at}).content.decode()
    assert "churn-train:18" in html
    assert "churn-v41 → churn-v42" in html
    earlier = (timezone.now() - datetime.timedelta(hours=24)).strftime("%Y-%m-%d %H:%M")
    html = client.get("/investigate/", {"endpoint": "churn-scoring", "at": earlier}).content.decode()
    assert '<a href="/releases/churn-v41/"><strong>churn-v41</strong></a>' in html


def test_investigate_offers_the_first_endpoints_by_name_and_takes_any_typed_one(
    client: Client, lead: User, deployed_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(explore, "ENDPOINT_CHOICES", 2)
    for name in ("aa-first", "ab-second", "zz-last"):
        services.create_endpoint(name=name, environment="staging", by=SystemActor("test"))
    client.force_login(lead)

    html = client.get("/investigate/").content.decode()
    offered = re.findall(
        r'<option value="([^"]+)">', html.split('<datalist id="inv-endpoints">')[1].split("</datalist>")[0]
    )
    assert offered == ["aa-first", "ab-second"]
    assert "the list offers the first 2 by name" in html

    html = client.get("/investigate/", {"endpoint": "zz-last"}).content.decode()
    assert 'value="zz-last"' in html
    assert "Nothing was live on zz-last at that moment." in html


def test_compare_highlights_the_changed_dataset(client: Client, lead: User, deployed_world: World) -> None:
    client.force_login(lead)
    html = client.get("/releases/compare/", {"a": "churn-v41", "b": "churn-v42"}).content.decode()
    row = html.split("Dataset churn-train (training)")[0].rsplit("<tr", 1)[1]
    assert 'class="changed"' in row
