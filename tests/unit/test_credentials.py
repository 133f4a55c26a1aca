"""Secrets named, never stored (releases/credentials.py): read from NAME_FILE or NAME where they are needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from releases import credentials

NAME = "LINEAGE_WEBHOOK_SECRET_OPS"
PREFIX = "LINEAGE_WEBHOOK_SECRET_"


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    monkeypatch.delenv(f"{NAME}_FILE", raising=False)


def test_the_file_its_variable_names_comes_before_the_variable(monkeypatch, tmp_path: Path):
    monkeypatch.setenv(NAME, "from the environment")
    assert credentials.resolve(NAME) == "from the environment"
    assert credentials.where(NAME) == f"{NAME}, set in the environment"
    secret = tmp_path / "ops"
    secret.write_text("from the file\n")
    monkeypatch.setenv(f"{NAME}_FILE", str(secret))
    assert credentials.resolve(NAME) == "from the file"
    assert credentials.where(NAME) == f"{NAME}, read from the file {NAME}_FILE names"


def test_where_never_says_the_value_or_the_path(monkeypatch, tmp_path: Path):
    assert credentials.where(NAME) == (
        f"{NAME}, not set in this process (set it, or {NAME}_FILE, where the workers run)"
    )
    monkeypatch.setenv(f"{NAME}_FILE", str(tmp_path / "hidden-name"))
    assert "hidden-name" not in credentials.where(NAME)
    assert credentials.where("") == "none"


def test_a_secret_that_cannot_be_read_says_why_in_one_line(monkeypatch, tmp_path: Path):
    with pytest.raises(credentials.SecretUnavailable, match=f"^the secret {NAME} is not set in this process's"):
        credentials.resolve(NAME)
    monkeypatch.setenv(f"{NAME}_FILE", str(tmp_path / "missing"))
    with pytest.raises(credentials.SecretUnavailable, match=r"cannot be read: No such file or directory$"):
        credentials.resolve(NAME)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    monkeypatch.setenv(f"{NAME}_FILE", str(binary))
    with pytest.raises(credentials.SecretUnavailable, match=r"cannot be read: UnicodeDecodeError$"):
        credentials.resolve(NAME)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (NAME, ""),
        ("LINEAGE_WEBHOOK_SECRET_OPS_2", ""),
        ("SECRET_KEY", "must be named LINEAGE_WEBHOOK_SECRET_<SOMETHING>"),
        (PREFIX, "must be named LINEAGE_WEBHOOK_SECRET_<SOMETHING>"),
        ("lineage_webhook_secret_ops", "capitals, digits and _"),
        (f"{NAME}_FILE", f"name the variable itself ({NAME})"),
        ("LINEAGE_WEBHOOK_SECRET_" + "X" * 100, "at most 100"),
        ("", "capitals, digits and _"),
    ],
)
def test_only_a_variable_with_the_prefix_may_name_a_secret(name, problem):
    found = credentials.name_problem(name, prefix=PREFIX)
    assert (problem in found) if problem else found == ""
