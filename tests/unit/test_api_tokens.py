"""API tokens: they expire, record their last use without a write per call, and only administrators manage them."""

from __future__ import annotations

import datetime
import io

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from releases import services
from releases.errors import InvalidInput, PermissionRefused
from releases.models import ApiToken
from releases.roles import ALL_ROLES
from tests.factories import SYSTEM
from tests.unit.conftest import api, client_for, token_for


def test_a_token_expires_after_the_default_lifetime(ci_account, settings):
    settings.LINEAGE_API_TOKEN_DAYS = 30
    before = timezone.now()

    token, _ = services.create_api_token(ci_account, name="ci", scopes=["read"], by=SYSTEM)

    assert before + datetime.timedelta(days=30) <= token.expires_at <= timezone.now() + datetime.timedelta(days=30)
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.new["expires_at"] == token.expires_at.isoformat()


def test_an_expiry_outside_the_allowed_range_is_refused_and_audited(ci_account):
    with pytest.raises(InvalidInput, match="must expire in 1 to 365 days"):
        services.create_api_token(ci_account, name="ci", scopes=["read"], by=SYSTEM, expires_in_days=400)

    assert not ApiToken.objects.exists()
    assert AuditEvent.objects.get(action="api_token.creation_refused").new["rule"] == "bad_expiry"


def test_an_expired_token_gets_a_clear_401(ci_account):
    raw = token_for(ci_account, "read")
    ApiToken.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    response = api(raw).get("/api/releases/")

    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "expired" in response.json()["error"]
    assert "ask an administrator for a new one" in response.json()["error"]


def test_last_use_is_recorded_at_most_once_a_minute(ci_account, django_assert_num_queries):
    raw = token_for(ci_account, "read")
    client = api(raw)
    assert ApiToken.objects.get().last_used_at is None

    client.get("/api/dataset-versions/")
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    with django_assert_num_queries(3):  # token + user, groups, dataset versions: no write
        client.get("/api/dataset-versions/")
    assert ApiToken.objects.get().last_used_at == first

    ApiToken.objects.update(last_used_at=first - datetime.timedelta(minutes=2))
    client.get("/api/dataset-versions/")
    assert ApiToken.objects.get().last_used_at > first - datetime.timedelta(minutes=2)


def test_create_api_token_command_takes_an_expiry(ci_account):
    err = io.StringIO()
    call_command(
        "create_api_token", "ci", "--scope", "read", "--expires-in-days", "7", stdout=io.StringIO(), stderr=err
    )

    token = ApiToken.objects.get()
    assert datetime.timedelta(days=6, hours=23) < token.expires_at - token.created_at <= datetime.timedelta(days=7)
    assert "expires" in err.getvalue()


def test_admin_shows_expiry_and_last_use(ci_account, admin_client):
    token_for(ci_account, "read")
    html = admin_client.get("/admin/releases/apitoken/").content.decode()
    assert "Expires at" in html
    assert "Last used at" in html


# Who may manage tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["lead", "oncall", "auditor", "release_manager"])
def test_only_an_administrator_may_revoke_a_token_and_a_refusal_is_audited(ci_account, persona, request):
    user = request.getfixturevalue(persona)
    raw = token_for(ci_account, "read")
    token = ApiToken.objects.get()

    with pytest.raises(PermissionRefused):
        services.revoke_api_token(token, by=user, reason="mine now")

    token.refresh_from_db()
    assert token.revoked_at is None
    assert api(raw).get("/api/releases/").status_code == 200
    event = AuditEvent.objects.get(action="api_token.revoke_refused")
    assert (event.actor, event.new["rule"]) == (user.get_username(), "admin_only")


def test_only_an_administrator_may_issue_a_token(ci_account, lead):
    with pytest.raises(PermissionRefused):
        services.create_api_token(ci_account, name="ci", scopes=["read"], by=lead)
    assert not ApiToken.objects.exists()
    assert AuditEvent.objects.get(action="api_token.creation_refused").new["rule"] == "admin_only"


def test_oncall_staff_cannot_see_or_revoke_tokens_in_the_admin(ci_account, oncall):
    oncall.is_staff = True
    oncall.save()
    token_for(ci_account, "read")
    token = ApiToken.objects.get()
    client = client_for(oncall)

    assert client.get("/admin/releases/apitoken/").status_code == 403
    client.post(
        "/admin/releases/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk], "confirm": "1", "reason": "oops"},
    )

    token.refresh_from_db()
    assert token.revoked_at is None


def test_no_role_holds_any_api_token_permission(db):
    token_permissions = Permission.objects.filter(content_type__app_label="releases", content_type__model="apitoken")
    assert token_permissions.exists()
    for group in Group.objects.filter(name__in=ALL_ROLES):
        assert not group.permissions.filter(pk__in=token_permissions).exists(), group.name
