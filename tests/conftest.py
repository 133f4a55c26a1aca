"""Personas and shared fixtures. Tests use the real components; a missing one skips (or fails in CI)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from releases.roles import AUDITORS, ML_LEADS, ON_CALL, RELEASE_MANAGERS

PASSWORD = "correct horse battery staple"


def unavailable(reason: str) -> None:
    """Skip for a missing component; in CI (LINEAGE_REQUIRE_SERVICES=1) that is a failure instead."""
    if os.environ.get("LINEAGE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required component missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres(db: Any) -> None:
    if connection.vendor != "postgresql":
        unavailable("needs PostgreSQL: set DATABASE_URL=postgres://...")


def _person(username: str, *roles: str, full_name: str = "") -> User:
    first, _, last = full_name.partition(" ")
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, first_name=first, last_name=last)
    user.groups.add(*Group.objects.filter(name__in=roles))
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
