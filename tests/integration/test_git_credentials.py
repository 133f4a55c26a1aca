"""Git servers that require a credential: `git http-backend` behind a loopback server that wants a token,
an sshd on loopback when the machine has one, and ssh's local checks (without a server) always.

The token reaches git through its environment only: never a command line, never the mirror's config.
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from audit.log import SystemActor
from releases import services
from releases.models import Commit, SyncState
from releases.models.credentials import GitCredentials
from releases.sync import sources
from releases.sync.git import mirror_path
from releases.sync.state import SourceUnavailable
from tests.conftest import unavailable
from tests.integration.conftest import GitHttp, GitRepo
from tests.integration.test_mlflow_credentials import shown_error, sync_page
from tests.processes import free_port

pytestmark = pytest.mark.django_db

CLI = SystemActor("test")


def add(url: str, name: str = "churn", **credentials: str) -> SyncState:
    return services.add_git_repository(name=name, url=url, credentials=GitCredentials(**credentials), by=CLI)


# HTTPS token ------------------------------------------------------------------------------------------


def test_a_token_from_a_variable_clones_and_fetches_and_is_written_nowhere(
    git_repo: GitRepo, git_http: GitHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = git_repo.commit("one")
    monkeypatch.setenv("GIT_CHURN_TOKEN", git_http.token)
    state = add(git_http.url("churn"), token_env="GIT_CHURN_TOKEN")

    sources.sync_state(state)
    second = git_repo.commit("two")
    sources.sync_state(state)

    assert set(Commit.objects.values_list("sha", flat=True)) == {first, second}
    assert len(git_http.seen_users) >= 2
    assert set(git_http.seen_users) == {"x-access-token"}
    assert state.repository is not None
    mirror = mirror_path(state.repository)
    for written in [mirror / "config", *mirror.rglob("*")]:
        if written.is_file():
            assert git_http.token.encode() not in written.read_bytes(), written


def test_the_user_name_in_the_url_goes_with_the_token(
    git_repo: GitRepo, git_http: GitHttp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo.commit("one")
    token_file = tmp_path / "token"
    token_file.write_text(git_http.token + "\n")
    state = add(git_http.url("churn").replace("://", "://oauth2@"), token_file=str(token_file))

    sources.sync_state(state)

    assert set(git_http.seen_users) == {"oauth2"}


def test_a_wrong_token_is_one_line_on_the_sync_page_naming_the_source(
    git_repo: GitRepo, git_http: GitHttp, monkeypatch: pytest.MonkeyPatch, oncall: User
) -> None:
    git_repo.commit("one")
    monkeypatch.setenv("GIT_CHURN_TOKEN", "ghp_wrong")
    state = add(git_http.url("churn"), token_env="GIT_CHURN_TOKEN")

    with pytest.raises(SourceUnavailable):
        sources.sync_state(state)

    expected = (
        "authentication failed for Git repository churn: check its credential (HTTPS token from $GIT_CHURN_TOKEN)"
    )
    state.refresh_from_db()
    assert state.last_error == expected
    page = sync_page(oncall)
    assert shown_error(page, "churn") == expected
    assert "ghp_wrong" not in page
    assert not Commit.objects.exists()


def test_a_repository_that_asks_for_a_credential_none_is_set_for_says_so(
    git_repo: GitRepo, git_http: GitHttp, oncall: User
) -> None:
    git_repo.commit("one")
    state = add(git_http.url("churn"))

    with pytest.raises(SourceUnavailable):
        sources.sync_state(state)

    assert shown_error(sync_page(oncall), "churn") == (
        "authentication failed for Git repository churn: check its credential (none is set)"
    )


def test_a_token_that_cannot_be_read_is_one_line_and_git_is_not_run(
    git_http: GitHttp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, oncall: User
) -> None:
    monkeypatch.setenv("GIT_TWO_LINES", "ghp_one\nX-Injected: yes")
    two_lines = add(git_http.url("churn"), name="two-lines", token_env="GIT_TWO_LINES")
    folder = add(git_http.url("churn"), name="folder", token_file=str(tmp_path))

    for state in (two_lines, folder):
        with pytest.raises(SourceUnavailable):
            sources.sync_state(state)

    page = sync_page(oncall)
    assert shown_error(page, "two-lines") == (
        "Git repository two-lines: its HTTPS token from $GIT_TWO_LINES holds a line break or a control character"
    )
    assert (
        shown_error(page, "folder")
        == f"Git repository folder: its HTTPS token file {tmp_path} is a directory, not a file"
    )
    assert git_http.seen_users == []


# SSH: the checks made before ssh runs, and the command git is given ----------------------------------


def ssh_keys(where: Path) -> tuple[Path, Path]:
    """A new ed25519 key pair (mode 600, as ssh-keygen writes it) and an empty known_hosts file."""
    key = where / f"id_{uuid.uuid4().hex[:6]}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known_hosts = where / "known_hosts"
    known_hosts.touch()
    return key, known_hosts


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    if not shutil.which("ssh-keygen"):
        unavailable("ssh-keygen is not installed (Debian: openssh-client)")
    return ssh_keys(tmp_path)


def test_an_ssh_key_other_users_may_read_or_a_missing_known_hosts_is_one_line(
    keys: tuple[Path, Path], tmp_path: Path, oncall: User
) -> None:
    key, known_hosts = keys
    url = "ssh://git@git.example.invalid/churn.git"
    open_key = tmp_path / "open_key"
    shutil.copy(key, open_key)
    open_key.chmod(0o644)
    add(url, name="open-key", ssh_key_file=str(open_key), known_hosts_file=str(known_hosts))
    add(url, name="no-hosts", ssh_key_file=str(key), known_hosts_file=str(tmp_path / "nowhere"))
    add(url, name="no-key", ssh_key_file=str(tmp_path / "absent"), known_hosts_file=str(known_hosts))

    for state in SyncState.objects.all():
        with pytest.raises(SourceUnavailable):
            sources.sync_state(state)

    page = sync_page(oncall)
    if os.geteuid() == open_key.stat().st_uid:  # ssh's rule concerns the keys of the user it runs as
        assert shown_error(page, "open-key") == (
            f"Git repository open-key: its SSH key file {open_key} may be read by other users (mode 0644) "
            f"and ssh refuses such a key: chmod 600 {open_key}"
        )
    assert shown_error(page, "no-hosts") == (
        f"Git repository no-hosts: its known_hosts file {tmp_path / 'nowhere'} does not exist, "
        "so the server's host key cannot be checked"
    )
    assert (
        shown_error(page, "no-key") == f"Git repository no-key: its SSH key file {tmp_path / 'absent'} does not exist"
    )


def test_git_runs_ssh_with_the_key_and_strict_checking_against_the_sources_known_hosts(
    keys: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, oncall: User
) -> None:
    """A stand-in ssh records what git runs it with, and answers as ssh does for a host it does not know."""
    key, known_hosts = keys
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    recorded = tmp_path / "ssh-args"
    fake = bin_dir / "ssh"
    fake.write_text(
        f'#!/bin/sh\nfor arg in "$@"; do printf "%s\\n" "$arg"; done > {recorded}\n'
        'echo "No ED25519 host key is known for git.example.invalid and you have requested strict checking." >&2\n'
        'echo "Host key verification failed." >&2\nexit 255\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GIT_SSH", "/bin/false")  # the worker's own ssh setting does not override the source's
    state = add("git@git.example.invalid:churn.git", ssh_key_file=str(key), known_hosts_file=str(known_hosts))

    with pytest.raises(SourceUnavailable):
        sources.sync_state(state)

    args = recorded.read_text().splitlines()
    assert args[:2] == ["-i", str(key)]
    options = {args[i + 1] for i, arg in enumerate(args) if arg == "-o"}
    assert {
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        f'UserKnownHostsFile="{known_hosts}"',
        "GlobalKnownHostsFile=/dev/null",
    } <= options
    assert "git@git.example.invalid" in args
    assert shown_error(sync_page(oncall), "churn") == (
        f"host key verification failed for Git repository churn: the server's SSH host key is not in {known_hosts}, "
        "or differs from the one there; add it once its fingerprint is checked"
    )


# SSH against a real sshd on loopback (skipped where the machine has none) -----------------------------


@dataclass
class Sshd:
    port: int
    host_key_line: str
    authorized_key: Path
    user: str

    def url(self, path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"


def _sshd_program() -> str:
    found = shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None
    )
    if not found:
        unavailable("sshd is not installed (Debian: openssh-server); the SSH tests need one on loopback")
    return str(Path(found).resolve())  # sshd re-executes itself and needs its absolute path


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """An sshd of our own on a free loopback port, with its own host key and one authorized client key."""
    program = _sshd_program()
    home = tmp_path / "sshd"
    home.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "host_key")], check=True)
    client_key, _ = ssh_keys(home)
    (home / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    port = free_port()
    (home / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home / 'host_key'}\nPidFile {home / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nLogLevel ERROR\n"
    )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("sshd")
        except KeyError:
            unavailable("sshd run as root needs its privilege separation user sshd (Debian's openssh-server adds it)")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # and its privilege separation directory
    log = (home / "sshd.log").open("wb")
    process = subprocess.Popen([program, "-D", "-e", "-f", str(home / "sshd_config")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"sshd exited: {(home / 'sshd.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not listen within 20 s")
                time.sleep(0.1)
        host_key = (home / "host_key.pub").read_text().split()
        yield Sshd(
            port=port,
            host_key_line=f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n",
            authorized_key=client_key,
            user=getpass.getuser(),
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_right_key_with_the_servers_host_key_known_syncs_over_ssh(
    sshd: Sshd, git_repo: GitRepo, tmp_path: Path
) -> None:
    sha = git_repo.commit("one")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.host_key_line)
    state = add(sshd.url(git_repo.path), ssh_key_file=str(sshd.authorized_key), known_hosts_file=str(known_hosts))

    sources.sync_state(state)
    second = git_repo.commit("two")
    sources.sync_state(state)

    assert set(Commit.objects.values_list("sha", flat=True)) == {sha, second}


def test_an_unknown_host_key_and_a_key_the_server_refuses_are_one_line_each(
    sshd: Sshd, git_repo: GitRepo, tmp_path: Path, oncall: User
) -> None:
    git_repo.commit("one")
    stranger, _ = ssh_keys(tmp_path)
    unknown = tmp_path / "unknown_hosts"
    unknown.write_text("")
    known = tmp_path / "known_hosts"
    known.write_text(sshd.host_key_line)
    url = sshd.url(git_repo.path)
    add(url, name="unknown-host", ssh_key_file=str(sshd.authorized_key), known_hosts_file=str(unknown))
    add(url, name="refused-key", ssh_key_file=str(stranger), known_hosts_file=str(known))

    for state in SyncState.objects.all():
        with pytest.raises(SourceUnavailable):
            sources.sync_state(state)

    page = sync_page(oncall)
    assert shown_error(page, "unknown-host") == (
        "host key verification failed for Git repository unknown-host: the server's SSH host key is not in "
        f"{unknown}, or differs from the one there; add it once its fingerprint is checked"
    )
    assert shown_error(page, "refused-key") == (
        "authentication failed for Git repository refused-key: check its credential "
        f"(SSH key file {stranger}, known hosts from {known})"
    )
