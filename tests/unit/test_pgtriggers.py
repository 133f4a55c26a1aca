"""The protective triggers: installed without pgtrigger's session switch for anyone but the tables' owner.

The application's side (it cannot switch them off, with or without privileges) is in test_dbroles.py;
here, what the triggers themselves do, for the owner too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pgtrigger
import psycopg
import pytest
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction

from audit.log import SystemActor
from audit.pgtriggers import OwnerOnlyIgnoreSql
from releases import services
from releases.models import Commit, DatasetVersion, GitRepository, Release
from releases.models.base import GuardedModel
from tests.factories import World
from tests.unit.test_dbroles import PROTECTED_TABLES, all_trigger_ids

OwnerSql = Callable[..., list[tuple[Any, ...]]]


def test_every_protective_trigger_honours_pgtrigger_ignore_only_for_the_owner():
    for model, trigger in pgtrigger.registered():
        assert isinstance(trigger.compile(model).sql, OwnerOnlyIgnoreSql), f"{model._meta.label}:{trigger.name}"


def test_read_only_triggers_guard_exactly_the_models_immutable_fields():
    for model in apps.get_models():
        if not issubclass(model, GuardedModel) or not model.immutable_fields:
            continue
        guarded = [
            set(trigger.fields)
            for trigger in model._meta.triggers  # type: ignore[attr-defined]
            if isinstance(trigger, pgtrigger.ReadOnly)
        ]
        assert guarded == [set(model.immutable_fields)], model._meta.label


def test_installed_trigger_functions_carry_the_owner_check(postgres):
    with connection.cursor() as cursor:
        cursor.execute("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'pgtrigger%%'")
        functions = dict(cursor.fetchall())
    expected = {trigger.get_pgid(model) for model, trigger in pgtrigger.registered()}
    assert expected <= set(functions)
    for name in expected:
        assert "pg_catalog.pg_has_role" in functions[name], name


@pytest.fixture
def as_owner(postgres: None) -> Iterator[OwnerSql]:
    """SQL as the tables' owner, in a transaction rolled back at the end of the test."""
    owner = getattr(settings, "TEST_DATABASE_OWNER", None)
    if owner is None:
        # One role: the application's connection is the owner's.
        def run_here(sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []

        yield run_here
        return
    conn = psycopg.connect(
        dbname=connection.settings_dict["NAME"],
        user=owner["USER"],
        password=owner.get("PASSWORD") or None,
        host=owner.get("HOST") or None,
        port=owner.get("PORT") or None,
    )

    def run(sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
        try:
            with conn.transaction():
                cursor = conn.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            raise DatabaseError(str(exc)) from exc

    yield run
    conn.rollback()
    conn.close()


@pytest.mark.parametrize("table", PROTECTED_TABLES)
def test_truncate_is_refused_to_the_owner_too(as_owner: OwnerSql, table: str):
    with pytest.raises(DatabaseError, match="TRUNCATE refused"):
        as_owner(f"TRUNCATE {table} CASCADE")


@pytest.mark.django_db(transaction=True)
def test_the_owner_too_meets_the_retired_never_deleted_rule_unless_it_lifts_it(as_owner: OwnerSql, ci_account):
    world = World.create()
    world.dataset("churn-train:99")
    world.release("churn-v43", world.model_version("churn-model/43"), by=ci_account)
    spare = DatasetVersion.objects.by_key("churn-train:99").get()
    draft = Release.objects.get(name="churn-v43")
    for table, pk in (("releases_datasetversion", spare.pk), ("releases_release", draft.pk)):
        with pytest.raises(DatabaseError, match="pgtrigger: Cannot delete rows"):
            as_owner(f"DELETE FROM {table} WHERE id = %s", [pk])  # noqa: S608 - fixed table names
    # The owner, who could drop the trigger anyway, may lift it for one transaction; the app may not
    # (test_dbroles). Rolled back: the check is that the trigger stood aside, not that the row went.
    lift_then_move = " ".join(
        [
            "DO $$ BEGIN",
            f"PERFORM set_config('pgtrigger.ignore', '{all_trigger_ids()}', true);",
            f"UPDATE releases_datasetversion SET uri = 's3://moved' WHERE id = {int(spare.pk)};",  # noqa: S608
            "RAISE EXCEPTION 'rolled back on purpose'; END $$",
        ]
    )
    with pytest.raises(DatabaseError, match="rolled back on purpose"):
        as_owner(lift_then_move)
    assert DatasetVersion.objects.get(pk=spare.pk).uri == "s3://data/churn-train/99.parquet"


# A commit's repository: PostgreSQL's constraint replaced by a check per statement (releases/models/code.py).

_SHA = "c" * 40


def _repository(name: str = "churn") -> GitRepository:
    return services.add_git_repository(name=name, url=f"/srv/git/{name}.git", by=SystemActor("test")).repository


@pytest.mark.django_db
def test_a_commit_naming_no_repository_is_refused_by_insert_and_by_copy(postgres):
    stored = _repository()
    missing = stored.pk + 1000
    insert = (
        "INSERT INTO releases_commit (repository_id, sha, author_name, author_email, message, parents) "
        "VALUES (%s, %s, '', '', '', '[]')"
    )
    with pytest.raises(IntegrityError, match="violates its reference"), transaction.atomic():
        connection.cursor().execute(insert, [missing, _SHA])
    columns = services.CommitColumns(
        shas=[_SHA, "d" * 40],
        parents=["", ""],
        author_names=["", ""],
        author_emails=["", ""],
        authored_at=["", ""],
        committed_at=["", ""],
        messages=["", ""],
    )
    stranger = GitRepository(pk=missing, name="gone")
    with pytest.raises(IntegrityError, match="violates its reference"), transaction.atomic():
        services.record_commit_columns(stranger, [columns])
    # One statement naming a stored repository and a missing one is refused whole.
    with pytest.raises(IntegrityError, match="violates its reference"), transaction.atomic():
        connection.cursor().execute(
            insert.replace(
                "VALUES (%s, %s, '', '', '', '[]')", "VALUES (%s, %s, '', '', '', '[]'), (%s, %s, '', '', '', '[]')"
            ),
            [stored.pk, _SHA, missing, "d" * 40],
        )
    assert services.record_commit_columns(stored, [columns]) == 2
    assert Commit.objects.filter(repository=stored).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_repository_keeps_its_commits_against_the_owner_too(as_owner: OwnerSql):
    kept, bare = _repository("churn"), _repository("empty")
    services.record_commits(kept, [services.CommitData(sha=_SHA)])
    with pytest.raises(DatabaseError, match="still referenced"):
        as_owner("DELETE FROM releases_gitrepository WHERE id = %s", [kept.pk])
    with pytest.raises(DatabaseError, match="still referenced"):
        as_owner("UPDATE releases_gitrepository SET id = id + 1000 WHERE id = %s", [kept.pk])
    # What it holds is the reference, nothing more: another column changes, a repository without commits goes.
    as_owner("UPDATE releases_gitrepository SET url = '/srv/git/moved.git' WHERE id = %s", [kept.pk])
    gone = as_owner(
        "WITH state AS (DELETE FROM releases_syncstate WHERE repository_id = %s) "
        "DELETE FROM releases_gitrepository WHERE id = %s RETURNING id",
        [bare.pk, bare.pk],
    )
    assert gone == [(bare.pk,)]


@pytest.mark.django_db
def test_the_app_cannot_move_a_repository_away_from_its_commits(app_role: str):
    kept = _repository()
    services.record_commits(kept, [services.CommitData(sha=_SHA)])
    with pytest.raises(IntegrityError, match="still referenced"), transaction.atomic():
        GitRepository.objects.filter(pk=kept.pk).update(id=kept.pk + 1000)
    assert Commit.objects.get(sha=_SHA).repository_id == kept.pk


@pytest.mark.django_db(transaction=True)
def test_a_delete_waits_for_commits_still_being_loaded_then_sees_them(as_owner: OwnerSql):
    kept = _repository()
    with transaction.atomic():
        services.record_commits(kept, [services.CommitData(sha=_SHA)])
        # The load holds its repository (FOR KEY SHARE), as PostgreSQL's own constraint does: the owner's
        # delete cannot slip in before it commits.
        delete = f"DELETE FROM releases_gitrepository WHERE id = {int(kept.pk)}"  # noqa: S608 - an id
        with pytest.raises(DatabaseError, match="lock timeout"):
            as_owner(f"DO $$ BEGIN SET LOCAL lock_timeout = '200ms'; {delete}; END $$")
    with pytest.raises(DatabaseError, match="still referenced"):
        as_owner("DELETE FROM releases_gitrepository WHERE id = %s", [kept.pk])
