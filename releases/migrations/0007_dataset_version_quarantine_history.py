from django.db import migrations, models
from django.db.models.functions import Coalesce


def date_current_quarantines(apps, schema_editor):
    # A version quarantined before this migration gets its quarantine date, so lifting it later
    # still leaves a trace in the signed chain.
    # On the connection migrate runs on (the owner's), not the application's default one.
    DatasetVersion = apps.get_model("releases", "DatasetVersion")
    DatasetVersion.objects.using(schema_editor.connection.alias).filter(status="quarantined").update(
        quarantined_at=Coalesce("status_changed_at", "registered_at")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0006_commit_repository_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasetversion",
            name="quarantined_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="datasetversion",
            name="quarantine_lifted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(date_current_quarantines, migrations.RunPython.noop),
    ]
