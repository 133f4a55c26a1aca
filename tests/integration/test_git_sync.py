"""Git sync against real repositories made with the git CLI."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.log import SystemActor
from audit.models import AuditEvent
from releases import lineage, services
from releases.models import Commit, GitTag, SyncState
from releases.sync import git as git_sync
from releases.sync import sources
from releases.sync.state import SourceUnavailable
from tests.integration.conftest import GitRepo

pytestmark = pytest.mark.django_db

CLI = SystemActor("test")


def test_first_sync_records_commits_and_tags_and_second_changes_nothing(git_repo: GitRepo) -> None:
    first = git_repo.commit("Initial model code")
    second = git_repo.commit("Use label mapping v2")
    git_repo.tag("model-churn-v41", first, annotated=True)
    git_repo.tag("model-churn-v42", second)
    state = services.add_git_repository(name="churn", url=str(git_repo.path), by=CLI)

    result = sources.sync_state(state)

    assert (result.created, result.updated) == (4, 0)
    commit = Commit.objects.get(sha=second)
    assert commit.parents == [first]
    assert commit.author_email == "dana@example.com"
    assert commit.message == "Use label mapping v2"
    assert dict(GitTag.objects.values_list("name", "commit__sha")) == {
        "model-churn-v41": first,
        "model-churn-v42": second,
    }
    state.refresh_from_db()
    assert (state.created_count, state.last_error, state.last_success_at is not None) == (4, "", True)
    events = list(AuditEvent.objects.filter(object_type="git_tag").values_list("action", flat=True))
    assert events == ["git_tag.created", "git_tag.created"]
    assert AuditEvent.objects.filter(action="sync.git.completed", object_key="churn").count() == 1

    audit_before = AuditEvent.objects.count()
    again = sources.sync_state(state)

    assert (again.created, again.updated) == (0, 0)
    assert Commit.objects.count() == 2
    assert AuditEvent.objects.count() == audit_before


def test_new_commits_since_last_sync_are_added(git_repo: GitRepo) -> None:
    git_repo.commit("one")
    state = services.add_git_repository(name="churn", url=str(git_repo.path), by=CLI)
    sources.sync_state(state)
    git_repo.git("checkout", "--quiet", "-b", "feature")
    on_branch = git_repo.commit("on a branch")
    on_main_later = None
    git_repo.git("checkout", "--quiet", "main")
    on_main_later = git_repo.commit("two")

    result = sources.sync_state(state)

    assert result.details["commits created"] == 2
    assert set(Commit.objects.values_list("sha", flat=True)) >= {on_branch, on_main_later}


def test_moved_tag_is_flagged_and_the_release_keeps_its_commit(git_repo: GitRepo, release_manager: User) -> None:
    original = git_repo.commit("v42 code")
    git_repo.tag("model-churn-v42", original)
    state = services.add_git_repository(name="churn", url=str(git_repo.path), by=CLI)
    sources.sync_state(state)
    other = git_repo.commit("hotfix after release")
    git_repo.tag("model-churn-v42", other, force=True)

    result = sources.sync_state(state)

    tag = GitTag.objects.get(name="model-churn-v42")
    assert tag.commit.sha == original
    assert tag.moved_to_sha == other
    assert any("moved" in w for w in result.warnings)
    event = AuditEvent.objects.get(action="git_tag.moved")
    assert event.new == {"sha": original, "moved_to": other}
    state.refresh_from_db()
    assert any("model-churn-v42 moved" in w for w in state.warnings)


def test_moved_tag_warns_on_the_release_that_used_it(git_repo: GitRepo, release_manager: User) -> None:
    original = git_repo.commit("v42 code")
    git_repo.tag("model-churn-v42", original)
    state = services.add_git_repository(name="churn", url=str(git_repo.path), by=CLI)
    sources.sync_state(state)
    server = services.add_mlflow_server(name="mlflow", tracking_uri="http://127.0.0.1:9", by=CLI).server
    services.record_run(server, services.RunData(run_id="r42", commit_sha=original), by=CLI)
    services.register_model_version(
        server, services.ModelVersionData(name="churn-model", version=42, source_run_id="r42"), by=CLI
    )
    services.create_release(
        name="churn-v42", model_version="churn-model/42", git_tag="model-churn-v42", by=release_manager
    )
    git_repo.tag("model-churn-v42", git_repo.commit("moved"), force=True)

    sources.sync_state(state)

    trace = lineage.trace("churn-v42")
    assert trace.commit is not None
    assert trace.commit.sha == original
    assert any("moved" in w for w in trace.warnings()["code"])


def test_unreachable_repository_records_the_error_and_keeps_what_was_synced(git_repo: GitRepo, tmp_path: Any) -> None:
    git_repo.commit("one")
    state = services.add_git_repository(name="churn", url=str(git_repo.path), by=CLI)
    sources.sync_state(state)
    git_repo.path.rename(tmp_path / "gone")

    with pytest.raises(SourceUnavailable, match="cannot fetch"):
        sources.sync_state(state)

    state.refresh_from_db()
    assert "cannot fetch from" in state.last_error
    assert state.failures_in_a_row == 1
    assert Commit.objects.count() == 1


def test_sync_command_prints_changes_and_exits_2_on_failure(git_repo: GitRepo, capsys: Any) -> None:
    git_repo.commit("one")
    call_command("add_git_repository", "churn", str(git_repo.path))
    call_command("add_git_repository", "broken", "/nonexistent/repo.git")

    with pytest.raises(CommandError) as failed:
        call_command("sync")

    out = capsys.readouterr()
    assert "git churn: 1 commits created" in out.out
    assert "git broken: cannot clone /nonexistent/repo.git" in out.err
    assert failed.value.returncode == 2
    assert SyncState.objects.get(repository__name="broken").last_error.startswith("cannot clone")


def test_sync_of_an_unknown_source_is_a_one_line_error() -> None:
    with pytest.raises(CommandError, match="no Git repository or MLflow server named 'nope'") as failed:
        call_command("sync", "--source", "nope")
    assert failed.value.returncode == 2


def test_adding_a_repository_with_a_bad_name_is_a_one_line_error() -> None:
    with pytest.raises(CommandError, match="repository name 'bad name' is not valid") as failed:
        call_command("add_git_repository", "bad name", "/tmp/x")
    assert failed.value.returncode == 2


def test_sync_interval_is_set_through_the_service_and_audited() -> None:
    from audit.models import AuditEvent

    call_command("add_git_repository", "churn", "/srv/git/churn.git", "--interval", "600")
    state = SyncState.objects.get(repository__name="churn")
    assert state.interval_seconds == 600
    event = AuditEvent.objects.get(action="sync.interval_changed")
    assert (event.object_key, event.old, event.new) == (
        "churn",
        {"interval_seconds": 300},
        {"interval_seconds": 600},
    )
    with pytest.raises(CommandError, match="the sync interval must be at least 10 seconds, not 5") as refused:
        call_command("add_mlflow_server", "mlflow", "http://127.0.0.1:5000", "--interval", "5")
    assert refused.value.returncode == 2
    assert not SyncState.objects.filter(server__name="mlflow").exists(), "a refused source is not half-added"
    # Nothing but the evidence of the refused attempt.
    assert list(AuditEvent.objects.filter(object_key="mlflow").values_list("action", flat=True)) == [
        "tracking_server.add_refused"
    ]


def _raw_commit(
    repo: GitRepo, message: bytes, parents: list[str], author: bytes = b"B\xc3\xa9a <bea@example.com>"
) -> str:
    """A commit object written as bytes, as another tool (or an old repository) may have made it."""
    tree = repo.git("write-tree")
    header = b"tree " + tree.encode() + b"\n" + b"".join(b"parent " + p.encode() + b"\n" for p in parents)
    header += b"author " + author + b" 1700000000 +0100\ncommitter " + author + b" 1700000000 +0100\n\n"
    done = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin", "--literally"],
        cwd=repo.path,
        input=header + message,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().strip()


@pytest.mark.parametrize("read_bytes", [7, 1 << 20], ids=["chunks cut anywhere", "one chunk"])
def test_awkward_commits_are_stored_exactly_however_the_stream_is_cut(
    git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch, read_bytes: int
) -> None:
    # Cut into 7-byte reads, the stream breaks inside fields, commits and UTF-8 characters alike.
    monkeypatch.setattr(git_sync, "READ_BYTES", read_bytes)
    first = git_repo.commit("plain")
    separators = _raw_commit(git_repo, "tab\there\x1e\x1f back\\slash\r\nCRLF é ✓\n\n".encode(), [first])
    side = _raw_commit(git_repo, b"side\n", [first])
    merge = _raw_commit(git_repo, b"merge with a nul\x00 cut here\n", [separators, side])
    latin = _raw_commit(git_repo, b"caf\xe9 in latin-1\n", [merge], author=b"Jos\xe9 <jose@example.com>")
    git_repo.git("update-ref", "refs/heads/main", latin)
    state = services.add_git_repository(name="churn", url=str(git_repo.path), by=CLI)

    result = sources.sync_state(state)

    assert result.details["commits created"] == 5
    stored = {c.sha: c for c in Commit.objects.all()}
    assert set(stored) == {first, separators, side, merge, latin}
    assert stored[separators].message == "tab\there\x1e\x1f back\\slash\r\nCRLF é ✓"
    assert (stored[separators].author_name, stored[separators].parents) == ("Béa", [first])
    # git itself prints a message up to its first NUL.
    assert (stored[merge].message, stored[merge].parents) == ("merge with a nul", [separators, side])
    assert stored[latin].message == "caf\ufffd in latin-1"
    assert stored[latin].author_name == "Jos\ufffd"
    assert stored[latin].authored_at.isoformat() == "2023-11-14T22:13:20+00:00"
    assert stored[first].parents == []
