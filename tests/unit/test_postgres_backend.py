"""Timestamps read by psycopg's own loader on a UTC session are the values Django's loader gives."""

from __future__ import annotations

import datetime

from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.pq import Format

from lineage_site.postgresql.base import PSYCOPG_TIMESTAMPTZ_LOADER, TIMESTAMPTZ
from releases.models import Release

# A moment written with an offset, in the hour a daylight-saving change skips in Paris.
WRITTEN = "2026-03-29 02:30:00.123456+02"
MOMENT = datetime.datetime(2026, 3, 29, 0, 30, 0, 123456, tzinfo=datetime.UTC)


def _read(sql: str) -> tuple[object, type]:
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)
        cursor.execute(sql)
        return cursor.fetchone()[0], loader


def test_a_utc_session_reads_timestamps_with_psycopgs_loader_and_gets_what_django_gives(postgres, story):
    value, loader = _read(f"SELECT '{WRITTEN}'::timestamptz")
    assert loader is PSYCOPG_TIMESTAMPTZ_LOADER
    assert not issubclass(loader, BaseTzLoader)
    assert value == MOMENT
    assert value.tzinfo is datetime.UTC
    # Through the ORM too: the same instants, in Django's own UTC.
    release = story["v42"]
    loaded = Release.objects.get(pk=release.pk)
    assert loaded.created_at == release.created_at
    assert loaded.created_at.tzinfo is datetime.UTC


def test_a_session_in_another_time_zone_keeps_djangos_loader(postgres):
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Europe/Paris'")
    try:
        # Django's loader, as without this backend (which sets the session's zone to its own when it connects,
        # and reads values on that understanding).
        value, loader = _read(f"SELECT '{WRITTEN}'::timestamptz")
        assert issubclass(loader, BaseTzLoader)
        assert value.tzinfo is datetime.UTC
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert _read("SELECT now()")[1] is PSYCOPG_TIMESTAMPTZ_LOADER
