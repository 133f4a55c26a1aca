"""Every admin action declares the permission it needs, and the admin never offers an action its service refuses."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.urls import reverse

from audit.models import AuditEvent
from releases import lineage
from releases.models import ApiToken, DatasetVersion, Release
from tests.conftest import PASSWORD
from tests.unit.conftest import MEANING, client_for, pending_release, token_for

PERSONAS = ["lead", "lead2", "auditor", "oncall", "release_manager", "superuser"]
# The rules a service refuses someone by: who they are, not what they asked for.
WHO_RULES = {"role", "admin_only", "not_ml_lead", "not_signed_in", "forbidden"}


@pytest.fixture
def superuser(db: Any) -> User:
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def rows(world, ci_account, release_manager) -> dict[type, Any]:
    """One row for every admin that has actions: a pending release, a dataset version, a token, a lockout."""
    release = pending_release(world, release_manager)
    token_for(ci_account, "read")
    AccessAttempt.objects.create(
        username="someone",
        ip_address="203.0.113.9",
        user_agent="curl",
        http_accept="*/*",
        path_info="/login/",
        failures_since_start=5,
        get_data="",
        post_data="",
    )
    return {
        Release: release,
        DatasetVersion: DatasetVersion.objects.first(),
        ApiToken: ApiToken.objects.get(),
        AccessAttempt: AccessAttempt.objects.get(),
    }


def test_every_admin_action_declares_the_permission_it_needs():
    for model, model_admin in admin.site._registry.items():
        for func, name, _ in model_admin._get_base_actions():
            permissions = getattr(func, "allowed_permissions", ())
            assert permissions, f"{model._meta.label} action {name} declares no permission"
            for permission in permissions:
                assert hasattr(model_admin, f"has_{permission}_permission"), (model._meta.label, name)


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_admin_offers_only_actions_the_service_lets_through(persona, request, rows):
    user = request.getfixturevalue(persona)
    user.is_staff = True
    user.save()
    client = client_for(user)
    asking = RequestFactory().get("/admin/")
    asking.user = User.objects.get(pk=user.pk)
    tried = []
    for model, model_admin in admin.site._registry.items():
        for name in model_admin.get_actions(asking):
            if name == "delete_selected":
                # Django's own, on Django's own tables; its permission is the model's delete permission.
                assert asking.user.has_perm(f"{model._meta.app_label}.delete_{model._meta.model_name}")
                continue
            obj = rows[model]
            if isinstance(obj, Release):
                obj.refresh_from_db()
            before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
            digest = lineage.trace(obj.name).digest if isinstance(obj, Release) else ""
            response = client.post(
                reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"),
                {
                    "action": name,
                    "_selected_action": [obj.pk],
                    "confirm": "1",
                    "reason": "checked with the team",
                    "password": PASSWORD,
                    "meaning": MEANING,
                    "comment": "checked with the team",
                    f"digest-{obj.pk}": digest,
                },
            )
            assert response.status_code in (200, 302), (persona, model._meta.label, name)
            refused_for_who = AuditEvent.objects.filter(seq__gt=before, new__rule__in=sorted(WHO_RULES))
            assert not refused_for_who.exists(), (
                f"{persona} was offered {model._meta.label} {name}, which refused them: "
                f"{[e.reason for e in refused_for_who]}"
            )
            tried.append(f"{model._meta.model_name}.{name}")
    expected = {
        "lead": {"datasetversion.quarantine", "datasetversion.lift_quarantine", "release.retire"},
        "lead2": {"datasetversion.quarantine", "datasetversion.lift_quarantine", "release.retire"},
        "auditor": set(),
        "oncall": set(),
        "release_manager": {"release.retire"},
        "superuser": {
            "datasetversion.quarantine",
            "datasetversion.lift_quarantine",
            "release.retire",
            "apitoken.revoke",
            "accessattempt.unlock",
        },
    }[persona]
    signing = {"release.approve_(sign)", "release.reject_(sign)"} if persona in ("lead", "lead2") else set()
    assert set(tried) == expected | signing


@pytest.mark.parametrize(
    ("model", "action"),
    [(ApiToken, "revoke"), (AccessAttempt, "unlock"), (DatasetVersion, "quarantine"), (Release, "retire")],
)
def test_an_action_not_offered_changes_nothing_when_posted_anyway(model, action, auditor, rows):
    auditor.is_staff = True
    auditor.save()
    obj = rows[model]
    client = client_for(auditor)
    before = AuditEvent.objects.count()

    client.post(
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"),
        {"action": action, "_selected_action": [obj.pk], "confirm": "1", "reason": "x"},
    )

    assert AuditEvent.objects.count() == before
    assert ApiToken.objects.get().revoked_at is None
    assert AccessAttempt.objects.exists()
    assert not DatasetVersion.objects.filter(status="quarantined").exists()
    assert Release.objects.get().state == "pending"
