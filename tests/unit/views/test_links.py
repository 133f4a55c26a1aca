"""The dataset, commit, run, model and endpoint pages; quarantine and lifting it, each after a confirmation page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEvent
from releases import services
from releases.models import DatasetVersion
from tests.factories import World

pytestmark = pytest.mark.django_db


def test_unknown_objects_are_404(client: Client, lead: User, deployed_world: World) -> None:
    client.force_login(lead)
    for path in ("/datasets/churn-train/99/", "/endpoints/nope/", "/models/nope/", "/runs/nope/", "/commits/abcdef0/"):
        assert client.get(path).status_code == 404, path


# Quarantine ------------------------------------------------------------------------------------------


def test_dataset_page_links_to_the_quarantine_confirmation_and_writes_nothing(
    client: Client, lead: User, deployed_world: World
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


def test_lead_quarantines_after_confirming(client: Client, lead: User, deployed_world: World) -> None:
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


def test_quarantine_needs_a_reason(client: Client, lead: User, deployed_world: World) -> None:
    client.force_login(lead)
    response = client.post("/datasets/churn-train/18/quarantine/", {"reason": "  "})
    assert response.status_code == 400
    assert "Not quarantined: a reason is required to quarantine a dataset version" in response.content.decode()
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    assert version.status == DatasetVersion.Status.ACTIVE
    assert not AuditEvent.objects.filter(action="dataset_version.quarantined").exists()
    assert AuditEvent.objects.get(action="dataset_version.quarantine_refused").new == {"rule": "invalid"}


def test_on_call_cannot_quarantine_and_the_attempt_is_audited(
    client: Client, oncall: User, deployed_world: World
) -> None:
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


def test_lead_lifts_a_quarantine_after_confirming(
    client: Client, lead: User, lead2: User, deployed_world: World
) -> None:
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


def test_lift_needs_a_reason_and_a_quarantine(client: Client, lead: User, deployed_world: World) -> None:
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
    client: Client, oncall: User, lead: User, deployed_world: World
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
