"""API tokens expire and record when they were last used; token management is for administrators only."""

from __future__ import annotations

import datetime
from typing import Any

from django.db import migrations, models
from django.db.models import F

ROLES = ("ml-leads", "auditors", "on-call", "release-managers")
# Tokens issued before expiry existed get the default lifetime from when they were issued.
EXISTING_TOKEN_DAYS = 90


def expire_existing_tokens(apps: Any, schema_editor: Any) -> None:
    ApiToken = apps.get_model("releases", "ApiToken")
    ApiToken.objects.using(schema_editor.connection.alias).filter(expires_at__isnull=True).update(
        expires_at=F("created_at") + datetime.timedelta(days=EXISTING_TOKEN_DAYS)
    )


def take_token_permissions_from_roles(apps: Any, schema_editor: Any) -> None:
    # 0002_roles gave every role view_apitoken; seeing, issuing and revoking tokens is for administrators.
    db = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    token_permissions = Permission.objects.using(db).filter(
        content_type__app_label="releases", content_type__model="apitoken"
    )
    for group in Group.objects.using(db).filter(name__in=ROLES):
        group.permissions.remove(*token_permissions)


class Migration(migrations.Migration):
    dependencies = [("releases", "0010_triggers_hold_against_the_app_role")]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(null=True, help_text="After this the token is refused; issue a new one."),
        ),
        migrations.RunPython(expire_existing_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(help_text="After this the token is refused; issue a new one."),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="last_used_at",
            field=models.DateTimeField(
                blank=True,
                help_text="Last request made with the token (to the minute); empty if never used.",
                null=True,
            ),
        ),
        migrations.RunPython(take_token_permissions_from_roles, migrations.RunPython.noop),
    ]
