"""Personas and shared fixtures. Tests use the real components; a missing one skips (or fails in CI)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pgtrigger
import psycopg
import pytest
from celery.result import allow_join_result
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.management.commands import flush
from django.db import connection, connections, migrations, transaction
from django.db.migrations.loader import MigrationLoader

from releases.roles import AUDITORS, ML_LEADS, ON_CALL, RELEASE_MANAGERS

PASSWORD = "correct horse battery staple"


FAULTS = Path(__file__).resolve().parent / "faults"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the fault campaign (tests/faults/, `make faults`) out unless it is named on the command line:
    it kills and restarts services of its own and takes minutes, so `pytest` and `make test` skip it."""
    if collection_path != FAULTS:
        return None
    named = (config.invocation_params.dir / arg.split("::")[0] for arg in config.args)
    return not any(path.resolve().is_relative_to(FAULTS) for path in named) or None


def unavailable(reason: str) -> None:
    """Skip for a missing component; in CI (LINEAGE_REQUIRE_SERVICES=1) that is a failure instead."""
    if os.environ.get("LINEAGE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required component missing: {reason}")
    pytest.skip(reason)


# Two PostgreSQL roles (README, PostgreSQL roles). Django's test runner creates, migrates and flushes
# the test database through the default connection; those three steps need the tables' owner, and
# everything else must run as the application's role, the way the app runs. So the default
# connection logs in as the owner for setup (migrate's post_migrate hook then grants the application's
# role its privileges, exactly as in production), as the application's role for the tests, and as the
# owner again for each flush and for the final DROP DATABASE. The tests' own queries never hold more
# than the application's privileges: the role is a different login, not a SET ROLE it could reset.
_CREDENTIALS = ("USER", "PASSWORD", "HOST", "PORT")


def _database_owner() -> dict[str, Any] | None:
    return getattr(settings, "TEST_DATABASE_OWNER", None)


def _log_in_as(credentials: dict[str, Any]) -> dict[str, Any]:
    """Reconnect the default connection with other credentials; returns the ones it had."""
    default = connections["default"]
    before = {key: default.settings_dict.get(key) for key in _CREDENTIALS}
    default.close()
    default.settings_dict.update({key: credentials.get(key) for key in _CREDENTIALS})
    return before


@contextlib.contextmanager
def as_database_owner() -> Iterator[None]:
    """The default connection logged in as the tables' owner, when the suite runs with two roles."""
    owner = _database_owner()
    if owner is None:
        yield
        return
    application = _log_in_as(owner)
    try:
        yield
    finally:
        _log_in_as(application)


_APPLICATION: dict[str, Any] = {}


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    owner = _database_owner()
    if owner is not None:
        _APPLICATION.update(_log_in_as(owner))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    if not _APPLICATION:
        yield
        return
    _log_in_as(_APPLICATION)
    yield
    _log_in_as(_database_owner() or {})


def _ignore_truncate_triggers(alias: str) -> None:
    """Have the TRUNCATE triggers stand aside until the transaction ends: pgtrigger's own session variable,
    named as ``pgtrigger.ignore`` names each trigger, set in its own statement. (``pgtrigger.ignore()``
    prefixes every statement with the setting, two commands in one, which a prepared statement cannot be.)"""
    names: set[str] = set()
    for model, trigger in pgtrigger.registered():
        if "TRUNCATE" in str(trigger.operation):
            pgid = trigger.get_pgid(model)
            names.update({pgid, f"{model._meta.db_table}:{pgid}"})
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT set_config('pgtrigger.ignore', %s, true)", ["{" + ",".join(sorted(names)) + "}"])


_DATA_MIGRATIONS: list[tuple[Any, Any]] = []


def _replay_data_migrations(alias: str) -> None:
    """Put back what this project's data migrations wrote (the role groups and what they may do), which
    a flush empties: each test then starts from the database ``migrate`` leaves, whatever ran before it.

    The migrations' own functions run on their historical models, as in ``migrate``: no signal fires, so
    nothing is written to the audit log.
    """
    connection = connections[alias]
    if not _DATA_MIGRATIONS:
        loader = MigrationLoader(connection)
        plan = dict.fromkeys(node for leaf in loader.graph.leaf_nodes() for node in loader.graph.forwards_plan(leaf))
        for app, name in plan:
            if app not in {"releases", "audit"}:
                continue
            migration = loader.graph.nodes[(app, name)]
            state = loader.project_state((app, name), at_end=False)
            for operation in migration.operations:
                if isinstance(operation, migrations.RunPython):
                    # The models as this operation saw them: the migration's earlier operations applied.
                    _DATA_MIGRATIONS.append((operation.code, state.clone().apps))
                else:
                    operation.state_forwards(app, state)
    with connection.schema_editor(atomic=True) as editor:
        for code, apps_then in _DATA_MIGRATIONS:
            code(apps_then, editor)


@pytest.fixture(autouse=True, scope="session")
def _flush_between_transactional_tests() -> Iterator[None]:
    """Let the test runner's flush empty the protected tables, which PostgreSQL otherwise refuses to TRUNCATE.

    Only the flush is exempt, and only as the tables' owner (the one role the triggers let lift them);
    the tests themselves still meet every trigger and every missing privilege.
    """
    original = flush.Command.handle

    def handle(self: flush.Command, *args: Any, **options: Any) -> None:
        alias = options.get("database", "default")
        if connections[alias].vendor != "postgresql":
            original(self, *args, **options)
            _replay_data_migrations(alias)
            return
        # One transaction, so the setting that lets the TRUNCATE triggers stand aside lasts just the flush.
        with as_database_owner(), transaction.atomic(using=alias):
            _ignore_truncate_triggers(alias)
            original(self, *args, **options)
            _replay_data_migrations(alias)

    flush.Command.handle = handle  # type: ignore[method-assign]
    yield
    flush.Command.handle = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def _json_support_known(django_db_setup: Any, django_db_blocker: Any) -> None:
    """SQLite finds out whether it has JSON functions with a query, the first time one is used: found out up
    front, so a test's query count does not depend on which tests ran before it."""
    with django_db_blocker.unblock():
        assert connection.features.supports_json_field


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # Real hashing costs ~0.3 s a password; the tests check signatures, not key stretching.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _checkpoint_log(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test appends its signed checkpoints to its own file, never to the working copy's var/."""
    settings.LINEAGE_CHECKPOINT_LOG = tmp_path_factory.mktemp("checkpoints") / "checkpoints.log"


@pytest.fixture(autouse=True)
def _evidence_dir(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Prepared evidence bundles go to the test's own directory, never to the working copy's var/."""
    settings.LINEAGE_EVIDENCE_DIR = tmp_path_factory.mktemp("evidence")


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Each test starts with nothing remembered (webhook deliveries and refusal counts live in the cache)."""
    cache.clear()


@pytest.fixture(autouse=True)
def _celery_eager() -> Iterator[None]:
    """Run tasks in-process even when REDIS_URL is set; the worker test starts a real worker itself."""
    from lineage_site.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    # Celery sets a process-wide "joining would block" flag around each eager task and restores what it
    # saw; eager tasks run at once in several threads (the concurrency tests) can leave it set, and every
    # later eager result.get() would be refused. Each test starts with it cleared.
    with allow_join_result():
        yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def postgres(db: Any) -> None:
    if connection.vendor != "postgresql":
        unavailable("needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def app_role(postgres: None) -> str:
    """The application's own database role: the suite runs as it when DATABASE_MIGRATE_URL names the owner."""
    if _database_owner() is None:
        unavailable("needs the two PostgreSQL roles: set DATABASE_MIGRATE_URL to the owner's URL (README)")
    return str(connection.settings_dict["USER"])


@pytest.fixture
def behind_the_apps_back(transactional_db: Any) -> Callable[[str, list[object] | None], None]:
    """Run SQL as someone who can rewrite the tables: the owner with the protective triggers lifted.

    What an insider with the owner's (or a superuser's) password could do; the checks that must catch
    it run afterwards as the application. With two roles this is the owner's own login and commits at
    once, so the test must be transactional; with one role (SQLite, or PostgreSQL as its owner) it is
    the application's connection.
    """
    everything = [f"{model._meta.label}:{trigger.name}" for model, trigger in pgtrigger.registered()]

    def run(sql: str, params: list[object] | None = None) -> None:
        owner = _database_owner()
        if owner is None or connection.vendor != "postgresql":
            with pgtrigger.ignore(*everything), connection.cursor() as cursor:
                cursor.execute(sql, params)
            return
        with insider_cursor() as cursor:
            cursor.execute(sql, params)

    return run


def _person(username: str, *roles: str, full_name: str = "") -> User:
    first, _, last = full_name.partition(" ")
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, first_name=first, last_name=last)
    # get_or_create: transactional tests flush the groups the data migration made.
    user.groups.add(*(Group.objects.get_or_create(name=role)[0] for role in roles))
    return user


@pytest.fixture
def lead(db: Any) -> User:
    return _person("lead", ML_LEADS, full_name="Lena Lead")


@pytest.fixture
def lead2(db: Any) -> User:
    return _person("lead2", ML_LEADS, full_name="Omar Second")


@pytest.fixture
def auditor(db: Any) -> User:
    return _person("auditor", AUDITORS, full_name="Ada Auditor")


@pytest.fixture
def oncall(db: Any) -> User:
    return _person("oncall", ON_CALL, full_name="Otto Oncall")


@pytest.fixture
def release_manager(db: Any) -> User:
    return _person("relman", RELEASE_MANAGERS, full_name="Rita Manager")


@pytest.fixture
def ci_account(db: Any) -> User:
    user = _person("ci", RELEASE_MANAGERS)
    user.set_unusable_password()
    user.save()
    return user


@contextlib.contextmanager
def insider_cursor() -> Iterator[Any]:
    """A cursor that passes every protective trigger: what a database superuser has, or the tables' owner
    with the triggers lifted. Tests play an insider rewriting history with it; the checks that must catch
    the rewrite run afterwards as the application.

    With two roles it is the owner's own login, committed when the block ends, so the test must be
    transactional for it to see (and change) the test's rows; with one role it is the test's connection.
    """
    owner = _database_owner()
    if owner is None or connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET session_replication_role = replica")
            try:
                yield cursor
            finally:
                if connection.vendor == "postgresql":
                    cursor.execute("SET session_replication_role = DEFAULT")
        return
    pgids = "{" + ",".join(trigger.get_pgid(model) for model, trigger in pgtrigger.registered()) + "}"
    with psycopg.connect(
        dbname=connection.settings_dict["NAME"],
        user=owner["USER"],
        password=owner.get("PASSWORD") or None,
        host=owner.get("HOST") or None,
        port=owner.get("PORT") or None,
    ) as conn:
        conn.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [pgids])
        with conn.cursor() as cursor:
            yield cursor
