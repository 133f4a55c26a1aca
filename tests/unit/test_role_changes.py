"""Every change of who may do what is an audit event, whatever the door: the user and group admin, a shell,
``manage.py grant``; with the values before and after, and who made it when that is known."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from audit.models import AuditEvent


def user_form(user: User, **changes: Any) -> dict[str, Any]:
    """What the user admin's change form posts for ``user``, with ``changes`` applied."""
    form = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "groups": list(user.groups.values_list("pk", flat=True)),
        "date_joined_0": "2024-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2024-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    if user.is_active:
        form["is_active"] = "on"
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def test_a_role_given_in_the_user_admin_is_audited_with_the_admin_as_actor(admin_client, auditor):
    leads = Group.objects.get(name="ml-leads")

    response = admin_client.post(
        reverse("admin:auth_user_change", args=[auditor.pk]), user_form(auditor, groups=[leads.pk])
    )

    assert response.status_code == 302
    granted = AuditEvent.objects.get(action="role.granted", object_key="auditor", new__role="ml-leads")
    revoked = AuditEvent.objects.get(action="role.revoked", object_key="auditor", new__role="auditors")
    assert granted.actor == revoked.actor == "admin"
    assert revoked.old == {"roles": ["auditors"]}
    assert granted.new["roles"] == ["ml-leads"]


def test_making_someone_superuser_or_staff_in_the_admin_is_audited(admin_client, oncall):
    response = admin_client.post(
        reverse("admin:auth_user_change", args=[oncall.pk]),
        user_form(oncall, is_staff="on", is_superuser="on"),
    )

    assert response.status_code == 302
    event = AuditEvent.objects.get(action="user.access_changed", object_key="oncall")
    assert event.actor == "admin"
    assert (event.old, event.new) == (
        {"is_staff": False, "is_superuser": False},
        {"is_staff": True, "is_superuser": True},
    )


def test_deactivating_someone_is_audited(admin_client, lead):
    admin_client.post(reverse("admin:auth_user_change", args=[lead.pk]), user_form(lead, is_active=None))

    event = AuditEvent.objects.get(action="user.access_changed", object_key="lead")
    assert (event.old, event.new, event.actor) == ({"is_active": True}, {"is_active": False}, "admin")


def test_a_group_permission_change_in_the_group_admin_is_audited(admin_client):
    oncall = Group.objects.get(name="on-call")
    before = sorted(
        f"{p.content_type.app_label}.{p.codename}" for p in oncall.permissions.select_related("content_type")
    )
    token_view = Permission.objects.get(codename="view_apitoken")

    response = admin_client.post(
        reverse("admin:auth_group_change", args=[oncall.pk]),
        {"name": "on-call", "permissions": [*oncall.permissions.values_list("pk", flat=True), token_view.pk]},
    )

    assert response.status_code == 302
    event = AuditEvent.objects.get(action="group.permissions_changed", object_key="on-call")
    assert event.actor == "admin"
    assert event.old == {"permissions": before}
    assert event.new == {"permissions": sorted([*before, "releases.view_apitoken"])}


def test_a_change_from_a_shell_is_audited_with_an_unidentified_actor(auditor):
    auditor.is_superuser = True
    auditor.save()
    auditor.groups.add(Group.objects.get(name="release-managers"))

    access = AuditEvent.objects.get(action="user.access_changed", object_key="auditor")
    role = AuditEvent.objects.get(action="role.granted", object_key="auditor", new__role="release-managers")
    assert access.actor == role.actor == "unidentified (shell or script)"
    assert access.new == {"is_superuser": True}


def test_adding_people_to_a_group_from_its_side_is_audited(auditor, oncall):
    Group.objects.get(name="ml-leads").user_set.add(auditor, oncall)

    granted = AuditEvent.objects.filter(action="role.granted", new__role="ml-leads")
    assert sorted(granted.values_list("object_key", flat=True)) == ["auditor", "oncall"]
    assert granted.get(object_key="oncall").new["roles"] == ["ml-leads", "on-call"]


def test_clearing_someones_roles_is_audited(lead):
    lead.groups.clear()

    event = AuditEvent.objects.get(action="role.revoked", object_key="lead")
    assert (event.old, event.new) == ({"roles": ["ml-leads"]}, {"role": "ml-leads", "roles": []})


def test_deleting_a_group_is_audited_with_its_members(lead, lead2):
    Group.objects.get(name="ml-leads").delete()

    event = AuditEvent.objects.get(action="group.deleted")
    assert event.old == {"name": "ml-leads", "members": ["lead", "lead2"]}


def test_renaming_a_group_is_audited(db):
    group = Group.objects.get(name="auditors")
    group.name = "ml-leads-too"
    group.save()

    event = AuditEvent.objects.get(action="group.renamed")
    assert (event.old, event.new) == ({"name": "auditors"}, {"name": "ml-leads-too"})


def test_a_new_superuser_is_audited_but_a_plain_account_is_not(db):
    User.objects.create_user("plain", "plain@example.com", "x")
    User.objects.create_superuser("root", "root@example.com", "x")

    [event] = AuditEvent.objects.filter(action="user.access_changed")
    assert event.object_key == "root"
    assert event.new == {"is_active": True, "is_staff": True, "is_superuser": True}


@pytest.mark.parametrize("field", ["last_login", "first_name"])
def test_saving_other_fields_records_nothing(lead, field):
    lead.first_name = "Lena-Marie"
    lead.save(update_fields=[field] if field == "last_login" else None)
    assert not AuditEvent.objects.filter(action="user.access_changed").exists()


def test_removing_a_role_someone_does_not_hold_records_nothing(auditor):
    auditor.groups.remove(Group.objects.get(name="ml-leads"))
    assert not AuditEvent.objects.filter(action="role.revoked").exists()
