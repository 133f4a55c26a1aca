"""Real external systems for the sync tests: an `mlflow server` on loopback and git repositories in tmp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable
from tests.mlflow_store import SERVER_ENV as MLFLOW_SERVER_ENV
from tests.processes import free_port, stop, wait_until_answering

VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def start_mlflow_server(
    root: Path, *, timeout: float = 240, args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """An `mlflow server` with a SQLite store under ``root``; returns (process, tracking URI).

    ``args`` are added to its command line, ``env`` to its environment.
    """
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
            *args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **MLFLOW_SERVER_ENV, **(env or {})},
    )
    uri = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{uri}/health", process, timeout=timeout, log=root / "server.log")
    return process, uri


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


# Servers that require credentials -------------------------------------------------------------------


@dataclass
class AuthMlflow:
    """A real `mlflow server --app-name basic-auth`: its users, and the bearer tokens its auth function takes."""

    uri: str
    users: dict[str, str]  # username -> password
    tokens: dict[str, str]  # username -> token

    def rest(self, username: str) -> MlflowRest:
        return MlflowRest(self.uri, (username, self.users[username]))


@dataclass
class MlflowRest:
    """MLflow's REST API with Basic authentication: how the tests write to the server, independent of the
    product's client and of this process's MLFLOW_TRACKING_* variables."""

    uri: str
    auth: tuple[str, str]

    def call(self, method: str, path: str, **body: Any) -> Any:
        import requests

        url = f"{self.uri}/api/2.0/mlflow/{path}"
        if method == "GET":
            response = requests.get(url, params=body, auth=self.auth, timeout=30)
        else:
            response = requests.request(method, url, json=body, auth=self.auth, timeout=30)
        response.raise_for_status()
        return response.json()

    def log_run(self, experiment: str, *, name: str = "churn-v42", tags: dict[str, str] | None = None) -> str:
        found = requests_json_or_none(self, "experiments/get-by-name", experiment_name=experiment)
        experiment_id = (
            found["experiment"]["experiment_id"]
            if found
            else self.call("POST", "experiments/create", name=experiment)["experiment_id"]
        )
        run = self.call(
            "POST",
            "runs/create",
            experiment_id=experiment_id,
            run_name=name,
            start_time=int(time.time() * 1000),
            tags=[{"key": k, "value": v} for k, v in (tags or {}).items()],
        )
        return str(run["run"]["info"]["run_id"])


def requests_json_or_none(rest: MlflowRest, path: str, **params: str) -> Any:
    import requests

    response = requests.get(f"{rest.uri}/api/2.0/mlflow/{path}", params=params, auth=rest.auth, timeout=30)
    return response.json() if response.status_code == 200 else None


@pytest.fixture(scope="session")
def auth_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthMlflow]:
    """One basic-auth server for the session: an administrator, a second user (bob) it creates, and a token each.

    MLflow's basic-auth app keeps its users in a database of its own, configured by the ini file that
    MLFLOW_AUTH_CONFIG_PATH names; its ``authorization_function`` is tests/integration/mlflow_auth.py,
    which takes a bearer token for a user as well as MLflow's own Basic authentication.
    """
    try:
        import flask_wtf  # noqa: F401  (the basic-auth app's own dependency: mlflow[auth])
    except ImportError:
        unavailable("mlflow's basic-auth app needs Flask-WTF (pip install -r requirements-dev.txt)")
    root = tmp_path_factory.mktemp("mlflow-auth")
    users = {"admin": "admin-" + uuid.uuid4().hex, "bob": "bob-" + uuid.uuid4().hex}
    tokens = {"admin": "tok-" + uuid.uuid4().hex, "bob": "tok-" + uuid.uuid4().hex}
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        # A user sees only what is theirs or granted: two users' syncs of one server differ.
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        "admin_username = admin\n"
        f"admin_password = {users['admin']}\n"
        "authorization_function = tests.integration.mlflow_auth:token_or_basic\n"
    )
    process, uri = start_mlflow_server(
        root,
        args=("--app-name", "basic-auth"),
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
            "LINEAGE_TEST_MLFLOW_TOKENS": json.dumps({token: user for user, token in tokens.items()}),
            "PYTHONPATH": str(ROOT),
        },
    )
    try:
        MlflowRest(uri, ("admin", users["admin"])).call("POST", "users/create", username="bob", password=users["bob"])
        yield AuthMlflow(uri=uri, users=users, tokens=tokens)
    finally:
        stop(process)


@dataclass
class GitHttp:
    """`git http-backend` behind a loopback HTTP server that wants Basic authentication with a token."""

    root: Path
    port: int
    token: str
    seen_users: list[str]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@pytest.fixture
def git_http(tmp_path: Path) -> Iterator[GitHttp]:
    """Serves the repositories under ``tmp_path`` (``/churn`` is the ``git_repo`` fixture's) to a right token only.

    A forge's rule: any user name, the token as the password. A request without it, or with another, gets
    401 and ``WWW-Authenticate: Basic``, as from GitHub or GitLab.
    """
    import base64
    import http.server
    import threading

    token = "ghp_" + uuid.uuid4().hex
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            header = self.headers.get("Authorization", "")
            user, _, secret = (
                base64.b64decode(header[6:]).decode(errors="replace").partition(":")
                if header.startswith("Basic ")
                else ("", "", "")
            )
            if secret != token:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            seen.append(user)
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            cgi = subprocess.run(
                ["git", "http-backend"],
                input=body,
                capture_output=True,
                env={
                    **GIT_ENV,
                    "GIT_PROJECT_ROOT": str(tmp_path),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "REMOTE_USER": user,
                    "REMOTE_ADDR": "127.0.0.1",
                },
                check=False,
            )
            head, _, payload = cgi.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = cgi.stdout.partition(b"\n\n")
            headers = [line.split(":", 1) for line in head.decode().splitlines() if ":" in line]
            status = next((v.strip() for k, v in headers if k.lower() == "status"), "200 OK")
            self.send_response(int(status.split()[0]))
            for key, value in headers:
                if key.lower() != "status":
                    self.send_header(key, value.strip())
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield GitHttp(root=tmp_path, port=server.server_address[1], token=token, seen_users=seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
