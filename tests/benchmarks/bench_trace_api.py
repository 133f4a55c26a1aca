"""The full trace over the API against MLflow's own single lookup, side by side on this machine.

- this product: ``GET /api/releases/NAME/`` (the whole chain, status, approvals, deployments) served by
  gunicorn with 2 workers on PostgreSQL, over the large set (10,000 releases, 100,000 runs, 500 endpoints,
  50,000 deployments), with a reader's API token;
- the anchor: a real ``mlflow server`` (2 workers) on a store of the same size (100,000 runs, 10,000 model
  versions), answering ``GET /api/2.0/mlflow/model-versions/get``; and its two calls a client makes to
  learn what we answer in one (the version, then its run).

Both are asked in turn, request by request, each on a fresh HTTP connection, for random names; the
figures are medians and 95th percentiles in ms, and the ratio to the anchor (goal: < 1.0).

Needs BENCH_DATABASE_URL (``postgres://postgres@127.0.0.1:5432/lineage_bench``): the database
``lineage_bench_trace`` is generated once and kept (delete it to start over); the MLflow store is kept
under var/bench/trace-mlflow. BENCH_TRACE_REQUESTS (default 400) requests of each kind.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = int(os.environ.get("BENCH_TRACE_REQUESTS", "400"))
STORE = ROOT / "var" / "bench" / "trace-mlflow"
RUNS, VERSIONS = 100_000, 10_000


def _database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if not url.startswith("postgres"):
        return ""
    base, _, _ = url.rpartition("/")
    return f"{base}/lineage_bench_trace"


def _settings_env(url: str, var_dir: Path = ROOT / "var" / "bench" / "trace") -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_MIGRATE_URL", "REDIS_URL", "DEBUG"):
        env.pop(name, None)
    env.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="lineage_site.settings",
        SECRET_KEY=env.get("SECRET_KEY", secrets.token_urlsafe(50)),
        ALLOWED_HOSTS="127.0.0.1",
        # TLS ends at the proxy in front of gunicorn, as in a deployment; the benchmark talks to gunicorn.
        SECURE_SSL_REDIRECT="0",
        LINEAGE_SIGNING_KEY_AUTOCREATE="1",
        LINEAGE_VAR_DIR=str(var_dir),
    )
    return env


def _prepare_database(url: str) -> None:
    """Create, migrate and fill the large set once (in a child process with the bench's settings)."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    code = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from releases.models import Release\n"
        "if not Release.objects.exists():\n"
        "    from tests.benchmarks.bench_pages import _generate_large\n"
        "    _generate_large()\n"
        "    from django.db import connection\n"
        "    connection.cursor().execute('ANALYZE')\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_settings_env(url), check=True)


def _token(url: str, var_dir: Path) -> str:
    code = (
        "import django; django.setup()\n"
        "from django.contrib.auth.models import User\n"
        "from audit.log import SystemActor\n"
        "from releases import services\n"
        "lead = User.objects.get(username='lead')\n"
        "import uuid\n"
        "_, raw = services.create_api_token(lead, name=f'bench-{uuid.uuid4().hex[:8]}', scopes=['read'], "
        "by=SystemActor('bench'))\n"
        "print(raw)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_settings_env(url, var_dir),
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _release_names(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM releases_release")]


def _mlflow_store() -> list[tuple[str, str]]:
    """The MLflow store of the same size, filled once; the (name, version) pairs it holds."""
    from tests import mlflow_store

    if not (STORE / "mlflow.db").exists():
        STORE.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        mlflow_store.fill(STORE / "mlflow.db", STORE / "artifacts", runs=RUNS, model_versions=VERSIONS)
        print(f"   filled the MLflow store: {time.monotonic() - started:.0f} s", flush=True)
    names = mlflow_store.model_names(VERSIONS)
    return [(names[v % len(names)], str(v // len(names) + 1)) for v in range(VERSIONS)]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int, path: str, process: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the server on port {port} did not answer within {timeout} s")


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def start_mlflow(store: Path, port: int, *, workers: int) -> subprocess.Popen[bytes]:
    """A real `mlflow server` on the SQLite store under ``store``, answering on ``port``."""
    from tests.mlflow_store import SERVER_ENV

    process = _start(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--default-artifact-root",
            str(store / "artifacts"),
        ],
        {**os.environ, **SERVER_ENV},
        store / "server.log",
    )
    try:
        _wait(port, "/health", process)
    except BaseException:
        _stop(process)
        raise
    return process


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[float, dict[str, Any]]:
    """One request on a fresh connection: (milliseconds, decoded JSON)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}: {body[:200]!r}")
    return elapsed, json.loads(body)


def _summary(label: str, times: list[float]) -> tuple[float, float]:
    median = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"   {label}: median {median:.1f} ms, p95 {p95:.1f} ms", flush=True)
    return median, p95


def main() -> None:
    url = _database_url()
    if not url:
        print("   skipped: set BENCH_DATABASE_URL=postgres://... (this benchmark measures PostgreSQL)", flush=True)
        return
    started = time.monotonic()
    _prepare_database(url)
    print(f"   large set ready in {url.rpartition('/')[2]} ({time.monotonic() - started:.0f} s)", flush=True)
    measure(url, ROOT / "var" / "bench" / "trace", anchor=_mlflow_store())


def measure(url: str, var_dir: Path, anchor: list[tuple[str, str]] | None) -> None:
    """Serve the database at ``url`` with gunicorn and time the full trace of random releases; beside the
    MLflow store's own lookups of the (name, version) pairs of ``anchor``, when given."""
    names = _release_names(url)
    token = _token(url, var_dir)
    logs = ROOT / "var" / "bench"
    ours_port, mlflow_port = _free_port(), _free_port()
    ours = _start(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "lineage_site.wsgi",
            "--bind",
            f"127.0.0.1:{ours_port}",
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        _settings_env(url, var_dir),
        logs / f"{var_dir.name}-gunicorn.log",
    )
    mlflow = None if anchor is None else start_mlflow(STORE, mlflow_port, workers=2)
    try:
        _wait(ours_port, "/api/releases/", ours)  # 401 without a token: the app answers
        picks = random.Random(42)
        auth = {"Authorization": f"Bearer {token}"}
        # Warm both: each worker's imports, connections and caches, as a running service has them.
        for _ in range(20):
            _get(ours_port, f"/api/releases/{picks.choice(names)}/", auth)
            if anchor is not None:
                name, version = picks.choice(anchor)
                _get(mlflow_port, f"/api/2.0/mlflow/model-versions/get?name={name}&version={version}")
        trace, single, pair, missing = [], [], [], []
        for _ in range(REQUESTS):
            elapsed, body = _get(ours_port, f"/api/releases/{picks.choice(names)}/", auth)
            assert body["lineage_digest"].startswith("sha256:")
            trace.append(elapsed)
            if anchor is not None:
                name, version = picks.choice(anchor)
                elapsed, body = _get(mlflow_port, f"/api/2.0/mlflow/model-versions/get?name={name}&version={version}")
                single.append(elapsed)
                run_id = body["model_version"]["run_id"]
                run_elapsed, _ = _get(mlflow_port, f"/api/2.0/mlflow/runs/get?run_id={run_id}")
                pair.append(elapsed + run_elapsed)
            conn_started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", ours_port, timeout=30)
            conn.request("GET", f"/api/releases/no-such-release-{picks.randrange(10**9)}/", headers=auth)
            assert conn.getresponse().status == 404
            missing.append((time.perf_counter() - conn_started) * 1000)
            conn.close()
        load = os.getloadavg()
        print(f"   {REQUESTS} requests of each kind, interleaved, fresh connections; load {load[0]:.2f}", flush=True)
        ours_median, ours_p95 = _summary("GET /api/releases/NAME/ (full trace)", trace)
        _summary("GET /api/releases/NAME/ of a release that does not exist (404)", missing)
        if anchor is not None:
            one_median, one_p95 = _summary("MLflow model-versions/get", single)
            two_median, _ = _summary("MLflow model-versions/get then runs/get", pair)
            print(
                f"   ratio to MLflow's single lookup: median {ours_median / one_median:.2f}, "
                f"p95 {ours_p95 / one_p95:.2f} (goal < 1.0); to its two calls: median {ours_median / two_median:.2f}",
                flush=True,
            )
    finally:
        _stop(ours)
        if mlflow is not None:
            _stop(mlflow)


if __name__ == "__main__":
    main()
