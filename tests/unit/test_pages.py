"""Page behaviour: search jumps, filters, friendly errors for bad parameters, the quarantine form."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from releases.models import DatasetVersion, Release
from releases.templatetags.lineage_tags import ago
from tests.factories import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def story(ci_account: User, lead2: User, release_manager: User) -> World:
    world = World.create()
    v41 = world.full_release(41, by=ci_account, approver=lead2, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead2, dataset="churn-train:18")
    endpoint = world.endpoint("churn-scoring")
    world.deploy(endpoint, v41, by=release_manager, hours_ago=48)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=3)
    return world


def test_ago_gives_a_short_relative_hint() -> None:
    now = timezone.now()
    assert ago(now - datetime.timedelta(hours=3, minutes=5), now) == "3 h ago"
    assert ago(now - datetime.timedelta(days=2), now) == "2 d ago"
    assert ago(now + datetime.timedelta(minutes=5), now) == "in 5 min"
    assert ago(now, now) == "just now"


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ("churn-v42", "/releases/churn-v42/"),
        ("churn-train:18", "/datasets/churn-train/18/"),
        ("churn-model/41", "/models/churn-model/#v41"),
        ("churn-scoring", "/endpoints/churn-scoring/"),
    ],
)
def test_search_jumps_to_the_page_it_names(client: Client, lead: User, story: World, query: str, target: str) -> None:
    client.force_login(lead)
    response = client.get("/search/", {"q": query})
    assert response.status_code == 302
    assert response["Location"] == target


def test_search_by_commit_prefix_and_run_id(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    trace_commit = Release.objects.get(name="churn-v42").model_version.run.commit  # type: ignore[union-attr]
    response = client.get("/search/", {"q": trace_commit.sha[:8]})
    assert response["Location"] == f"/commits/{trace_commit.sha}/"
    run_id = Release.objects.get(name="churn-v42").model_version.source_run_id
    assert client.get("/search/", {"q": run_id})["Location"] == f"/runs/{run_id}/"


def test_search_without_a_match_says_so(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    response = client.get("/search/", {"q": "nothing-like-this"})
    assert "Nothing matches “nothing-like-this”" in response.content.decode()


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/endpoints/churn-scoring/?at=yesterday-ish", 400, "is not a date and time"),
        ("/investigate/?endpoint=churn-scoring&at=13/13/2024", 400, "is not a date and time"),
        ("/investigate/?endpoint=no-such-endpoint", 404, "There is no endpoint named"),
        ("/releases/compare/?a=churn-v41&b=churn-v99", 404, "No release named churn-v99"),
        ("/releases/compare/?a=churn-v41", 400, "Choose two releases to compare"),
        ("/releases/?state=shipped&page=zz", 400, "“shipped” is not a release state"),
        ("/releases/?page=999", 200, "churn-v42"),
    ],
)
def test_bad_parameters_get_a_friendly_message(
    client: Client, lead: User, story: World, path: str, status: int, message: str
) -> None:
    client.force_login(lead)
    response = client.get(path)
    assert response.status_code == status
    assert message in response.content.decode()


def test_unknown_objects_are_404(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    for path in ("/datasets/churn-train/99/", "/endpoints/nope/", "/models/nope/", "/runs/nope/", "/commits/abcdef0/"):
        assert client.get(path).status_code == 404, path


def test_investigate_shows_live_release_its_data_and_the_diff(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    at = (timezone.now() - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    html = client.get("/investigate/", {"endpoint": "churn-scoring", "at": at}).content.decode()
    assert "churn-train:18" in html
    assert "churn-v41 → churn-v42" in html
    earlier = (timezone.now() - datetime.timedelta(hours=24)).strftime("%Y-%m-%d %H:%M")
    html = client.get("/investigate/", {"endpoint": "churn-scoring", "at": earlier}).content.decode()
    assert '<a href="/releases/churn-v41/"><strong>churn-v41</strong></a>' in html


def test_compare_highlights_the_changed_dataset(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    html = client.get("/releases/compare/", {"a": "churn-v41", "b": "churn-v42"}).content.decode()
    row = html.split("Dataset churn-train (training)")[0].rsplit("<tr", 1)[1]
    assert 'class="changed"' in row


def test_release_list_filters_waiting_for_my_approval(
    client: Client, lead: User, ci_account: User, story: World
) -> None:
    mv = story.model_version("churn-model/43", commit=story.commit("v43"), datasets=("churn-train:18",))
    pending = story.release("churn-v43", mv, by=ci_account)
    from releases import services

    services.submit_release(pending, by=ci_account)
    client.force_login(lead)
    html = client.get("/releases/", {"waiting": "me"}).content.decode()
    assert "/releases/churn-v43/" in html
    assert "/releases/churn-v42/" not in html
    html = client.get("/releases/", {"state": "approved"}).content.decode()
    assert "/releases/churn-v42/" in html
    assert "/releases/churn-v43/" not in html


def test_lead_quarantines_from_the_dataset_page(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    page = client.get("/datasets/churn-train/18/").content.decode()
    assert '<textarea id="q-reason" name="reason"' in page
    response = client.post("/datasets/churn-train/18/quarantine/", {"reason": "label mapping changed upstream"})
    assert response.status_code == 302
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    assert version.status == DatasetVersion.Status.QUARANTINED
    assert version.status_reason == "label mapping changed upstream"
    event = AuditEvent.objects.get(action="dataset_version.quarantined")
    assert (event.object_key, event.actor) == ("churn-train:18", "lead")
    html = client.get("/datasets/churn-train/18/").content.decode()
    assert "is quarantined" in html
    assert "Quarantine churn-train:18</button>" not in html


def test_quarantine_needs_a_reason(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    client.post("/datasets/churn-train/18/quarantine/", {"reason": "  "})
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    assert version.status == DatasetVersion.Status.ACTIVE
    assert not AuditEvent.objects.filter(action="dataset_version.quarantined").exists()


def test_on_call_cannot_quarantine(client: Client, oncall: User, story: World) -> None:
    client.force_login(oncall)
    assert "q-reason" not in client.get("/datasets/churn-train/18/").content.decode()
    response = client.post("/datasets/churn-train/18/quarantine/", {"reason": "I think it is bad"})
    assert response.status_code == 403
    assert "Only ml-leads may quarantine a dataset version." in response.content.decode()
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    assert version.status == DatasetVersion.Status.ACTIVE


def test_trace_page_has_the_chain_diagram_and_deep_links(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    html = client.get("/releases/churn-v42/").content.decode()
    assert html.count('class="chain-node node-complete"') == 12  # six links, wide and tall drawings
    assert 'href="/datasets/churn-train/18/" class="chain-node' in html
    assert "https://git.example.com/churn/commit/" in html
    assert "http://mlflow.example.com/#/experiments/1/runs/" in html
    assert "Compare with churn-v41" in html
    assert "Rollback target" in html
