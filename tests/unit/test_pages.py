"""Page behaviour: search jumps, filters, friendly errors for bad parameters, the quarantine form."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from releases import services
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


def test_dataset_page_links_to_the_quarantine_confirmation_and_writes_nothing(
    client: Client, lead: User, story: World
) -> None:
    client.force_login(lead)
    page = client.get("/datasets/churn-train/18/").content.decode()
    assert 'href="/datasets/churn-train/18/quarantine/">Quarantine churn-train:18…</a>' in page
    assert "<form" not in page.split("</header>")[1], "the dataset page itself holds no quarantine form"

    confirm = client.get("/datasets/churn-train/18/quarantine/")

    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Quarantine churn-train:18?" in html
    assert "The approvals of 1 release stop counting" in html
    assert '<a href="/releases/churn-v42/">churn-v42</a>' in html
    assert "They stay invalid even if the quarantine is lifted later" in html
    assert 'Live now on <a href="/endpoints/churn-scoring/">churn-scoring</a>' in html
    assert '<textarea id="q-reason" name="reason"' in html
    assert '<button class="button danger">Confirm: quarantine churn-train:18</button>' in html
    assert not re.search(r"<script|\son[a-z]+=", html), "no inline JavaScript: the confirmation is a page"
    assert DatasetVersion.objects.get(dataset__name="churn-train", version=18).status == DatasetVersion.Status.ACTIVE
    assert not AuditEvent.objects.filter(object_type="dataset_version", action__startswith="dataset_version.q").exists()


def test_lead_quarantines_after_confirming(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    response = client.post("/datasets/churn-train/18/quarantine/", {"reason": "label mapping changed upstream"})
    assert response.status_code == 302
    assert response["Location"] == "/datasets/churn-train/18/"
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    assert version.status == DatasetVersion.Status.QUARANTINED
    assert version.status_reason == "label mapping changed upstream"
    event = AuditEvent.objects.get(action="dataset_version.quarantined")
    assert (event.object_key, event.actor, event.reason) == ("churn-train:18", "lead", "label mapping changed upstream")
    html = client.get("/datasets/churn-train/18/").content.decode()
    assert "churn-train:18 is quarantined. 1 release(s) and 1 live endpoint(s) are affected." in html
    assert "Quarantine churn-train:18…" not in html
    assert 'href="/datasets/churn-train/18/lift-quarantine/">Lift the quarantine of churn-train:18…</a>' in html
    again = client.get("/datasets/churn-train/18/quarantine/").content.decode()
    assert "churn-train:18 is already quarantined" in again
    assert "<textarea" not in again


def test_quarantine_needs_a_reason(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    response = client.post("/datasets/churn-train/18/quarantine/", {"reason": "  "})
    assert response.status_code == 400
    assert "Not quarantined: a reason is required to quarantine a dataset version" in response.content.decode()
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    assert version.status == DatasetVersion.Status.ACTIVE
    assert not AuditEvent.objects.filter(action="dataset_version.quarantined").exists()
    assert AuditEvent.objects.get(action="dataset_version.quarantine_refused").new == {"rule": "invalid"}


def test_on_call_cannot_quarantine_and_the_attempt_is_audited(client: Client, oncall: User, story: World) -> None:
    client.force_login(oncall)
    assert "/quarantine/" not in client.get("/datasets/churn-train/18/").content.decode()
    assert client.get("/datasets/churn-train/18/quarantine/").status_code == 403
    response = client.post("/datasets/churn-train/18/quarantine/", {"reason": "I think it is bad"})
    assert response.status_code == 403
    assert "oncall may not quarantine a dataset version: it needs the role ml-leads" in response.content.decode()
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    assert version.status == DatasetVersion.Status.ACTIVE
    event = AuditEvent.objects.get(action="dataset_version.quarantine_refused")
    assert (event.actor, event.object_key, event.new) == ("oncall", "churn-train:18", {"rule": "role"})


def test_lead_lifts_a_quarantine_after_confirming(client: Client, lead: User, lead2: User, story: World) -> None:
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    services.quarantine_dataset_version(version, by=lead2, reason="label mapping changed upstream")
    client.force_login(lead)

    confirm = client.get("/datasets/churn-train/18/lift-quarantine/")

    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Lift the quarantine of churn-train:18?" in html
    assert ": label mapping changed upstream" in html
    assert "The approvals the quarantine invalidated stay invalid" in html
    assert '<a href="/releases/churn-v42/">churn-v42</a>' in html
    assert '<button class="button danger">Confirm: lift the quarantine of churn-train:18</button>' in html
    assert not re.search(r"<script|\son[a-z]+=", html)
    version.refresh_from_db()
    assert version.is_quarantined, "the confirmation page changes nothing"

    response = client.post("/datasets/churn-train/18/lift-quarantine/", {"reason": "partner restored the mapping"})

    assert response.status_code == 302
    assert response["Location"] == "/datasets/churn-train/18/"
    version.refresh_from_db()
    assert (version.status, version.status_reason) == ("active", "partner restored the mapping")
    event = AuditEvent.objects.get(action="dataset_version.quarantine_lifted")
    assert (event.actor, event.object_key, event.reason) == ("lead", "churn-train:18", "partner restored the mapping")
    page = client.get("/datasets/churn-train/18/").content.decode()
    assert "The quarantine of churn-train:18 is lifted. churn-v42 must be signed again" in page
    assert "Quarantine lifted" in page
    assert "Quarantine churn-train:18…" in page
    release = client.get("/releases/churn-v42/").content.decode()
    assert "Approval invalidated" in release
    assert "dataset churn-train:18 was quarantined" in release
    assert 'action="/releases/churn-v42/sign/"' in release, "an ML lead can sign it again from its page"
    assert "You cannot approve" not in release


def test_lift_needs_a_reason_and_a_quarantine(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    not_quarantined = client.post("/datasets/churn-train/18/lift-quarantine/", {"reason": "fine"})
    assert not_quarantined.status_code == 409
    assert "Not lifted: churn-train:18 is not quarantined (it is active)" in not_quarantined.content.decode()
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    services.quarantine_dataset_version(version, by=lead, reason="bad labels")
    no_reason = client.post("/datasets/churn-train/18/lift-quarantine/", {"reason": ""})
    assert no_reason.status_code == 400
    assert "a reason is required to lift a quarantine" in no_reason.content.decode()
    version.refresh_from_db()
    assert version.is_quarantined
    refusals = AuditEvent.objects.filter(action="dataset_version.quarantine_lift_refused").order_by("seq")
    assert [e.new["rule"] for e in refusals] == ["not_quarantined", "invalid"]
    assert not AuditEvent.objects.filter(action="dataset_version.quarantine_lifted").exists()


def test_on_call_cannot_lift_a_quarantine_and_the_attempt_is_audited(
    client: Client, oncall: User, lead: User, story: World
) -> None:
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    services.quarantine_dataset_version(version, by=lead, reason="bad labels")
    client.force_login(oncall)
    assert "lift-quarantine" not in client.get("/datasets/churn-train/18/").content.decode()
    assert client.get("/datasets/churn-train/18/lift-quarantine/").status_code == 403

    response = client.post("/datasets/churn-train/18/lift-quarantine/", {"reason": "looks fine"})

    assert response.status_code == 403
    assert "oncall may not lift a quarantine: it needs the role ml-leads" in response.content.decode()
    version.refresh_from_db()
    assert version.is_quarantined
    event = AuditEvent.objects.get(action="dataset_version.quarantine_lift_refused")
    assert (event.actor, event.new) == ("oncall", {"rule": "role"})


def test_trace_page_has_the_chain_diagram_and_deep_links(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    html = client.get("/releases/churn-v42/").content.decode()
    assert html.count('class="chain-node node-complete"') == 12  # six links, wide and tall drawings
    assert 'href="/datasets/churn-train/18/" class="chain-node' in html
    assert "https://git.example.com/churn/commit/" in html
    assert "http://mlflow.example.com/#/experiments/1/runs/" in html
    assert "Compare with churn-v41" in html
    assert "Rollback target" in html
