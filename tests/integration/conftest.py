"""Real external systems for the sync tests: an `mlflow server` on loopback and git repositories in tmp."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow_server(root: Path, *, timeout: float = 240) -> tuple[subprocess.Popen[bytes], str]:
    """An `mlflow server` with a SQLite store under ``root``; returns (process, tracking URI)."""
    executable = VENV_BIN / "mlflow"
    if not executable.exists() and not shutil.which("mlflow"):
        unavailable("the mlflow command is not installed (pip install -r requirements-dev.txt)")
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(executable if executable.exists() else "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--default-artifact-root",
            str(root / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return process, uri
        except OSError:
            time.sleep(0.3)
    stop(process)
    pytest.fail(f"mlflow server did not answer within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the session (it takes many seconds to start); tests use unique names in it."""
    process, uri = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    yield uri
    stop(process)


@pytest.fixture
def uid() -> str:
    """A short unique, lowercase word: keeps names of different tests apart on the shared server."""
    return "t" + uuid.uuid4().hex[:8]


@pytest.fixture
def mlflow_client(mlflow_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Dana Dev",
    "GIT_AUTHOR_EMAIL": "dana@example.com",
    "GIT_COMMITTER_NAME": "Dana Dev",
    "GIT_COMMITTER_EMAIL": "dana@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass
class GitRepo:
    """A real repository made with the git CLI."""

    path: Path

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.path, env=GIT_ENV, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def commit(self, message: str, filename: str = "train.py", content: str | None = None) -> str:
        (self.path / filename).write_text(content if content is not None else f"# {message}\n{uuid.uuid4()}\n")
        self.git("add", filename)
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD")

    def tag(self, name: str, sha: str, *, force: bool = False, annotated: bool = False) -> None:
        args = ["tag", *(["-f"] if force else []), *(["-a", "-m", name] if annotated else []), name, sha]
        self.git(*args)


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    path = tmp_path / "churn"
    path.mkdir()
    repo = GitRepo(path)
    repo.git("init", "--quiet", "--initial-branch=main")
    return repo


@pytest.fixture(autouse=True)
def _git_cache(settings: Any, tmp_path: Path) -> None:
    settings.LINEAGE_GIT_CACHE_DIR = tmp_path / "git-cache"
