"""Create the role groups and give each the view permissions its pages and admin need."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = ("ml-leads", "auditors", "on-call", "release-managers")
VIEW_APPS = ("releases", "audit")


def create_roles(apps: Any, schema_editor: Any) -> None:
    # The connection migrate runs on (the owner's, with --database owner), not the application's.
    db = schema_editor.connection.alias
    # Permissions are normally created after all migrations; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, using=db)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.using(db).filter(content_type__app_label__in=VIEW_APPS, codename__startswith="view_")
    for name in ROLES:
        group, _ = Group.objects.using(db).get_or_create(name=name)
        group.permissions.add(*view)


def remove_roles(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0001_initial"),
        ("audit", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
