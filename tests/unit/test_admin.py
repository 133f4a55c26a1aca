"""The admin: every table viewable, nothing editable in place, writes through the services."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, TreeNode
from releases import lineage, services
from releases.models import (
    ApiToken,
    Approval,
    DatasetDigest,
    DatasetVersion,
    GitRepository,
    Release,
    RunDatasetInput,
    TrackingServer,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from tests.conftest import PASSWORD
from tests.factories import World, approve
from tests.unit.conftest import MEANING, api, client_for, pending_release, refusals, token_for


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def staff_lead(lead: User) -> User:
    lead.is_staff = True
    lead.save()
    return lead


@pytest.fixture
def populated(db, ci_account, lead, release_manager):
    world = World.create()
    release = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    world.deploy(world.endpoint(), release, by=release_manager)
    world.tag("model-churn-v42", release.model_version.run.commit)
    return world


# Changed in place by administrators, through its service (audited): where outbound events go.
# Rows a superuser may change in place, each change made and audited by its service: a webhook, and a
# source's credential (where it is read from, never the secret).
CHANGED_THROUGH_A_SERVICE = {WebhookSubscription, GitRepository, TrackingServer}


def test_every_model_has_a_read_only_admin(client: Client, superuser, populated):
    client.force_login(superuser)
    services.add_webhook(
        name="ops", url="https://hooks.example.com/x", secret_env="LINEAGE_WEBHOOK_SECRET_OPS", by=superuser
    )
    registered = [m for m in admin.site._registry if m._meta.app_label in {"releases", "audit"}]
    shown_inline = {DatasetDigest, RunDatasetInput, WebhookAttempt}
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
        editable = model in CHANGED_THROUGH_A_SERVICE
        assert ('name="_save"' in html) is editable, f"{opts.label} must not be editable in place"
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


def test_admin_lift_quarantine_action_goes_through_the_service(client: Client, lead, populated):
    version = DatasetVersion.objects.by_key("churn-train:18").get()
    services.quarantine_dataset_version(version, by=lead, reason="bad labels")
    lead.is_staff = True
    lead.save()
    client.force_login(lead)
    url = reverse("admin:releases_datasetversion_changelist")
    confirm = client.post(url, {"action": "lift_quarantine", "_selected_action": [version.pk]})
    assert confirm.status_code == 200
    assert "Lift quarantine: confirm" in confirm.content.decode()
    version.refresh_from_db()
    assert version.is_quarantined, "nothing happens before the reason is confirmed"

    done = client.post(
        url,
        {"action": "lift_quarantine", "_selected_action": [version.pk], "confirm": "1", "reason": "mapping restored"},
        follow=True,
    )

    assert "Lift quarantine: churn-train:18" in done.content.decode()
    version.refresh_from_db()
    assert (version.status, version.status_reason) == ("active", "mapping restored")
    event = AuditEvent.objects.get(action="dataset_version.quarantine_lifted")
    assert (event.actor, event.object_key, event.reason) == ("lead", "churn-train:18", "mapping restored")


def test_admin_lift_quarantine_is_not_offered_to_a_non_lead(client: Client, oncall, lead, populated):
    version = DatasetVersion.objects.by_key("churn-train:18").get()
    services.quarantine_dataset_version(version, by=lead, reason="bad labels")
    oncall.is_staff = True
    oncall.save()
    client.force_login(oncall)

    response = client.post(
        reverse("admin:releases_datasetversion_changelist"),
        {"action": "lift_quarantine", "_selected_action": [version.pk], "confirm": "1", "reason": "looks fine"},
        follow=True,
    )

    # The service would refuse (and audit) it; the admin does not even offer it.
    assert 'value="lift_quarantine"' not in response.content.decode()
    version.refresh_from_db()
    assert version.is_quarantined


def test_admin_retire_action_not_offered_to_a_role_without_it(client: Client, oncall, populated):
    oncall.is_staff = True
    oncall.save()
    client.force_login(oncall)
    release = Release.objects.get(name="churn-v42")
    url = reverse("admin:releases_release_changelist")
    response = client.post(
        url, {"action": "retire", "_selected_action": [release.pk], "confirm": "1", "reason": "x"}, follow=True
    )
    assert 'value="retire"' not in response.content.decode()
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
    "releases.webhooksubscription": (
        {
            "name": "pager",
            "url": "https://hooks.example.com/pager",
            "format": "json",
            "events": ["release.submitted", "deployment.rolled_back"],
            "secret_env": "LINEAGE_WEBHOOK_SECRET_PAGER",
            "active": "on",
        },
        "webhook_subscription.added",
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
        if label in {"releases.gitrepository", "releases.trackingserver"}:
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


# Webhooks -------------------------------------------------------------------------------------------


@pytest.fixture
def webhook(superuser) -> WebhookSubscription:
    return services.add_webhook(
        name="ops", url="https://hooks.example.com/x", secret_env="LINEAGE_WEBHOOK_SECRET_OPS", by=superuser
    )[0]


def _webhook_form(webhook: WebhookSubscription, **values: object) -> dict[str, object]:
    form = {
        "url": webhook.url,
        "format": webhook.format,
        "events": webhook.events,
        "secret_env": webhook.secret_env,
        "active": "on",
        **values,
    }
    return {key: value for key, value in form.items() if value is not None}


def test_an_administrator_changes_a_webhook_through_its_service(client: Client, superuser, webhook):
    client.force_login(superuser)
    url = reverse("admin:releases_webhooksubscription_change", args=[webhook.pk])
    response = client.post(url, _webhook_form(webhook, events=["release.approved"], active=None))
    assert response.status_code == 302, response.content.decode()[:3000]
    webhook.refresh_from_db()
    assert (webhook.events, webhook.active) == (["release.approved"], False)
    [event] = AuditEvent.objects.filter(action="webhook_subscription.changed")
    assert (event.actor, event.object_key) == ("root", "ops")
    assert (event.old["active"], event.new["active"]) == (True, False)


def test_a_webhook_change_the_service_refuses_is_a_form_error_and_audited(client: Client, superuser, webhook):
    client.force_login(superuser)
    url = reverse("admin:releases_webhooksubscription_change", args=[webhook.pk])
    response = client.post(url, _webhook_form(webhook, url="ftp://files.example.com/drop"))
    assert response.status_code == 200
    assert (
        "the webhook URL &#x27;ftp://files.example.com/drop&#x27; cannot be used: only http:// and https:// "
        "addresses are accepted" in response.content.decode()
    )
    webhook.refresh_from_db()
    assert webhook.url == "https://hooks.example.com/x"
    [event] = AuditEvent.objects.filter(action="webhook_subscription.change_refused")
    assert (event.actor, event.new) == ("root", {"rule": "not_a_web_url"})
    assert not AuditEvent.objects.filter(action="webhook_subscription.changed").exists()


def test_webhooks_and_their_deliveries_are_for_administrators_only(client: Client, staff_lead, webhook):
    client.force_login(staff_lead)
    for name in ("webhooksubscription", "webhookdelivery"):
        assert client.get(reverse(f"admin:releases_{name}_changelist")).status_code == 403
    response = client.post(
        reverse("admin:releases_webhooksubscription_change", args=[webhook.pk]),
        _webhook_form(webhook, url="https://attacker.example.com/"),
    )
    assert response.status_code == 403
    webhook.refresh_from_db()
    assert webhook.url == "https://hooks.example.com/x"


def test_the_admin_shows_which_secret_is_set_and_each_delivery_attempt(
    client: Client, superuser, webhook, world, release_manager, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("LINEAGE_WEBHOOK_SECRET_OPS_FILE", "/nonexistent/ops-secret")
    with django_capture_on_commit_callbacks(execute=True):
        pending_release(world, release_manager)
    client.force_login(superuser)
    listing = client.get(reverse("admin:releases_webhooksubscription_changelist")).content.decode()
    assert "LINEAGE_WEBHOOK_SECRET_OPS, read from the file LINEAGE_WEBHOOK_SECRET_OPS_FILE names" in listing
    assert "/nonexistent/ops-secret" not in listing
    deliveries = client.get(
        reverse("admin:releases_webhookdelivery_changelist") + f"?subscription__id__exact={webhook.pk}"
    ).content.decode()
    assert "release.submitted" in deliveries
    delivery = WebhookDelivery.objects.get()
    page = client.get(reverse("admin:releases_webhookdelivery_change", args=[delivery.pk])).content.decode()
    assert "cannot be read: No such file or directory; not sent" in page
    assert "Webhook attempts" in page


# Signing through the admin ---------------------------------------------------------------------------


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


# Roles and API tokens --------------------------------------------------------------------------------


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


def test_admin_revokes_a_token_with_a_reason(ci_account, admin_client):
    raw = token_for(ci_account, "read")
    token = ApiToken.objects.get()

    response = admin_client.post(
        "/admin/releases/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk], "confirm": "1", "reason": "laptop stolen"},
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.get(action="api_token.revoked").reason == "laptop stolen"
    assert api(raw).get("/api/releases/").status_code == 401
    assert raw not in admin_client.get(f"/admin/releases/apitoken/{token.pk}/change/").content.decode()


# Source credentials in the admin -----------------------------------------------------------------------


def test_the_admin_sets_and_changes_where_a_credential_is_read_and_shows_only_which(client: Client, superuser):
    client.force_login(superuser)
    added = client.post(
        reverse("admin:releases_trackingserver_add"),
        {"name": "prod", "tracking_uri": "https://mlflow.example.com", "ui_url": "", "token_env": "MLFLOW_PROD_TOKEN"},
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    server = apps.get_model("releases.trackingserver").objects.get(name="prod")
    assert (
        "token from $MLFLOW_PROD_TOKEN"
        in client.get(reverse("admin:releases_trackingserver_changelist")).content.decode()
    )

    url = reverse("admin:releases_trackingserver_change", args=[server.pk])
    changed = client.post(
        url,
        {"username": "svc", "password_file": "/run/secrets/mlflow", "name": "renamed", "tracking_uri": "http://evil"},
    )

    assert changed.status_code == 302, changed.content.decode()[:2000]
    server.refresh_from_db()
    # Only the credential is changeable; the rest of the row is read-only.
    assert (server.name, server.tracking_uri, server.token_env, server.username, server.password_file) == (
        "prod",
        "https://mlflow.example.com",
        "",
        "svc",
        "/run/secrets/mlflow",
    )
    event = AuditEvent.objects.get(action="tracking_server.credentials_changed", object_key="prod")
    assert (event.actor, event.old, event.new) == (
        "root",
        {"credential": "token from $MLFLOW_PROD_TOKEN"},
        {"credential": "user svc, password from file /run/secrets/mlflow"},
    )

    refused = client.post(url, {"token_env": "NOT A NAME"})
    assert refused.status_code == 200
    assert "is not valid: An environment variable name is letters" in refused.content.decode()
    assert AuditEvent.objects.filter(action="tracking_server.credentials_refused", object_key="prod").count() == 1
    server.refresh_from_db()
    assert server.token_env == ""


def test_only_a_superuser_may_change_a_sources_credential(client: Client, populated, lead: User):
    lead.is_staff = True
    lead.save()
    client.force_login(lead)
    repository = apps.get_model("releases.gitrepository").objects.get(name="churn")
    url = reverse("admin:releases_gitrepository_change", args=[repository.pk])

    client.post(url, {"token_env": "GIT_TOKEN"})

    repository.refresh_from_db()
    assert repository.token_env == ""
    assert not AuditEvent.objects.filter(action="git_repository.credentials_changed").exists()
