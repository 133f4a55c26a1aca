"""Indexes for the search box: run-id prefixes, and trigram indexes for partial names on PostgreSQL.

The run-id index gets varchar_pattern_ops, as the commit sha index has, so that ``run_id LIKE
'abc%'`` uses it on PostgreSQL (elsewhere the operator class is ignored).

The search matches with Django's ``icontains``, which PostgreSQL runs as
``UPPER(column::text) LIKE UPPER('%text%')``: a btree index cannot serve a leading wildcard, a
pg_trgm GIN index on that same expression can. SQLite has no such index (and needs none at the
sizes it serves); there the trigram part does nothing. Where the database role may not create the
pg_trgm extension, the indexes are skipped: search stays correct, only slower on large tables.
"""

from django.db import DatabaseError, migrations, models, transaction

# (table, column) pairs the search matches by substring.
SEARCHED = [
    ("releases_release", "name"),
    ("releases_registeredmodel", "name"),
    ("releases_endpoint", "name"),
    ("releases_dataset", "name"),
    ("releases_gittag", "name"),
    ("releases_featurepipeline", "name"),
    ("releases_experimentrun", "user"),
]


def _index_name(table, column):
    return f"{table.removeprefix('releases_')}_{column}_trgm"


def create_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:
        return
    quote = schema_editor.quote_name
    for table, column in SEARCHED:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(_index_name(table, column))} "
            f"ON {quote(table)} USING gin ((UPPER({quote(column)}::text)) gin_trgm_ops)"
        )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column in SEARCHED:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(_index_name(table, column))}")


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0008_sync_state_for_every_source"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="experimentrun", name="run_id_idx"),
        migrations.AddIndex(
            model_name="experimentrun",
            index=models.Index(fields=["run_id"], name="run_id_idx", opclasses=["varchar_pattern_ops"]),
        ),
        migrations.RunPython(create_indexes, drop_indexes, elidable=False),
    ]
