"""The application as it is deployed, for the fault tests: gunicorn with 4 workers on a free loopback port, on
the test's PostgreSQL database as the application's role, with Redis as cache and Celery broker.

Its processes share the test process's signing key and checkpoint log, so what they sign the test can verify.
DEBUG stays on as in every test (tests/settings.py): production's compressed static manifest takes minutes
to build. Everything it started is stopped, and the Celery tasks it queued and nobody ran are purged.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from audit import signing
from tests.conftest import unavailable
from tests.processes import free_port, stop, wait_until_answering

VENV_BIN = Path(sys.executable).parent
WORKERS = 4


@dataclass
class Site:
    """A running deployment: its address, and the environment each of its processes gets."""

    url: str
    env: dict[str, str]
    log: Path

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``manage.py`` run as the deployment runs it (its role, its key), e.g. audit_verify."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def errors(self) -> str:
        """The tracebacks the workers logged (a 500 leaves one), empty when there are none."""
        text = self.log.read_text(errors="replace")
        return text if "Traceback" in text else ""


def application_environment(root: Path, **extra: str) -> dict[str, str]:
    """What a web or worker process of the deployment is given: the application's role (never the owner's URL)."""
    if connection.vendor != "postgresql":
        unavailable("needs PostgreSQL: set DATABASE_URL=postgres://...")
    if not getattr(settings, "TEST_DATABASE_OWNER", None):
        unavailable("needs the two PostgreSQL roles: set DATABASE_MIGRATE_URL to the owner's URL (README)")
    if not settings.REDIS_URL:
        unavailable("needs Redis: set REDIS_URL=redis://...")
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    signing.private_key()  # made now if missing, so the processes read one key rather than race to make it
    return {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_MIGRATE_URL"},
        "DJANGO_SETTINGS_MODULE": "lineage_site.settings",
        "DEBUG": "1",
        # Given, not generated under var/ by each worker at once: every worker must sign sessions alike.
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "LINEAGE_VAR_DIR": str(root / "var"),
        "LINEAGE_SIGNING_KEY_FILE": str(settings.LINEAGE_SIGNING_KEY_FILE),
        "LINEAGE_CHECKPOINT_LOG": str(settings.LINEAGE_CHECKPOINT_LOG),
        "LINEAGE_EVIDENCE_DIR": str(settings.LINEAGE_EVIDENCE_DIR),
        "LINEAGE_GIT_CACHE_DIR": str(root / "git-cache"),
        **extra,
    }


def start(env: dict[str, str], log: Path, *, timeout: float = 180) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn with WORKERS workers on a free loopback port; returns (process, base URL) once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(VENV_BIN / "gunicorn"),
            "lineage_site.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--error-logfile",
            str(log),
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{url}/login/", process, timeout=timeout, log=log)
    return process, url


def purge_queued_tasks() -> None:
    """Drop the tasks queued on the broker's default queue that no worker ran (checkpoints, announcements)."""
    from lineage_site.celery import app

    app.control.purge()


@pytest.fixture
def gunicorn_site(transactional_db: Any, tmp_path: Path) -> Iterator[Site]:
    """The site on the test database; the test's rows must be committed for it to see them (transactional)."""
    env = application_environment(tmp_path)
    purge_queued_tasks()
    log = tmp_path / "gunicorn.log"
    process, url = start(env, log)
    try:
        yield Site(url=url, env=env, log=log)
    finally:
        stop(process)
        purge_queued_tasks()
