"""Personas and shared fixtures. Tests use the real components; a missing one skips (or fails in CI)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pgtrigger
import pytest
from django.contrib.auth.models import Group, User
from django.core.management.commands import flush
from django.db import connection

from releases.roles import AUDITORS, ML_LEADS, ON_CALL, RELEASE_MANAGERS

PASSWORD = "correct horse battery staple"


def unavailable(reason: str) -> None:
    """Skip for a missing component; in CI (LINEAGE_REQUIRE_SERVICES=1) that is a failure instead."""
    if os.environ.get("LINEAGE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required component missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def _flush_between_transactional_tests() -> Iterator[None]:
    """Let the test runner's flush empty the audit table, which PostgreSQL otherwise refuses to TRUNCATE.

    Only the flush command is exempt; the tests themselves still meet every trigger.
    """
    original = flush.Command.handle

    def handle(self: flush.Command, *args: Any, **options: Any) -> None:
        with pgtrigger.ignore("audit.AuditEvent:audit_no_truncate"):
            original(self, *args, **options)

    flush.Command.handle = handle  # type: ignore[method-assign]
    yield
    flush.Command.handle = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # Real hashing costs ~0.3 s a password; the tests check signatures, not key stretching.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _checkpoint_log(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test appends its signed checkpoints to its own file, never to the working copy's var/."""
    settings.LINEAGE_CHECKPOINT_LOG = tmp_path_factory.mktemp("checkpoints") / "checkpoints.log"


@pytest.fixture(autouse=True)
def _celery_eager() -> Iterator[None]:
    """Run tasks in-process even when REDIS_URL is set; the worker test starts a real worker itself."""
    from lineage_site.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def postgres(db: Any) -> None:
    if connection.vendor != "postgresql":
        unavailable("needs PostgreSQL: set DATABASE_URL=postgres://...")


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
