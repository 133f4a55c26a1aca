"""The servers the HTTP benchmarks start on loopback, and the data they serve.

- this product: the large set (bench_pages' generator) in a PostgreSQL database generated once and
  kept, served by gunicorn with production settings;
- the anchor: real ``mlflow server`` processes on SQLite stores filled straight with SQL (minutes of
  set-up, not hours through the API), among them the store of the same size as the large set, kept
  under var/bench/trace-mlflow.

Every server listens on 127.0.0.1 on a free port, in its own process group, so ``stop`` ends it and
the workers it forked.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from tests import mlflow_store

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOGS = ROOT / "var" / "bench"
# The MLflow store of the large set's size: 100,000 runs, 10,000 model versions.
TRACE_STORE = LOGS / "trace-mlflow"
TRACE_RUNS, TRACE_VERSIONS = 100_000, 10_000
# How long a server started here may take to answer (mlflow server on a busy machine takes minutes).
START_SECONDS = 240


def bench_database(name: str) -> str:
    """The URL of database ``name`` on BENCH_DATABASE_URL's PostgreSQL server, or "" when none is given."""
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if not url.startswith("postgres"):
        return ""
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def settings_env(url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """Production settings on database ``url`` (the caller's product variables left out), plus ``extra``."""
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
    env.update(extra)
    return env


def run_django(code: str, env: dict[str, str]) -> str:
    """Run ``code`` after django.setup() in a child process with these settings; its last line of output."""
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup()\n{code}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def prepare_database(url: str, env: dict[str, str]) -> None:
    """Create, migrate and fill the large set once (delete the database to start over)."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    run_django(
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from releases.models import Release\n"
        "if not Release.objects.exists():\n"
        "    from tests.benchmarks.bench_pages import _generate_large\n"
        "    _generate_large()\n"
        "    from django.db import connection\n"
        "    connection.cursor().execute('ANALYZE')\n",
        env,
    )


def api_token(env: dict[str, str]) -> str:
    """A new read-scoped API token of the large set's ML lead."""
    return run_django(
        "import uuid\n"
        "from django.contrib.auth.models import User\n"
        "from audit.log import SystemActor\n"
        "from releases import services\n"
        "_, raw = services.create_api_token(User.objects.get(username='lead'), name=f'bench-{uuid.uuid4().hex[:8]}', "
        "scopes=['read'], by=SystemActor('bench'))\n"
        "print(raw)\n",
        env,
    )


def release_names(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM releases_release")]


def model_version_keys(model_versions: int, model_prefix: str = "churn") -> list[tuple[str, str]]:
    """The (name, version) of each model version a filled store holds (``tests.mlflow_store.fill``)."""
    names = mlflow_store.model_names(model_versions, model_prefix)
    return [(names[v % len(names)], str(v // len(names) + 1)) for v in range(model_versions)]


def trace_mlflow_store() -> list[tuple[str, str]]:
    """The MLflow store of the large set's size, filled once; the (name, version) pairs it holds."""
    if not (TRACE_STORE / "mlflow.db").exists():
        started = time.monotonic()
        mlflow_store.fill(
            TRACE_STORE / "mlflow.db", TRACE_STORE / "artifacts", runs=TRACE_RUNS, model_versions=TRACE_VERSIONS
        )
        print(f"   filled the MLflow store: {time.monotonic() - started:.0f} s", flush=True)
    return model_version_keys(TRACE_VERSIONS)


def start(command: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own process group, its output in the file ``log`` under var/bench."""
    LOGS.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=(LOGS / log).open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def gunicorn(env: dict[str, str], port: int, *, workers: int, log: str) -> subprocess.Popen[bytes]:
    """The product as deployed: gunicorn's sync workers on the WSGI application."""
    return start(
        [
            str(BIN / "gunicorn"),
            "lineage_site.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env,
        log,
    )


def mlflow_server(store: Path, port: int, *, workers: int, log: str) -> subprocess.Popen[bytes]:
    """A real ``mlflow server`` on the SQLite store under ``store`` (without MLflow's job runner)."""
    return start(
        [
            str(BIN / "mlflow"),
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
        {**os.environ, **mlflow_store.SERVER_ENV},
        log,
    )


def celery_worker(env: dict[str, str], name: str, *, log: str) -> subprocess.Popen[bytes]:
    """A Celery worker taking one task at a time (one pool process), as ``make worker`` runs it without beat."""
    return start(
        [
            str(BIN / "celery"),
            "-A",
            "lineage_site",
            "worker",
            "--concurrency",
            "1",
            "--hostname",
            f"{name}@%h",
            "--loglevel",
            "warning",
        ],
        env,
        log,
    )
