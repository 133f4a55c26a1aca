"""The application's PostgreSQL role cannot rewrite history, with or without the triggers.

Run as the application's own login (DATABASE_URL), as the whole suite is when DATABASE_MIGRATE_URL names
the owner (.ci/run). Each attack here worked for the application's role before it lost ownership of
the tables: ``SET LOCAL pgtrigger.ignore`` switched the triggers off, TRUNCATE emptied approvals,
deployments, checkpoints and run inputs, DELETE removed unreferenced dataset versions and draft releases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pgtrigger
import psycopg
import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit import dbroles
from audit.checkpoints import issue_checkpoint
from audit.models import AuditEvent, Checkpoint
from releases.models import Approval, DatasetVersion, Release
from tests.factories import World, content_hash

ROOT = Path(__file__).resolve().parents[2]

# Every table a protective trigger guards, and the run inputs a sync rewires row by row.
PROTECTED_TABLES = [
    "audit_auditevent",
    "audit_checkpoint",
    "releases_approval",
    "releases_deployment",
    "releases_release",
    "releases_datasetversion",
    "releases_modelversion",
    "releases_commit",
    "releases_gittag",
    "releases_rundatasetinput",
]
REFUSED = r"permission denied|Cannot|refused"
FORGED_HASH = content_hash("forged")
[(_audit, _append_only)] = pgtrigger.registered("audit.AuditEvent:audit_append_only")
AUDIT_APPEND_ONLY = _append_only.get_pgid(_audit)


def all_trigger_ids() -> str:
    """Every protective trigger, named both ways pgtrigger's ignore understands, as a PostgreSQL array."""
    ids = []
    for model, trigger in pgtrigger.registered():
        pgid = trigger.get_pgid(model)
        ids += [pgid, f"{model._meta.db_table}:{pgid}"]
    return "{" + ",".join(ids) + "}"


def as_the_app_with_triggers_ignored(sql: str, params: list[object] | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL pgtrigger.ignore = '{all_trigger_ids()}'")
        cursor.execute(sql, params)


@pytest.fixture
def chain(db: Any, ci_account, lead, release_manager) -> Release:
    world = World.create()
    world.tag("model-churn-v42", world.commit("c42"))
    release = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    world.deploy(world.endpoint(), release, by=release_manager)
    # Beside it: a version nothing references and a release never submitted.
    world.dataset("churn-train:99")
    world.release("churn-v43", world.model_version("churn-model/43"), by=ci_account)
    issue_checkpoint()
    return release


def owner_connection() -> psycopg.Connection[Any]:
    owner = settings.TEST_DATABASE_OWNER
    return psycopg.connect(
        dbname=connection.settings_dict["NAME"],
        user=owner["USER"],
        password=owner.get("PASSWORD") or None,
        host=owner.get("HOST") or None,
        port=owner.get("PORT") or None,
    )


# The suite itself


def test_the_suite_runs_as_the_application_role_which_holds_only_its_grants(app_role: str):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, session_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (app_role, app_role, False)
    assert app_role != settings.TEST_DATABASE_OWNER["USER"]
    assert dbroles.problems(connection, app_role) == []


# Switching the triggers off


@pytest.mark.parametrize(
    ("sql", "check"),
    [
        (
            "UPDATE audit_auditevent SET actor = 'mallory' WHERE action = 'release.approved'",
            lambda: AuditEvent.objects.get(action="release.approved").actor == "lead",
        ),
        (
            f"UPDATE releases_datasetversion SET content_hash = '{FORGED_HASH}'",  # noqa: S608 - a constant
            lambda: (
                DatasetVersion.objects.by_key("churn-train:18").get().content_hash == content_hash("churn-train:18")
            ),
        ),
        ("DELETE FROM releases_approval", lambda: Approval.objects.count() == 1),
        ("DELETE FROM audit_auditevent", lambda: AuditEvent.objects.filter(seq=1).exists()),
        ("UPDATE audit_checkpoint SET root_hash = repeat('0', 64)", lambda: Checkpoint.objects.exists()),
    ],
    ids=[
        "rewrite-audit-actor",
        "rewrite-dataset-hash",
        "delete-approvals",
        "delete-audit-events",
        "rewrite-checkpoint",
    ],
)
def test_pgtrigger_ignore_does_not_let_the_app_rewrite_history(app_role, chain, sql, check):
    with pytest.raises(DatabaseError, match=REFUSED):
        as_the_app_with_triggers_ignored(sql)
    assert check()


def test_pgtrigger_ignore_from_python_changes_nothing_either(app_role, chain):
    # pgtrigger.ignore() puts the setting before each statement, two commands in one: with the app's
    # statements prepared (DB_SERVER_SIDE_BINDING) PostgreSQL refuses the first of them (the savepoint)
    # outright and the transaction is aborted before the update is even tried; without, the trigger or
    # the missing privilege refuses the update itself.
    prepared = connection.settings_dict.get("OPTIONS", {}).get("server_side_binding") is True
    refusal = "cannot insert multiple commands|current transaction is aborted" if prepared else REFUSED
    with (
        pytest.raises(DatabaseError, match=refusal),
        pgtrigger.ignore("releases.DatasetVersion:dataset_version_immutable"),
        transaction.atomic(),
    ):
        DatasetVersion.objects.update(content_hash=FORGED_HASH)


@pytest.mark.django_db(transaction=True)
def test_with_a_privilege_granted_by_mistake_the_trigger_still_refuses_the_app(app_role, chain):
    """The second line: even holding UPDATE and DELETE, the app cannot make the triggers stand aside."""
    with owner_connection() as owner:
        owner.execute(f"GRANT UPDATE, DELETE ON audit_auditevent, releases_datasetversion TO {app_role}")
    try:
        for sql in (
            "UPDATE audit_auditevent SET actor = 'mallory'",
            f"UPDATE releases_datasetversion SET content_hash = '{FORGED_HASH}'",  # noqa: S608 - a constant
            "DELETE FROM releases_datasetversion WHERE NOT EXISTS "
            "(SELECT FROM releases_rundatasetinput i WHERE i.dataset_version_id = releases_datasetversion.id)",
        ):
            with pytest.raises(DatabaseError, match="pgtrigger: Cannot"):
                as_the_app_with_triggers_ignored(sql)
    finally:
        with owner_connection() as owner:
            owner.execute(f"REVOKE UPDATE, DELETE ON audit_auditevent, releases_datasetversion FROM {app_role}")
    assert not AuditEvent.objects.filter(actor="mallory").exists()


@pytest.mark.parametrize(
    "sql",
    [
        "SET session_replication_role = replica",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
        f"DROP TRIGGER {AUDIT_APPEND_ONLY} ON audit_auditevent",
        "CREATE OR REPLACE FUNCTION public._pgtrigger_should_ignore(trigger_name NAME) RETURNS BOOLEAN "
        "AS $$ BEGIN RETURN TRUE; END; $$ LANGUAGE plpgsql",
        "CREATE TABLE public.scratch (id int)",
        "ALTER TABLE audit_auditevent OWNER TO CURRENT_USER",
    ],
    ids=["replica", "disable-trigger", "drop-trigger", "replace-ignore-function", "create", "take-ownership"],
)
def test_the_app_cannot_switch_the_triggers_off_or_give_itself_more(app_role, chain, sql):
    with (
        pytest.raises(DatabaseError, match=r"permission denied|must be owner|not permitted"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


def test_the_app_cannot_become_the_owner(app_role, chain):
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {settings.TEST_DATABASE_OWNER['USER']}")


# TRUNCATE and DELETE


@pytest.mark.parametrize("table", PROTECTED_TABLES)
def test_truncate_is_refused_to_the_app_on_every_protected_table(app_role, chain, table):
    with pytest.raises(DatabaseError, match=REFUSED):
        as_the_app_with_triggers_ignored(f"TRUNCATE {table} CASCADE")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed table names
        assert cursor.fetchone()[0] > 0


def test_an_unreferenced_dataset_version_and_a_draft_release_cannot_be_deleted(app_role, chain):
    spare = DatasetVersion.objects.by_key("churn-train:99").get()
    draft = Release.objects.get(name="churn-v43")
    assert draft.state == Release.State.DRAFT
    assert not spare.run_inputs.exists()
    as_sql = [
        ("DELETE FROM releases_datasetversion WHERE id = %s", [spare.pk]),
        ("DELETE FROM releases_release WHERE id = %s", [draft.pk]),
    ]
    for sql, params in as_sql:
        with pytest.raises(DatabaseError, match=REFUSED):
            as_the_app_with_triggers_ignored(sql, params)
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        DatasetVersion.objects.filter(pk=spare.pk).delete()
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        Release.objects.filter(pk=draft.pk).delete()
    assert DatasetVersion.objects.filter(pk=spare.pk).exists()
    assert Release.objects.filter(pk=draft.pk).exists()


# What the role holds


def _privileges(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p "
            "WHERE has_table_privilege(current_user, %s, p)",
            [table],
        )
        return {row[0] for row in cursor.fetchall()}


def _updatable_columns(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "AND has_column_privilege(current_user, attrelid, attnum, 'UPDATE')",
            [table],
        )
        return {row[0] for row in cursor.fetchall()}


def test_evidence_is_select_and_insert_only(app_role):
    for table in ("audit_auditevent", "audit_checkpoint", "releases_approval", "releases_deployment"):
        assert _privileges(table) == {"SELECT", "INSERT"}, table
        assert _updatable_columns(table) == set(), table


def test_the_chain_changes_state_but_never_its_immutable_columns(app_role):
    assert _privileges("releases_release") == {"SELECT", "INSERT"}
    release_columns = _updatable_columns("releases_release")
    assert {"state", "state_changed_at", "state_reason", "lineage_digest"} <= release_columns
    assert not {"name", "model_version_id", "commit_id", "git_tag_id", "validation_report_uri"} & release_columns
    version_columns = _updatable_columns("releases_datasetversion")
    assert {"status", "status_reason", "status_changed_at", "mutated", "mutation_detail"} <= version_columns
    assert not {"dataset_id", "version", "uri", "content_hash", "size_bytes"} & version_columns
    assert _privileges("releases_syncstate") == {"SELECT", "INSERT", "UPDATE"}
    assert _privileges("releases_rundatasetinput") == {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert _privileges("django_migrations") == {"SELECT"}


def test_a_table_nobody_classified_gets_select_and_insert_only(monkeypatch):
    monkeypatch.delitem(dbroles.POLICY, "releases.WriteBack")
    grants = {grant.table: grant for grant in dbroles.table_grants()}
    assert grants["releases_writeback"].privileges == ("SELECT", "INSERT")


def test_every_classified_table_is_a_model_and_immutable_columns_are_never_updatable():
    assert set(dbroles.POLICY) <= {model._meta.label for model in apps.get_models(include_auto_created=True)}
    for grant in dbroles.table_grants():
        model = next((m for m in apps.get_models() if m._meta.db_table == grant.table), None)
        fixed = {model._meta.get_field(name).column for name in getattr(model, "immutable_fields", ())}
        assert not fixed & set(grant.update_columns or ()), grant.table
        assert "TRUNCATE" not in grant.privileges
        if fixed:
            assert grant.update_columns is not None, grant.table


# Migrating as the owner, granting, checking


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def fresh_database(app_role) -> Iterator[dict[str, str]]:
    """An empty database owned by the owner, and the environment of a release job for it."""
    name = f"{connection.settings_dict['NAME']}_fresh"
    owner = settings.TEST_DATABASE_OWNER
    admin = psycopg.connect(
        dbname="postgres", user=owner["USER"], host=owner.get("HOST") or None, port=owner.get("PORT") or None
    )
    admin.autocommit = True
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.execute(f'CREATE DATABASE "{name}"')
    host = f"{owner.get('HOST') or '127.0.0.1'}:{owner.get('PORT') or 5432}"
    app = connection.settings_dict
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL"}},
        "DJANGO_SETTINGS_MODULE": "lineage_site.settings",
        "DATABASE_URL": f"postgres://{app['USER']}:{app['PASSWORD'] or ''}@{host}/{name}",
        "DATABASE_MIGRATE_URL": f"postgres://{owner['USER']}:{owner.get('PASSWORD') or ''}@{host}/{name}",
    }
    try:
        yield env
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_migrate_as_the_owner_leaves_the_app_role_exactly_its_grants(fresh_database: dict[str, str], tmp_path):
    env = {**fresh_database, "LINEAGE_VAR_DIR": str(tmp_path)}
    migrated = _manage("migrate", "--database", "owner", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    checked = _manage("grant_app_role", "--check", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "holds only its grants" in checked.stdout
    # Again: granting is idempotent.
    again = _manage("grant_app_role", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"granted {connection.settings_dict['USER']} its privileges on ")
    # The application, on its own role, sees every migration applied and can read.
    app_env = {k: v for k, v in env.items() if k != "DATABASE_MIGRATE_URL"}
    shown = _manage("migrate", "--check", env=app_env)
    assert shown.returncode == 0, shown.stderr


def test_grant_app_role_check_names_what_is_wrong(fresh_database: dict[str, str], tmp_path):
    env = {**fresh_database, "LINEAGE_VAR_DIR": str(tmp_path)}
    assert _manage("migrate", "--database", "owner", "--noinput", env=env).returncode == 0
    owner = settings.TEST_DATABASE_OWNER
    name = fresh_database["DATABASE_URL"].rpartition("/")[2]
    with psycopg.connect(
        dbname=name, user=owner["USER"], host=owner.get("HOST") or None, port=owner.get("PORT") or None
    ) as conn:
        conn.execute(f"GRANT TRUNCATE ON releases_approval TO {connection.settings_dict['USER']}")
    checked = _manage("grant_app_role", "--check", env=env)
    assert checked.returncode == 1
    assert f"{connection.settings_dict['USER']} has TRUNCATE on releases_approval" in checked.stderr


@pytest.mark.django_db
def test_grant_app_role_on_sqlite_says_the_model_guards_hold_there():
    if connection.vendor != "sqlite":
        pytest.skip("the embedded database only")
    with pytest.raises(CommandError, match="PostgreSQL only; SQLite relies on the model-level guards") as refused:
        call_command("grant_app_role")
    assert refused.value.returncode == 2
