"""The same approval, gate and rollback rules through every door: release page, queue, admin, command."""

from __future__ import annotations

import io
import sys

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from releases import lineage
from releases.models import Approval, Release
from tests.conftest import PASSWORD
from tests.factories import World, approve
from tests.unit.test_approvals import MEANING, pending_release, refusals


@pytest.fixture
def world(db: object) -> World:
    return World.create()


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def sign(client: Client, name: str, **data: str) -> object:
    # The page's form carries the digest of the chain it shows.
    digest = lineage.trace(name).digest if Release.objects.filter(name=name).exists() else ""
    form = {"decision": "approve", "meaning": MEANING, "comment": "", "password": PASSWORD, "digest": digest, **data}
    return client.post(reverse("releases:sign", args=[name]), form)


# Release page -----------------------------------------------------------------------------


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


# Queue --------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("count", [1, 3])
def test_queue_query_count_is_constant(world, release_manager, lead, django_assert_num_queries, count):
    for number in range(42, 42 + count):
        pending_release(world, release_manager, number=number)
    client = client_for(lead)
    # session, user, user's groups (role check), the releases with their chain (one join),
    # then prefetches: dataset inputs, approvals, deployments.
    with django_assert_num_queries(7):
        response = client.get(reverse("releases:approvals"))
    assert response.content.decode().count("#sign") == count


# Admin ------------------------------------------------------------------------------------


@pytest.fixture
def staff_lead(lead: User) -> User:
    lead.is_staff = True
    lead.save()
    return lead


def admin_action(client: Client, action: str, release: Release, **data: str) -> object:
    return client.post(
        reverse("admin:releases_release_changelist"),
        # The confirmation page shows each release's digest and posts it back with the signature.
        {
            "action": action,
            "_selected_action": [release.pk],
            f"digest-{release.pk}": lineage.trace(release.name).digest,
            **data,
        },
    )


def test_admin_approve_asks_for_a_signature_first(world, release_manager, staff_lead):
    release = pending_release(world, release_manager)

    response = admin_action(client_for(staff_lead), "approve_(sign)", release)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="password"' in html
    assert 'name="meaning"' in html
    assert not Approval.objects.exists()


def test_admin_approve_signs_through_the_service(world, release_manager, staff_lead):
    release = pending_release(world, release_manager)

    response = admin_action(
        client_for(staff_lead), "approve_(sign)", release, confirm="1", password=PASSWORD, meaning="Reviewed"
    )

    assert response.status_code == 302
    release.refresh_from_db()
    assert release.state == Release.State.APPROVED
    assert Approval.objects.get().meaning == "Reviewed"
    assert AuditEvent.objects.filter(action="release.approved", actor="lead").count() == 1


def test_admin_wrong_password_is_refused_and_audited(world, release_manager, staff_lead):
    release = pending_release(world, release_manager)
    client = client_for(staff_lead)

    response = admin_action(client, "approve_(sign)", release, confirm="1", password="nope", meaning=MEANING)

    assert response.status_code == 302
    messages = [str(m) for m in client.get(response["Location"]).context["messages"]]
    assert any("password does not match" in m for m in messages)
    assert not Approval.objects.exists()
    assert [e.new["rule"] for e in refusals(release.name)] == ["wrong_password"]


def test_admin_self_approval_is_refused_and_audited(world, staff_lead):
    release = pending_release(world, staff_lead)

    admin_action(client_for(staff_lead), "approve_(sign)", release, confirm="1", password=PASSWORD, meaning=MEANING)

    assert not Approval.objects.exists()
    assert [e.new["rule"] for e in refusals(release.name)] == ["four_eyes"]


def test_admin_reject_needs_a_comment(world, release_manager, staff_lead):
    release = pending_release(world, release_manager)
    client = client_for(staff_lead)

    response = admin_action(client, "reject_(sign)", release, confirm="1", password=PASSWORD)
    assert response.status_code == 200
    assert "A rejection needs a comment saying why." in response.content.decode()

    admin_action(client, "reject_(sign)", release, confirm="1", password=PASSWORD, comment="bias in the eval")
    release.refresh_from_db()
    assert release.state == Release.State.REJECTED
    assert AuditEvent.objects.get(action="release.rejected").reason == "bias in the eval"


def test_admin_assigns_roles_through_groups(db, admin_client, auditor):
    from django.contrib.auth.models import Group

    lead_group = Group.objects.get(name="ml-leads")
    response = admin_client.post(
        reverse("admin:auth_user_change", args=[auditor.pk]),
        {
            "username": "auditor",
            "first_name": "Ada",
            "last_name": "Auditor",
            "email": "auditor@example.com",
            "is_active": "on",
            "groups": [lead_group.pk],
            "date_joined_0": "2024-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2024-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(User.objects.get(pk=auditor.pk).groups.values_list("name", flat=True)) == ["ml-leads"]


# Command ----------------------------------------------------------------------------------


def approve_command(name: str, user: str, password: str) -> str:
    out, old = io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(password + "\n")
    try:
        digest = lineage.trace(name).digest
        call_command(
            "approve_release",
            name,
            "--as",
            user,
            "--meaning",
            MEANING,
            "--digest",
            digest,
            "--password-stdin",
            stdout=out,
        )
    finally:
        sys.stdin = old
    return out.getvalue()


def test_command_approves_through_the_service(world, release_manager, lead):
    pending_release(world, release_manager)

    out = approve_command("churn-v42", "lead", PASSWORD)

    assert "signed by Lena Lead (Approved for production); now Approved" in out
    assert Release.objects.get(name="churn-v42").state == Release.State.APPROVED
    assert AuditEvent.objects.filter(action="release.approved", actor="lead").count() == 1


@pytest.mark.parametrize(
    ("creator", "user", "password", "rule"),
    [
        pytest.param("relman", "lead", "wrong", "wrong_password", id="password"),
        pytest.param("lead", "lead", PASSWORD, "four_eyes", id="self"),
        pytest.param("relman", "oncall", PASSWORD, "not_ml_lead", id="not-lead"),
    ],
)
def test_command_refusal_exits_2_and_is_audited(world, release_manager, lead, oncall, creator, user, password, rule):
    pending_release(world, User.objects.get(username=creator))

    with pytest.raises(CommandError) as refused:
        approve_command("churn-v42", user, password)

    assert refused.value.returncode == 2
    assert "\n" not in str(refused.value)
    assert [e.new["rule"] for e in refusals("churn-v42")] == [rule]
