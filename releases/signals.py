"""Changes no service makes, recorded anyway: sign-ins and sign-outs (Django's login views), and every change of
who may do what, whatever the door (the user admin, the group admin, a shell, ``manage.py grant``).

Role grants through ``services.grant_role`` land here too: the service names its actor in the audit context
and this module writes the one event. Each event is written in the transaction of the change when there is
one (Django's related managers open one around their signals).
"""

from __future__ import annotations

from typing import Any

from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.db.models.signals import m2m_changed, post_save, pre_delete, pre_save
from django.http import HttpRequest

from audit import context, log
from audit.log import Actor, SystemActor
from releases.middleware import start_session
from releases.services import accounts

# Whoever changes access from a shell or script, with no request and no service naming them.
UNKNOWN = SystemActor("unidentified (shell or script)")
ACCESS_FIELDS = ("is_active", "is_staff", "is_superuser")


def _actor() -> Actor:
    return context.current_actor() or UNKNOWN


def on_logged_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        start_session(request, user)
    accounts.record_sign_in(user, request)


def on_logged_out(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    accounts.record_sign_out(user, request, reason=getattr(request, "signed_out_because", ""))


def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    accounts.record_sign_in_failure(str(credentials.get("username") or ""), request)


def on_locked_out(sender: Any, request: HttpRequest, username: str | None = None, **kwargs: Any) -> None:
    # Axes signals every refused attempt once the limit is reached; the lockout itself is the one that reached it.
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is not None and failures != settings.AXES_FAILURE_LIMIT:
        return
    accounts.record_lockout(username or "", request)


def _attempt_deleted(sender: Any, instance: AccessAttempt, **kwargs: Any) -> None:
    accounts.record_lock_cleared(instance, by=context.current_actor() or SystemActor("lockout cool-off or reset"))


def _names(model: type[Group] | type[Permission], pks: set[Any] | None) -> list[str]:
    if not pks:
        return []
    if model is Permission:
        rows = Permission.objects.filter(pk__in=pks).select_related("content_type")
        return sorted(f"{p.content_type.app_label}.{p.codename}" for p in rows)
    return sorted(Group.objects.filter(pk__in=pks).values_list("name", flat=True))


def _held(instance: User | Group, field: str) -> list[str]:
    if field == "groups":
        return sorted(instance.groups.values_list("name", flat=True))  # type: ignore[union-attr]
    permissions = getattr(instance, field).select_related("content_type")
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in permissions)


def _record(action: str, *, subject: Any = None, object_type: str = "", object_key: str = "", **values: Any) -> None:
    with transaction.atomic():
        log.record(action, actor=_actor(), subject=subject, object_type=object_type, object_key=object_key, **values)


def _membership_changed(instance: Any, action: str, reverse: bool, pk_set: set[Any] | None, **kwargs: Any) -> None:
    """A person's roles (groups) changed, from either side (``user.groups`` or ``group.user_set``)."""
    if reverse:
        # group.user_set.add(...): one event per person, with their roles before and after.
        if action in ("post_add", "post_remove"):
            for user in User.objects.filter(pk__in=pk_set or ()):
                after = _held(user, "groups")
                held_before = (
                    sorted(set(after) - {instance.name}) if action == "post_add" else sorted({*after, instance.name})
                )
                _role_event(user, action, instance.name, held_before, after)
        elif action == "pre_clear":
            for user in instance.user_set.all():
                after = sorted(set(_held(user, "groups")) - {instance.name})
                _role_event(user, "post_remove", instance.name, sorted({*after, instance.name}), after)
        return
    if action in ("pre_add", "pre_remove", "pre_clear"):
        instance._roles_before = _held(instance, "groups")
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    before: list[str] = getattr(instance, "_roles_before", [])
    changed = before if action == "post_clear" else _names(Group, pk_set)
    if action == "post_remove":
        # remove() names every group asked for, held or not; only the held ones were taken away.
        changed = [name for name in changed if name in before]
    after = sorted(set(before) | set(changed)) if action == "post_add" else sorted(set(before) - set(changed))
    for name in changed:
        _role_event(instance, action, name, before, after)


def _role_event(user: User, action: str, role: str, before: list[str], after: list[str]) -> None:
    verb = "role.granted" if action == "post_add" else "role.revoked"
    _record(verb, subject=user, old={"roles": before}, new={"role": role, "roles": after})


def _permissions_changed(
    instance: Any, action: str, reverse: bool, pk_set: set[Any] | None, *, field: str, event: str, **kwargs: Any
) -> None:
    """What a group (a role) or one person may do changed."""
    if reverse:
        # permission.group_set.add(...): rare; name each group or person with what it holds now.
        if action.startswith("post_"):
            owner = Group if field == "permissions" else User
            for holder in owner.objects.filter(pk__in=pk_set or ()):
                _permissions_event(holder, event, field, before=None)
        return
    if action.startswith("pre_"):
        instance._permissions_before = _held(instance, field)
    else:
        _permissions_event(instance, event, field, before=getattr(instance, "_permissions_before", None))


def _permissions_event(holder: User | Group, event: str, field: str, *, before: list[str] | None) -> None:
    after = _held(holder, field)
    if before == after:
        return
    if isinstance(holder, Group):
        _record(
            event, object_type="group", object_key=holder.name, old={"permissions": before}, new={"permissions": after}
        )
    else:
        _record(event, subject=holder, old={"permissions": before}, new={"permissions": after})


def _group_permissions_changed(**kwargs: Any) -> None:
    _permissions_changed(field="permissions", event="group.permissions_changed", **kwargs)


def _user_permissions_changed(**kwargs: Any) -> None:
    _permissions_changed(field="user_permissions", event="user.permissions_changed", **kwargs)


def _before_user_saved(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    if instance.pk is None or (update_fields is not None and not set(update_fields) & set(ACCESS_FIELDS)):
        instance._access_before = None  # type: ignore[attr-defined]
        return
    before = User.objects.filter(pk=instance.pk).values(*ACCESS_FIELDS).first()
    instance._access_before = before  # type: ignore[attr-defined]


def _user_saved(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    now = {field: getattr(instance, field) for field in ACCESS_FIELDS}
    before = getattr(instance, "_access_before", None)
    if created:
        # A new account can do nothing until given a role, unless it is born staff or superuser.
        if instance.is_staff or instance.is_superuser:
            _record("user.access_changed", subject=instance, old=None, new=now)
        return
    if before is None:
        return
    old = {field: value for field, value in before.items() if value != now[field]}
    if old:
        _record("user.access_changed", subject=instance, old=old, new={field: now[field] for field in old})


def _before_group_saved(sender: Any, instance: Group, **kwargs: Any) -> None:
    instance._name_before = (  # type: ignore[attr-defined]
        Group.objects.filter(pk=instance.pk).values_list("name", flat=True).first() if instance.pk else None
    )


def _group_saved(sender: Any, instance: Group, created: bool, **kwargs: Any) -> None:
    if created:
        _record("group.created", object_type="group", object_key=instance.name, new={"name": instance.name})
        return
    before = getattr(instance, "_name_before", None)
    if before is not None and before != instance.name:
        _record(
            "group.renamed",
            object_type="group",
            object_key=instance.name,
            old={"name": before},
            new={"name": instance.name},
        )


def _group_deleted(sender: Any, instance: Group, **kwargs: Any) -> None:
    # Before the delete: its memberships go with it, and m2m_changed does not see that.
    members = sorted(instance.user_set.values_list("username", flat=True))
    _record(
        "group.deleted", object_type="group", object_key=instance.name, old={"name": instance.name, "members": members}
    )


def connect() -> None:
    """Called once from the app's ready()."""
    user_logged_in.connect(on_logged_in, dispatch_uid="releases.signed_in")
    user_logged_out.connect(on_logged_out, dispatch_uid="releases.signed_out")
    user_login_failed.connect(on_login_failed, dispatch_uid="releases.sign_in_failed")
    user_locked_out.connect(on_locked_out, dispatch_uid="releases.locked_out")
    m2m_changed.connect(_membership_changed, sender=User.groups.through, dispatch_uid="releases.roles")
    m2m_changed.connect(
        _group_permissions_changed, sender=Group.permissions.through, dispatch_uid="releases.group_perms"
    )
    m2m_changed.connect(
        _user_permissions_changed, sender=User.user_permissions.through, dispatch_uid="releases.user_perms"
    )
    pre_save.connect(_before_user_saved, sender=User, dispatch_uid="releases.user_before")
    post_save.connect(_user_saved, sender=User, dispatch_uid="releases.user_access")
    pre_save.connect(_before_group_saved, sender=Group, dispatch_uid="releases.group_before")
    post_save.connect(_group_saved, sender=Group, dispatch_uid="releases.group_saved")
    pre_delete.connect(_group_deleted, sender=Group, dispatch_uid="releases.group_deleted")
    pre_delete.connect(_attempt_deleted, sender=AccessAttempt, dispatch_uid="releases.lock_cleared")
