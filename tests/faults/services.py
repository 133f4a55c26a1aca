"""The fault campaign's own services: a PostgreSQL cluster, a Redis server, Celery workers and a web server.

Each listens on a free loopback port and lives in a temporary directory, so a test may kill and restart
it without touching the PostgreSQL and Redis the rest of the suite (and other people) share. Every
wait is bounded; every process is killed and every directory removed by whoever started it.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.clean_environment import product_variables
from tests.conftest import unavailable
from tests.processes import free_port, stop, wait_until_answering

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# What names the services under test in the caller's environment: never passed to a process started here.
_CALLERS = {"DATABASE_URL", "DATABASE_MIGRATE_URL", "REDIS_URL", "TEST_DATABASE_NAME", "DJANGO_SETTINGS_MODULE"}
OWNER, APP = "lineage_owner", "lineage_app"


def wait_until(what: str, ready: Callable[[], Any], *, timeout: float, every: float = 0.1) -> Any:
    """Poll ``ready`` until it returns something true, and return that; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else f"({path} was not written)"


# PostgreSQL ----------------------------------------------------------------------------------------------


def _postgres_bindir() -> Path:
    """Where initdb and pg_ctl are: PATH's, else the newest Debian/Ubuntu server package's."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        unavailable("needs the PostgreSQL server programs (initdb, pg_ctl): apt-get install postgresql")
    return Path(found[-1]).parent


class PostgresCluster:
    """A PostgreSQL cluster of its own (initdb in a temporary directory), trust authentication on loopback.

    initdb refuses to run as root, so as root every server program runs as the ``postgres`` user, which
    then owns the directory. fsync is off: a crash here is the server's (``pg_ctl stop -m immediate``),
    not the machine's, so the WAL in the page cache is what recovery replays, as after a real crash.
    """

    def __init__(self) -> None:
        self.bindir = _postgres_bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="lineage-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                self.remove()
                unavailable("initdb cannot run as root and there is no postgres user to run it as")
            os.chown(self.root, pwd.getpwnam("postgres").pw_uid, -1)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            [*self._as_postgres, str(self.bindir / program), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"{program} {' '.join(args)} failed: {done.stdout}{done.stderr}\n{tail(self.log)}")

    def create(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()
        self.sql(
            f"CREATE ROLE {OWNER} LOGIN CREATEDB",
            f"CREATE ROLE {APP} LOGIN",
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options)

    def ensure_started(self) -> None:
        """Start the server again if a test left it down (a crash without its restart, the test having failed)."""
        if not (self.data / "postmaster.pid").exists():
            self.start()

    def crash(self) -> None:
        """What a crash leaves: every server process gone at once, no shutdown checkpoint; open transactions lost."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, role: str, database: str) -> str:
        return f"postgres://{role}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """A superuser's connection, in autocommit: what the checks read the database with."""
        return psycopg.connect(self.url("postgres", database), autocommit=True, connect_timeout=10)

    def sql(self, *statements: str, database: str = "postgres") -> None:
        with self.connect(database) as conn:
            for statement in statements:
                conn.execute(statement)

    def create_database(self, name: str, *, template: str = "template1") -> None:
        self.sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER {OWNER}')

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Redis ---------------------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of its own without persistence: a restart loses every queued and unacknowledged task."""

    def __init__(self, root: Path) -> None:
        if not shutil.which("redis-server"):
            unavailable("needs redis-server: apt-get install redis-server")
        self.root = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(f"redis-server on port {self.port}", self.answers, timeout=30)

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def ensure_started(self) -> None:
        """Start the server again if a test left it down (a crash without its restart, the test having failed)."""
        if not (self.data / "postmaster.pid").exists():
            self.start()

    def crash(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, grace=10)

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)


# The application's processes ------------------------------------------------------------------------------


def app_environment(*, database_url: str, redis_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a deployment gives the web and worker processes, on the campaign's own services.

    Production settings (DEBUG off) with the secrets a deployment would mount made up, plain HTTP on
    loopback, and nothing of the caller's own product variables or service URLs.
    """
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in _CALLERS and name not in product_variables(os.environ)
    }
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "lineage_site.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "LINEAGE_VAR_DIR": str(var_dir),
        "LINEAGE_SIGNING_KEY_AUTOCREATE": "1",
        "LINEAGE_EMAIL_SIGNATURE_REQUESTS": "0",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``manage.py`` with this environment; the caller checks the outcome."""
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_module(env: dict[str, str], module: str, *args: str, timeout: float = 300) -> str:
    """``python -m module args`` with this environment; its standard output, or the test fails with its error."""
    done = subprocess.run(
        [PYTHON, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"python -m {module} {' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}")
    return done.stdout


SYNC_TASK = "releases.tasks.sync_source"


def enqueue(redis_url: str, task: str, *args: object) -> None:
    """Send a task by its registered name, as beat or a page's "Sync now" does."""
    from celery import Celery

    # Not the current app: the product's shared tasks this process sends later must keep their own broker.
    app = Celery("faults", broker=redis_url, set_as_current=False)
    try:
        app.send_task(task, args=list(args))
    finally:
        app.close()


class Worker:
    """``celery -A lineage_site worker``, one prefork child, as a deployment runs it; killed as a machine dies."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *, timeout: float = 180) -> None:
        """Start the worker and wait until it consumes (it logs ``ready``)."""
        mark = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "lineage_site",
                    "worker",
                    "--pool=prefork",
                    "--concurrency=1",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel=INFO",
                    f"--hostname=faults{self.starts}@%h",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"the worker exited with {self.process.returncode}: {tail(self.log)}")
            return " ready." in self.log.read_bytes()[mark:].decode(errors="replace")

        wait_until("the Celery worker to be ready", ready, timeout=timeout, every=0.3)

    def pool_child(self) -> int:
        """The pid of the prefork child that runs the tasks."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        assert children, "the worker has no pool process"
        return int(children[0])

    def kill(self) -> None:
        """kill -9 the whole worker, main process and pool child at once: the machine or container died."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def log_text(self) -> str:
        return tail(self.log, 6000)


class WebServer:
    """gunicorn serving ``lineage_site.wsgi`` on a free loopback port, as production serves it."""

    def __init__(self, env: dict[str, str], log: Path, *, workers: int = 1) -> None:
        self.env = env
        self.log = log
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 180) -> None:
        """Collect the static files, as a deployment's release job does (the pages name them), then serve."""
        static = manage(self.env, "collectstatic", "--noinput")
        assert static.returncode == 0, static.stderr
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "gunicorn",
                    "lineage_site.wsgi",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--timeout",
                    "120",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        wait_until_answering(f"{self.url}/login/", self.process, timeout=timeout, log=self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, grace=10)
