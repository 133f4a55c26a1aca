"""Signing in (21 CFR Part 11): lockout after wrong passwords at sign-in or at a signature, audited sign-ins,
sign-outs and failures, an audited unlock, idle sessions ending, password rules."""

from __future__ import annotations

import io
import sys
import time

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from releases import lineage, services
from releases.errors import PermissionRefused
from releases.middleware import LAST_SEEN
from releases.models import Approval
from releases.services import accounts
from tests.conftest import PASSWORD
from tests.unit.conftest import MEANING, client_for, pending_release

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0"


def sign_in(client: Client, username: str, password: str) -> object:
    return client.post(reverse("login"), {"username": username, "password": password}, HTTP_USER_AGENT=BROWSER)


def sign_on_page(client: Client, name: str, password: str) -> object:
    form = {
        "decision": "approve",
        "meaning": MEANING,
        "comment": "",
        "password": password,
        "digest": lineage.trace(name).digest,
    }
    return client.post(reverse("releases:sign", args=[name]), form, HTTP_USER_AGENT=BROWSER)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# Lockout at sign-in ---------------------------------------------------------------------------------


def test_many_wrong_passwords_then_the_right_one_stays_locked_out(lead, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):
        sign_in(client, "lead", "wrong password")

    response = sign_in(client, "lead", PASSWORD)

    assert not signed_in(client)
    assert response.status_code == 403
    assert "Account locked" in response.content.decode()
    assert "Ask an administrator to unlock it" in response.content.decode()
    assert accounts.is_locked_out(lead)


def test_failed_sign_in_is_audited_with_username_address_and_browser(db):
    sign_in(Client(REMOTE_ADDR="203.0.113.9"), "nobody-here", "guess")

    event = AuditEvent.objects.get(action="auth.sign_in_failed")
    assert (event.object_type, event.object_key, event.actor) == ("user", "nobody-here", "anonymous")
    assert event.new == {"username": "nobody-here", "ip_address": "203.0.113.9", "user_agent": BROWSER}


def test_reaching_the_limit_is_one_lockout_event(lead, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT + 2):
        sign_in(client, "lead", "wrong password")

    [event] = AuditEvent.objects.filter(action="auth.locked_out")
    assert (event.object_key, event.new["user_agent"]) == ("lead", BROWSER)
    assert AuditEvent.objects.filter(action="auth.sign_in_failed", object_key="lead").count() == (
        settings.AXES_FAILURE_LIMIT + 2
    )


def test_sign_in_and_sign_out_are_audited(lead):
    client = Client()
    response = sign_in(client, "lead", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)

    client.post(reverse("logout"))

    signed = AuditEvent.objects.get(action="auth.signed_in")
    out = AuditEvent.objects.get(action="auth.signed_out")
    assert (signed.actor, signed.object_key, signed.new["user_agent"]) == ("lead", "lead", BROWSER)
    assert (out.actor, out.object_key) == ("lead", "lead")
    assert not signed_in(client)


def test_a_successful_sign_in_clears_earlier_wrong_passwords(lead, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "lead", "wrong password")
    sign_in(client, "lead", PASSWORD)
    client.post(reverse("logout"))

    sign_in(client, "lead", "wrong password")
    assert not accounts.is_locked_out(lead)
    sign_in(client, "lead", PASSWORD)
    assert signed_in(client)


# Lockout at a signature -----------------------------------------------------------------------------


def test_wrong_signing_passwords_lock_the_account_and_signing_is_refused(world, release_manager, lead, settings):
    release = pending_release(world, release_manager)
    client = client_for(lead)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = sign_on_page(client, release.name, "wrong password")
        assert response.status_code == 403

    assert "locked after too many wrong passwords" in response.content.decode()
    assert accounts.is_locked_out(lead)
    response = sign_on_page(client, release.name, PASSWORD)

    assert response.status_code == 403
    assert not Approval.objects.filter(release=release).exists()
    rules = list(
        AuditEvent.objects.filter(action="release.approval_refused").order_by("seq").values_list("new__rule", flat=True)
    )
    assert rules == ["wrong_password"] * settings.AXES_FAILURE_LIMIT + ["locked_out"]
    assert AuditEvent.objects.get(action="auth.locked_out").object_key == "lead"
    # The same lockout keeps the account from signing in again.
    assert sign_in(Client(), "lead", PASSWORD).status_code == 403


def test_wrong_signing_passwords_count_with_wrong_sign_in_passwords(world, release_manager, lead, settings):
    release = pending_release(world, release_manager)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(Client(), "lead", "wrong password")
    assert not accounts.is_locked_out(lead)

    with pytest.raises(PermissionRefused):
        services.sign_release(
            release,
            by=lead,
            decision="approve",
            password="wrong password",
            meaning=MEANING,
            expected_digest=lineage.trace(release.name).digest,
        )

    assert accounts.is_locked_out(lead)


def test_approve_release_command_counts_wrong_passwords_and_refuses_while_locked(
    world, release_manager, lead, settings
):
    release = pending_release(world, release_manager)
    digest = lineage.trace(release.name).digest

    def approve(password: str) -> CommandError:
        old, sys.stdin = sys.stdin, io.StringIO(password + "\n")
        try:
            with pytest.raises(CommandError) as refused:
                call_command(
                    "approve_release",
                    release.name,
                    "--as",
                    "lead",
                    "--meaning",
                    MEANING,
                    "--digest",
                    digest,
                    "--password-stdin",
                    stdout=io.StringIO(),
                )
        finally:
            sys.stdin = old
        return refused.value

    for _ in range(settings.AXES_FAILURE_LIMIT):
        approve("wrong password")
    refused = approve(PASSWORD)

    assert refused.returncode == 2
    assert "locked after too many wrong passwords" in str(refused)
    assert not Approval.objects.filter(release=release).exists()


def test_wrong_signing_passwords_in_the_admin_lock_the_account(world, release_manager, lead, settings):
    lead.is_staff = True
    lead.save()
    lead_admin = lead
    release = pending_release(world, release_manager)
    client = client_for(lead_admin)
    digest = lineage.trace(release.name).digest
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/admin/releases/release/",
            {
                "action": "approve_(sign)",
                "_selected_action": [release.pk],
                "confirm": "1",
                "password": "wrong password",
                "meaning": MEANING,
                "comment": "",
                f"digest-{release.pk}": digest,
            },
        )

    assert accounts.is_locked_out(lead_admin)


# Unlocking ------------------------------------------------------------------------------------------


def lock(user: User, settings: object) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):  # type: ignore[attr-defined]
        sign_in(Client(), user.get_username(), "wrong password")
    assert accounts.is_locked_out(user)


def test_an_administrator_unlocks_an_account_from_the_admin_and_it_is_audited(lead, admin_client, settings):
    lock(lead, settings)
    attempt = AccessAttempt.objects.get(username="lead")

    response = admin_client.post(
        "/admin/axes/accessattempt/",
        {"action": "unlock", "_selected_action": [attempt.pk], "confirm": "1", "reason": "called the help desk"},
    )

    assert response.status_code == 302
    assert not accounts.is_locked_out(lead)
    event = AuditEvent.objects.get(action="auth.unlocked")
    assert (event.object_key, event.actor, event.reason) == ("lead", "admin", "called the help desk")
    assert event.old == {"failures": settings.AXES_FAILURE_LIMIT}
    assert sign_in(Client(), "lead", PASSWORD).status_code == 302


def test_only_an_administrator_may_unlock_and_a_refusal_is_audited(lead, oncall, settings):
    lock(lead, settings)

    with pytest.raises(PermissionRefused):
        accounts.unlock_account("lead", by=oncall)

    assert accounts.is_locked_out(lead)
    event = AuditEvent.objects.get(action="auth.unlock_refused")
    assert (event.object_key, event.actor, event.new["rule"]) == ("lead", "oncall", "admin_only")


def test_lockout_admin_is_not_offered_to_staff_without_superuser(lead, settings):
    lead.is_staff = True
    lead.save()
    response = client_for(lead).get("/admin/axes/accessattempt/")
    assert response.status_code == 403
    assert admin.site.is_registered(AccessAttempt)


# Sessions -------------------------------------------------------------------------------------------


def test_an_idle_session_ends_and_the_sign_out_is_audited(auditor, settings):
    client = client_for(auditor)
    assert client.get("/").status_code == 200
    session = client.session
    session[LAST_SEEN] = int(time.time()) - settings.LINEAGE_SESSION_IDLE_MINUTES * 60 - 5
    session.save()

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not signed_in(client)
    event = AuditEvent.objects.get(action="auth.signed_out")
    assert (event.object_key, event.reason) == (
        "auditor",
        f"idle for more than {settings.LINEAGE_SESSION_IDLE_MINUTES} minutes",
    )


def test_an_active_session_stays_signed_in(auditor, settings):
    client = client_for(auditor)
    session = client.session
    session[LAST_SEEN] = int(time.time()) - settings.LINEAGE_SESSION_IDLE_MINUTES * 60 + 60
    session.save()

    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 200
    assert signed_in(client)


@pytest.mark.parametrize(
    ("persona", "at_browser_close"),
    [("lead", True), ("release_manager", True), ("auditor", False), ("oncall", False)],
)
def test_privileged_sessions_end_when_the_browser_closes(persona, at_browser_close, request):
    user = request.getfixturevalue(persona)
    client = Client()
    response = sign_in(client, user.get_username(), PASSWORD)

    assert response.status_code == 302
    assert client.session.get_expire_at_browser_close() is at_browser_close
    assert bool(response.cookies["sessionid"]["expires"]) is not at_browser_close


def test_an_administrator_session_ends_when_the_browser_closes(admin_user):
    client = Client()
    sign_in(client, admin_user.get_username(), "password")
    assert client.session.get_expire_at_browser_close()


def test_idle_timeout_is_read_from_the_environment(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import lineage_site.settings as site

    monkeypatch.setenv("LINEAGE_SESSION_IDLE_MINUTES", "0")
    with pytest.raises(ImproperlyConfigured):
        importlib.reload(site)
    monkeypatch.setenv("LINEAGE_SESSION_IDLE_MINUTES", "15")
    assert importlib.reload(site).LINEAGE_SESSION_IDLE_MINUTES == 15
    monkeypatch.delenv("LINEAGE_SESSION_IDLE_MINUTES")
    assert importlib.reload(site).LINEAGE_SESSION_IDLE_MINUTES == 30


# Passwords ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["password123", "12345678901234", "short-pw", "lenalead-lena"])
def test_weak_passwords_are_refused(lead, password):
    lead.first_name, lead.username = "lenalead", "lenalead"
    with pytest.raises(ValidationError):
        validate_password(password, lead)


def test_a_long_uncommon_password_is_accepted(lead):
    validate_password(PASSWORD, lead)


def test_clearing_a_lock_with_axes_own_command_is_audited_too(lead, settings):
    lock(lead, settings)

    call_command("axes_reset_username", "lead", stdout=io.StringIO())

    assert not accounts.is_locked_out(lead)
    event = AuditEvent.objects.get(action="auth.unlocked")
    assert (event.object_key, event.actor) == ("lead", "lockout cool-off or reset")
    assert "outside the admin" in event.reason


def test_a_success_below_the_limit_records_no_unlock(lead, settings):
    sign_in(Client(), "lead", "wrong password")
    sign_in(Client(), "lead", PASSWORD)
    assert not AuditEvent.objects.filter(action="auth.unlocked").exists()
