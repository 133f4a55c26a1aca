"""The admin: every table viewable, nothing editable in place, writes through the services."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, TreeNode
from releases.models import DatasetDigest, DatasetVersion, Release, RunDatasetInput
from tests.factories import World, approve


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def populated(db, ci_account, lead, release_manager):
    world = World.create()
    release = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    world.deploy(world.endpoint(), release, by=release_manager)
    world.tag("model-churn-v42", release.model_version.run.commit)
    return world


def test_every_model_has_a_read_only_admin(client: Client, superuser, populated):
    client.force_login(superuser)
    registered = [m for m in admin.site._registry if m._meta.app_label in {"releases", "audit"}]
    shown_inline = {DatasetDigest, RunDatasetInput}
    # Derived hashes of the Merkle tree (composite key, which the admin cannot show); audit_verify checks them.
    not_shown = {TreeNode}
    every_model = {m for m in apps.get_models() if m._meta.app_label in {"releases", "audit"}}
    assert every_model - set(registered) - shown_inline - not_shown == set()
    for model in registered:
        opts = model._meta
        changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert changelist.status_code == 200, opts.label
        obj = model._default_manager.first()
        if obj is None:
            continue
        change = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        assert change.status_code == 200, opts.label
        html = change.content.decode()
        assert 'name="_save"' not in html, f"{opts.label} must not be editable in place"
        assert "deletelink" not in html, f"{opts.label} must not be deletable"


def test_audit_events_cannot_be_posted_through_the_admin(client: Client, superuser, populated):
    client.force_login(superuser)
    event = AuditEvent.objects.first()
    url = reverse("admin:audit_auditevent_change", args=[event.pk])
    response = client.post(url, {"reason": "rewritten"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.reason != "rewritten"


def test_admin_quarantine_action_goes_through_the_service(client: Client, lead, populated):
    lead.is_staff = True
    lead.save()
    client.force_login(lead)
    version = DatasetVersion.objects.by_key("churn-train:18").get()
    url = reverse("admin:releases_datasetversion_changelist")
    confirm = client.post(url, {"action": "quarantine", "_selected_action": [version.pk]})
    assert confirm.status_code == 200
    assert "churn-train:18" in confirm.content.decode()
    version.refresh_from_db()
    assert version.status == "active", "nothing happens before the reason is confirmed"
    done = client.post(
        url, {"action": "quarantine", "_selected_action": [version.pk], "confirm": "1", "reason": "bad labels"}
    )
    assert done.status_code == 302
    version.refresh_from_db()
    assert (version.status, version.status_reason) == ("quarantined", "bad labels")
    event = AuditEvent.objects.get(action="dataset_version.quarantined")
    assert (event.actor, event.reason) == ("lead", "bad labels")


def test_admin_retire_action_refused_for_a_role_without_it(client: Client, oncall, populated):
    oncall.is_staff = True
    oncall.save()
    client.force_login(oncall)
    release = Release.objects.get(name="churn-v42")
    url = reverse("admin:releases_release_changelist")
    response = client.post(
        url, {"action": "retire", "_selected_action": [release.pk], "confirm": "1", "reason": "x"}, follow=True
    )
    assert "oncall may not retire a release" in response.content.decode()
    release.refresh_from_db()
    assert release.state == "approved"
    assert not AuditEvent.objects.filter(action="release.retired").exists()


def test_a_superuser_may_open_every_page_but_cannot_sign_without_being_an_ml_lead(client: Client, superuser, populated):
    from releases import services
    from releases.errors import PermissionRefused

    client.force_login(superuser)
    assert "churn-scoring" in client.get("/").content.decode()
    release = Release.objects.get(name="churn-v42")
    mv = populated.model_version(
        "churn-model/43", commit=release.model_version.run.commit, datasets=("churn-train:18",)
    )
    draft = populated.release("churn-v43", mv, by=superuser)
    services.submit_release(draft, by=superuser)
    with pytest.raises(PermissionRefused, match="root is not an ML lead"):
        approve(draft, by=superuser, password="pw", meaning="Approved for production")
    assert AuditEvent.objects.filter(action="release.approval_refused", actor="root").exists()
    draft.refresh_from_db()
    assert draft.state == "pending"


# What a superuser may add in the admin, with the form data of a valid row and the audit action it leaves.
ADDABLE = {
    "releases.gitrepository": (
        {"name": "fraud", "url": "/srv/git/fraud.git", "commit_url_template": ""},
        "git_repository.added",
    ),
    "releases.trackingserver": (
        {"name": "mlflow-eu", "tracking_uri": "http://127.0.0.1:5001", "ui_url": ""},
        "tracking_server.added",
    ),
    "releases.endpoint": (
        {"name": "fraud-scoring", "environment": "production", "registered_model": "", "mlflow_alias": ""},
        "endpoint.created",
    ),
}


def test_every_addable_model_is_added_through_its_service(client: Client, superuser, populated):
    client.force_login(superuser)
    addable = {
        model._meta.label_lower
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in {"releases", "audit"}
        and model_admin.has_add_permission(type("R", (), {"user": superuser})())
    }
    assert addable == set(ADDABLE), "every model the admin lets a superuser add needs a row in ADDABLE"
    for label, (data, action) in ADDABLE.items():
        model = apps.get_model(label)
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
        response = client.post(url, {**data, "description": ""})
        assert response.status_code == 302, response.content.decode()[:3000]
        created = model._default_manager.get(name=data["name"])
        event = AuditEvent.objects.get(action=action, object_key=data["name"])
        assert event.actor == "root"
        messages = [str(m) for m in client.get(response["Location"]).context["messages"]]
        assert any("was added successfully" in m for m in messages), messages
        if label != "releases.endpoint":
            assert created.sync_state is not None, "a source is added with its sync state"


def test_an_admin_add_the_service_refuses_is_a_form_error_and_writes_nothing_but_the_refusal(
    client: Client, superuser, populated
):
    client.force_login(superuser)
    url = reverse("admin:releases_gitrepository_add")
    hostile = "javascript:alert(document.cookie)//{sha}"
    response = client.post(url, {"name": "fraud", "url": "/srv/git/fraud.git", "commit_url_template": hostile})
    assert response.status_code == 200
    html = response.content.decode()
    assert "the commit URL template must be an http:// or https:// address" in html
    assert "was added successfully" not in html
    assert not apps.get_model("releases.gitrepository").objects.filter(name="fraud").exists()
    [event] = AuditEvent.objects.filter(action="git_repository.add_refused")
    assert (event.object_key, event.new["rule"]) == ("fraud", "not_a_web_url")
