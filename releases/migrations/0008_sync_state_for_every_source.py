"""Every source gets its sync state when it is added; give one to any source added before that rule."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import migrations


def create_missing_states(apps: Any, schema_editor: Any) -> None:
    # The connection migrate runs on (the owner's, with --database owner), not the application's.
    db = schema_editor.connection.alias
    states = apps.get_model("releases", "SyncState").objects.using(db)
    interval = settings.LINEAGE_SYNC_INTERVAL_SECONDS
    for repository in apps.get_model("releases", "GitRepository").objects.using(db).filter(sync_state__isnull=True):
        states.create(kind="git", repository=repository, interval_seconds=interval)
    for server in apps.get_model("releases", "TrackingServer").objects.using(db).filter(sync_state__isnull=True):
        states.create(kind="mlflow", server=server, interval_seconds=interval)


class Migration(migrations.Migration):
    dependencies = [("releases", "0007_dataset_version_quarantine_history")]

    operations = [migrations.RunPython(create_missing_states, migrations.RunPython.noop)]
