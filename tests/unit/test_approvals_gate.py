"""Approval stays true, the promotion gate, and rollback: through the service, the pages and the commands."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from releases import lineage, services
from releases.errors import RuleViolation
from releases.models import Approval, DatasetVersion, Deployment, Endpoint
from releases.templatetags.lineage_tags import utc
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, World, approve
from tests.unit.test_approvals import pending_release
from tests.unit.test_lineage import status_of


@pytest.fixture
def world(db: object) -> World:
    return World.create()


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def gate_refusals(endpoint: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="deployment.refused", object_key=endpoint))


# Approval stays true ------------------------------------------------------------------------


def test_quarantine_after_approval_invalidates_it_end_to_end(world, release_manager, lead, lead2):
    release = world.full_release(42, by=release_manager, approver=lead2)
    production, staging = world.endpoint("churn-scoring"), world.endpoint("churn-shadow", "staging")
    client = client_for(release_manager)

    services.quarantine_dataset_version(world.dataset("churn-train:17"), by=lead, reason="partner label mapping")

    state = lineage.approval_state(lineage.trace(release.name))
    assert state.invalidated
    html = client.get(reverse("releases:release", args=[release.name])).content.decode()
    assert "Approval invalidated" in html
    assert "dataset churn-train:17 status changed from active to quarantined" in html
    with pytest.raises(RuleViolation, match="approval is no longer valid") as refused:
        services.record_deployment(production, release, by=release_manager, source=Deployment.Source.API)
    assert refused.value.rule == "promotion_gate"
    assert not Deployment.objects.filter(endpoint=production).exists()
    [event] = gate_refusals("churn-scoring")
    assert event.new["rule"] == "promotion_gate"
    assert "dataset churn-train:17 status changed" in event.reason
    services.record_deployment(staging, release, by=release_manager, source=Deployment.Source.API)
    assert Deployment.objects.filter(endpoint=staging, release=release).count() == 1


def test_lifted_quarantine_leaves_the_approval_invalid_until_signed_again(world, release_manager, lead, lead2):
    release = world.full_release(42, by=release_manager, approver=lead2)
    production = world.endpoint("churn-scoring")
    version = DatasetVersion.objects.by_key("churn-train:17").get()
    signed_before = lineage.trace(release.name).digest
    services.quarantine_dataset_version(version, by=lead, reason="partner label mapping")
    assert lineage.approval_state(lineage.trace(release.name)).invalidated

    services.lift_quarantine(version, by=lead, reason="partner fixed the mapping")

    version.refresh_from_db()
    assert version.status == "active"
    trace = lineage.trace(release.name)
    assert trace.digest != signed_before
    state = lineage.approval_state(trace)
    assert state.invalidated
    lifted = f"{version.quarantine_lifted_at:%Y-%m-%d %H:%M} UTC"
    quarantined = f"{version.quarantined_at:%Y-%m-%d %H:%M} UTC"
    explanation = f"dataset churn-train:17 was quarantined {quarantined} (lifted {lifted}); it must be signed again"
    assert state.stale[0][1] == [explanation]
    html = client_for(release_manager).get(reverse("releases:release", args=[release.name])).content.decode()
    assert "Approval invalidated" in html
    assert explanation in html
    with pytest.raises(RuleViolation, match="approval is no longer valid") as refused:
        services.record_deployment(production, release, by=release_manager, source=Deployment.Source.API)
    assert explanation in refused.value.message
    assert not Deployment.objects.exists()

    approval = approve(release, by=lead, password=PASSWORD, meaning="Approved for production")

    trace = lineage.trace(release.name)
    assert approval.signed_digest == trace.digest
    assert lineage.approval_state(trace).is_valid
    assert AuditEvent.objects.filter(action="release.approved", object_key=release.name).count() == 2
    deployment = services.record_deployment(production, release, by=release_manager, source=Deployment.Source.API)
    deployment.refresh_from_db()
    assert deployment.release_id == release.pk
    assert AuditEvent.objects.get(action="deployment.recorded").new["release"] == release.name


def test_moved_tag_after_approval_invalidates_it(world, release_manager, lead):
    release = pending_release(world, release_manager, tag="model-churn-v42")
    approve(release, by=lead, password="correct horse battery staple", meaning="Reviewed")
    hotfix = world.commit("hotfix")

    services.record_tag(world.repo, name="model-churn-v42", sha=hotfix.sha, by=SYSTEM)

    html = client_for(lead).get(reverse("releases:release", args=[release.name])).content.decode()
    assert "Approval invalidated" in html
    assert f"tag model-churn-v42 moved to {hotfix.sha[:7]}" in html
    refusal = lineage.promotion_refusal(lineage.trace(release.name), world.endpoint())
    assert refusal is not None
    assert refusal.rule == "promotion_gate"
    assert "no longer valid" in refusal.message


# Promotion gate through the page and the command ---------------------------------------------------


def test_page_gate_refuses_unapproved_release_on_production(world, release_manager):
    pending_release(world, release_manager)
    world.endpoint("churn-scoring")

    response = client_for(release_manager).post(
        reverse("releases:deploy", args=["churn-scoring"]), {"release": "churn-v42"}
    )

    assert response.status_code == 409
    assert "production endpoints only take approved releases" in response.content.decode()
    assert not Deployment.objects.exists()
    assert len(gate_refusals("churn-scoring")) == 1


def test_page_records_deployment_on_staging(world, release_manager):
    pending_release(world, release_manager)
    world.endpoint("churn-shadow", "staging")

    response = client_for(release_manager).post(
        reverse("releases:deploy", args=["churn-shadow"]), {"release": "churn-v42", "reason": "shadow traffic"}
    )

    assert response.status_code == 302
    deployment = Deployment.objects.get()
    assert (deployment.release.name, deployment.source, deployment.reason) == ("churn-v42", "ui", "shadow traffic")
    assert AuditEvent.objects.get(action="deployment.recorded").object_key == "churn-shadow"


def test_page_deploy_unknown_release_is_a_form_error(world, release_manager):
    world.endpoint("churn-scoring")

    response = client_for(release_manager).post(
        reverse("releases:deploy", args=["churn-scoring"]), {"release": "churn-v99"}
    )

    assert response.status_code == 400
    assert "No release named churn-v99." in response.content.decode()


def test_command_gate_exits_2_and_is_audited(world, release_manager):
    pending_release(world, release_manager)
    world.endpoint("churn-scoring")

    with pytest.raises(CommandError) as refused:
        call_command("record_deployment", "churn-scoring", "churn-v42", "--as", "relman")

    assert refused.value.returncode == 2
    assert "not approved" in str(refused.value)
    assert not Deployment.objects.exists()
    assert len(gate_refusals("churn-scoring")) == 1


def test_reporting_the_same_deployment_twice_records_one_event(world, release_manager, lead):
    release = world.full_release(42, by=release_manager, approver=lead)
    endpoint = world.endpoint()

    first = services.record_deployment(endpoint, release, by=release_manager, source=Deployment.Source.API)
    again = services.record_deployment(endpoint, release, by=release_manager, source=Deployment.Source.API)

    assert first.pk == again.pk
    assert Deployment.objects.count() == 1
    assert AuditEvent.objects.filter(action="deployment.recorded").count() == 1


# Rollback -------------------------------------------------------------------------------------------


@pytest.fixture
def incident(world: World, release_manager: User, lead: User) -> Endpoint:
    """churn-v41 then churn-v42 live on churn-scoring; churn-v41 is the rollback target."""
    v41 = world.full_release(41, by=release_manager, approver=lead)
    v42 = world.full_release(42, by=release_manager, approver=lead, dataset="churn-train:18")
    endpoint = world.endpoint()
    world.deploy(endpoint, v41, by=release_manager, hours_ago=48)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=1)
    return endpoint


def test_board_offers_rollback_to_on_call(incident, oncall):
    html = client_for(oncall).get(reverse("releases:board")).content.decode()
    assert "Roll back to churn-v41…" in html
    assert "/endpoints/churn-scoring/rollback/?next=/" in html


def test_board_offers_no_rollback_to_auditor(incident, auditor):
    html = client_for(auditor).get(reverse("releases:board")).content.decode()
    assert "Roll back to" not in html


def test_board_explains_why_there_is_no_rollback_target(world, release_manager, lead, oncall):
    release = world.full_release(42, by=release_manager, approver=lead)
    world.deploy(world.endpoint(), release, by=release_manager)

    html = client_for(oncall).get(reverse("releases:board")).content.decode()

    assert "Cannot roll back: No earlier release on this endpoint is approved" in html
    assert "disabled" in html


def test_rollback_confirmation_names_the_target(incident, oncall):
    response = client_for(oncall).get(reverse("releases:rollback", args=["churn-scoring"]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Confirm: roll back to churn-v41" in html
    assert 'name="target" value="churn-v41"' in html
    assert 'name="reason"' in html


def test_rollback_confirmation_says_why_the_target_is_safe(world, release_manager, lead, lead2, oncall):
    v41 = world.full_release(41, by=release_manager, approver=lead2)
    v42 = world.full_release(42, by=release_manager, approver=lead, dataset="churn-train:18")
    endpoint = services.create_endpoint(
        name="churn-scoring",
        environment="production",
        registered_model="churn-model",
        mlflow_alias="production",
        by=SYSTEM,
    )
    first = world.deploy(endpoint, v41, by=release_manager, hours_ago=72)
    second = world.deploy(endpoint, v42, by=release_manager, hours_ago=48)
    third = world.deploy(endpoint, v41, by=release_manager, hours_ago=24)
    fourth = world.deploy(endpoint, v42, by=release_manager, hours_ago=2)
    [approval] = Approval.objects.filter(release=v41)

    response = client_for(oncall).get(reverse("releases:rollback", args=["churn-scoring"]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Why churn-v41 is safe to restore" in html
    assert (
        f'Omar Second <span class="muted">(lead2)</span>, “Approved for production”, signed {utc(approval.signed_at)}'
        in html
    )
    assert (
        '<a href="/datasets/churn-train/17/">churn-train:17</a> <span class="status status-active">active</span>'
        in html
    )
    assert "None of its data is quarantined." in html
    periods = re.findall(r"<div>(.*?) until (.*?) <span class=\"muted\">\((\w+) by (\w+)\)</span></div>", html)
    assert periods == [
        (utc(third.deployed_at), utc(fourth.deployed_at), "deploy", "relman"),
        (utc(first.deployed_at), utc(second.deployed_at), "deploy", "relman"),
    ]
    assert "<code>churn-model@production</code> moves to version 41 (from version 42, live now)" in html


def test_rollback_confirmation_button_looks_like_the_boards(incident, oncall):
    client = client_for(oncall)
    board = client.get(reverse("releases:board")).content.decode()
    page = client.get(reverse("releases:rollback", args=["churn-scoring"])).content.decode()
    assert re.search(
        r'<a class="button danger" href="/endpoints/churn-scoring/rollback/[^"]*">Roll back to churn-v41', board
    )
    assert '<button class="button danger">Confirm: roll back to churn-v41</button>' in page


def test_rollback_confirmation_warns_when_the_followed_alias_will_not_move(world, release_manager, lead, oncall):
    v41 = world.full_release(41, by=release_manager, approver=lead)
    v42 = world.full_release(42, by=release_manager, approver=lead)
    world.model_version("other-model/1")
    endpoint = services.create_endpoint(
        name="churn-scoring",
        environment="production",
        registered_model="other-model",
        mlflow_alias="production",
        by=SYSTEM,
    )
    world.deploy(endpoint, v41, by=release_manager, hours_ago=5)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=1)

    html = client_for(oncall).get(reverse("releases:rollback", args=["churn-scoring"])).content.decode()

    assert "This endpoint follows <code>production</code>, but the rollback does not move it" in html
    assert "point it at churn-model/41 in MLflow yourself" in html


def test_rollback_from_the_board_is_recorded_and_the_board_changes(incident, oncall):
    client = client_for(oncall)

    response = client.post(
        reverse("releases:rollback", args=["churn-scoring"]),
        {"reason": "INC-311 AUC dropped", "target": "churn-v41", "next": "/"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    rollback = Deployment.objects.get(kind="rollback")
    assert (rollback.release.name, rollback.reason, rollback.source, rollback.actor) == (
        "churn-v41",
        "INC-311 AUC dropped",
        "ui",
        "oncall",
    )
    event = AuditEvent.objects.get(action="deployment.rolled_back")
    assert (event.object_key, event.reason, event.new["release"]) == (
        "churn-scoring",
        "INC-311 AUC dropped",
        "churn-v41",
    )
    [status] = lineage.endpoint_statuses()
    assert status.live.release.name == "churn-v41"
    board = client.get("/").content.decode()
    assert "rolled back" in board
    assert "churn-scoring rolled back to churn-v41." in board


def test_rollback_from_the_endpoint_page_returns_there(incident, lead):
    response = client_for(lead).post(
        reverse("releases:rollback", args=["churn-scoring"]),
        {"reason": "bad scores", "target": "churn-v41", "next": "/endpoints/churn-scoring/"},
    )
    assert response["Location"] == "/endpoints/churn-scoring/"
    assert Deployment.objects.filter(kind="rollback").count() == 1


def test_rollback_never_redirects_off_site(incident, oncall):
    response = client_for(oncall).post(
        reverse("releases:rollback", args=["churn-scoring"]),
        {"reason": "bad scores", "target": "churn-v41", "next": "https://evil.example.com/"},
    )
    assert response["Location"] == "/"


def test_rollback_needs_a_reason(incident, oncall):
    response = client_for(oncall).post(reverse("releases:rollback", args=["churn-scoring"]), {"target": "churn-v41"})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not Deployment.objects.filter(kind="rollback").exists()


def test_rollback_refused_when_the_target_changed_since_confirmation(incident, oncall, lead):
    services.roll_back(incident, by=lead, reason="first responder", source=Deployment.Source.CLI)

    response = client_for(oncall).post(
        reverse("releases:rollback", args=["churn-scoring"]), {"reason": "INC-311", "target": "churn-v41"}
    )

    assert response.status_code == 409
    assert "changed since you confirmed: live now is churn-v41 (rollback by lead" in response.content.decode()
    assert Deployment.objects.filter(kind="rollback").count() == 1


def test_rollback_overtaken_shows_what_is_live_and_arms_no_deeper_rollback(world, release_manager, lead, oncall):
    v40 = world.full_release(40, by=release_manager, approver=lead, dataset="churn-train:16")
    v41 = world.full_release(41, by=release_manager, approver=lead)
    v42 = world.full_release(42, by=release_manager, approver=lead, dataset="churn-train:18")
    endpoint = world.endpoint()
    for hours_ago, release in ((72, v40), (48, v41), (1, v42)):
        world.deploy(endpoint, release, by=release_manager, hours_ago=hours_ago)
    client = client_for(oncall)
    assert (
        "Confirm: roll back to churn-v41"
        in client.get(reverse("releases:rollback", args=["churn-scoring"])).content.decode()
    )
    services.roll_back(endpoint, by=lead, reason="first responder", source=Deployment.Source.CLI)
    assert status_of(endpoint).rollback_target.name == "churn-v40", "a deeper rollback is possible"

    response = client.post(
        reverse("releases:rollback", args=["churn-scoring"]),
        {"reason": "INC-311", "target": "churn-v41", "next": "/"},
    )

    html = response.content.decode()
    assert response.status_code == 409
    assert "Not rolled back: someone changed churn-scoring before you confirmed." in html
    assert "live now is churn-v41 (rollback by lead" in html
    assert '<a href="/releases/churn-v41/"><strong>churn-v41</strong></a>' in html
    assert "rollback by lead: first responder" in html
    assert '<a href="/endpoints/churn-scoring/">start over from the churn-scoring endpoint page</a>' in html
    assert "<textarea" not in html
    assert 'name="target"' not in html
    assert "churn-v40" not in html, "the new target is not offered from here"
    assert Deployment.objects.filter(kind="rollback").count() == 1
    latest = Deployment.objects.filter(endpoint=endpoint).order_by("-deployed_at", "-id").first()
    assert (latest.release.name, latest.actor) == ("churn-v41", "lead")
    refused = AuditEvent.objects.get(action="deployment.rollback_refused")
    assert (refused.actor, refused.object_key) == ("oncall", "churn-scoring")
    assert refused.new == {"expected_target": "churn-v41", "rule": "rollback_target_changed"}
    assert AuditEvent.objects.filter(action="deployment.rolled_back").count() == 1


def test_rollback_without_target_explains_why(world, release_manager, lead, oncall):
    release = world.full_release(42, by=release_manager, approver=lead)
    world.deploy(world.endpoint(), release, by=release_manager)
    client = client_for(oncall)

    page = client.get(reverse("releases:rollback", args=["churn-scoring"])).content.decode()
    response = client.post(reverse("releases:rollback", args=["churn-scoring"]), {"reason": "x", "target": "none"})

    assert "No earlier release on this endpoint is approved" in page
    assert response.status_code == 409
    assert not Deployment.objects.filter(kind="rollback").exists()


def test_rollback_target_skips_release_trained_on_quarantined_data(incident, lead, oncall):
    services.quarantine_dataset_version(
        DatasetVersion.objects.by_key("churn-train:17").get(), by=lead, reason="bad labels"
    )

    html = client_for(oncall).get(reverse("releases:board")).content.decode()

    assert "Roll back to churn-v41" not in html
    assert "Cannot roll back" in html


def test_auditor_cannot_roll_back(incident, auditor):
    response = client_for(auditor).post(
        reverse("releases:rollback", args=["churn-scoring"]), {"reason": "x", "target": "churn-v41"}
    )
    assert response.status_code == 403
    assert not Deployment.objects.filter(kind="rollback").exists()


def test_command_rollback_without_target_exits_2(world, release_manager, lead, oncall):
    release = world.full_release(42, by=release_manager, approver=lead)
    world.deploy(world.endpoint(), release, by=release_manager)

    with pytest.raises(CommandError) as refused:
        call_command("rollback", "churn-scoring", "--reason", "INC-1", "--as", "oncall")

    assert refused.value.returncode == 2
    assert "has no rollback target" in str(refused.value)
