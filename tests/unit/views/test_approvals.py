"""Signing on the release page, the approval queue, and the rollback confirmation page."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from releases import lineage, services
from releases.models import Approval, Deployment, Release
from releases.templatetags.lineage_tags import utc
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, approve
from tests.unit.conftest import MEANING, client_for, pending_release, refusals, status_of


def sign(client: Client, name: str, **data: str) -> object:
    # The page's form carries the digest of the chain it shows.
    digest = lineage.trace(name).digest if Release.objects.filter(name=name).exists() else ""
    form = {"decision": "approve", "meaning": MEANING, "comment": "", "password": PASSWORD, "digest": digest, **data}
    return client.post(reverse("releases:sign", args=[name]), form)


# Sign panel on the release page ----------------------------------------------------------------------


def test_release_page_shows_the_signing_form_to_another_lead(world, release_manager, lead):
    release = pending_release(world, release_manager)

    page = client_for(lead).get(reverse("releases:release", args=[release.name]))

    html = page.content.decode()
    assert 'action="/releases/churn-v42/sign/"' in html
    assert f'value="{lineage.trace(release.name).digest}"' in html
    assert 'name="password"' in html


def test_release_page_explains_why_the_creator_cannot_sign(world, lead):
    pending_release(world, lead)

    html = client_for(lead).get(reverse("releases:release", args=["churn-v42"])).content.decode()

    assert "You cannot approve: lead created churn-v42; another ML lead must approve it" in html


def test_release_page_offers_no_form_to_an_auditor(world, release_manager, auditor):
    pending_release(world, release_manager)

    html = client_for(auditor).get(reverse("releases:release", args=["churn-v42"])).content.decode()

    assert "You cannot sign: auditor is not an ML lead; only ML leads sign releases." in html
    assert 'name="password"' not in html


def test_signature_shows_printed_name_utc_time_and_meaning(world, release_manager, lead):
    release = pending_release(world, release_manager)
    client = client_for(lead)
    sign(client, release.name)
    approval = Approval.objects.get(release=release)

    html = client.get(reverse("releases:release", args=[release.name])).content.decode()

    assert "Lena Lead" in html
    assert MEANING in html
    assert approval.signed_at.strftime("%Y-%m-%d %H:%M") in html
    assert "UTC" in html


# Signing ---------------------------------------------------------------------------------------------


def test_approve_on_the_release_page(world, release_manager, lead):
    release = pending_release(world, release_manager)
    digest = lineage.trace(release.name).digest

    response = sign(client_for(lead), release.name, digest=digest, comment="checked the eval report")

    assert response.status_code == 302
    assert response["Location"] == "/releases/churn-v42/"
    release.refresh_from_db()
    assert release.state == Release.State.APPROVED
    approval = Approval.objects.get(release=release)
    assert (approval.approver, approval.signed_digest, approval.meaning) == (lead, digest, MEANING)
    assert AuditEvent.objects.get(action="release.approved", object_key="churn-v42").actor == "lead"


@pytest.mark.parametrize(
    ("setup", "data", "status", "rule", "words"),
    [
        pytest.param({}, {"password": "wrong"}, 403, "wrong_password", "password does not match", id="password"),
        pytest.param({"datasets": ()}, {}, 409, "incomplete_chain", "missing dataset version", id="incomplete"),
        pytest.param({"report": ""}, {}, 409, "no_validation_report", "no validation report", id="no-report"),
        pytest.param(
            {}, {"digest": "sha256:" + "0" * 64}, 409, "chain_changed", "changed since you opened it", id="changed"
        ),
    ],
)
def test_page_refusal_is_a_form_error_and_an_audit_event(
    world, release_manager, lead, setup, data, status, rule, words
):
    release = pending_release(world, release_manager, **setup)

    response = sign(client_for(lead), release.name, **data)

    assert response.status_code == status
    assert words in response.content.decode()
    assert not Approval.objects.exists()
    assert [e.new["rule"] for e in refusals(release.name)] == [rule]


def test_page_self_approval_is_refused_and_audited(world, lead):
    release = pending_release(world, lead)

    response = sign(client_for(lead), release.name)

    assert response.status_code == 409
    assert "another ML lead must approve it" in response.content.decode()
    assert [e.new["rule"] for e in refusals(release.name)] == ["four_eyes"]


def test_page_approval_by_a_non_lead_is_refused_and_audited(world, release_manager, oncall):
    release = pending_release(world, release_manager)

    response = sign(client_for(oncall), release.name)

    assert response.status_code == 403
    assert "not an ML lead" in response.content.decode()
    assert [(e.actor, e.new["rule"]) for e in refusals(release.name)] == [("oncall", "not_ml_lead")]


def test_page_rejection_without_comment_is_a_form_error(world, release_manager, lead):
    release = pending_release(world, release_manager)

    response = sign(client_for(lead), release.name, decision="reject")

    assert response.status_code == 400
    assert "A rejection needs a comment saying why." in response.content.decode()
    release.refresh_from_db()
    assert release.state == Release.State.PENDING
    assert not Approval.objects.exists()


def test_page_rejection_with_comment(world, release_manager, lead):
    release = pending_release(world, release_manager)

    response = sign(client_for(lead), release.name, decision="reject", comment="eval set leaks training rows")

    assert response.status_code == 302
    release.refresh_from_db()
    assert release.state == Release.State.REJECTED
    assert AuditEvent.objects.get(action="release.rejected").reason == "eval set leaks training rows"


def test_sign_is_post_only(world, release_manager, lead):
    pending_release(world, release_manager)
    assert client_for(lead).get(reverse("releases:sign", args=["churn-v42"])).status_code == 405


def test_sign_unknown_release_is_404(world, lead):
    assert sign(client_for(lead), "churn-v99").status_code == 404


# Queue -----------------------------------------------------------------------------------------------


def test_queue_lists_what_waits_for_this_lead(world, release_manager, lead, lead2):
    pending_release(world, release_manager, number=42)
    pending_release(world, lead, number=43)

    page = client_for(lead).get(reverse("releases:approvals"))

    assert [t.release.name for t in page.context["queue"].ready] == ["churn-v42"]
    # Their own release is listed apart, with the reason the sign panel and the service give.
    [(trace, refusal)] = page.context["queue"].blocked
    assert (trace.release.name, refusal.rule) == ("churn-v43", "four_eyes")
    assert "Lead created churn-v43; another ML lead must approve it." in page.content.decode()


def test_queue_shows_signatures_so_far(world, release_manager, lead, lead2, settings):
    settings.LINEAGE_REQUIRED_APPROVALS = 2
    release = pending_release(world, release_manager)
    approve(release, by=lead, password=PASSWORD, meaning=MEANING)
    approval = Approval.objects.get()

    html = client_for(lead2).get(reverse("releases:approvals")).content.decode()

    assert "churn-v42" in html
    assert f"<strong>Lena Lead</strong> approved “{MEANING}” at" in html
    assert f"{approval.signed_at:%Y-%m-%d %H:%M:%S} UTC" in html


# Rollback confirmation -------------------------------------------------------------------------------


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
