"""A real Celery worker on Redis runs two syncs of one source at once: no row is written twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from audit.log import SystemActor
from audit.models import AuditEvent
from lineage_site.celery import app
from releases import services
from releases.models import Commit, GitTag, SyncState
from releases.tasks import sync_source
from tests.conftest import unavailable
from tests.integration.conftest import GitRepo


@pytest.fixture
def worker(tmp_path: Path, transactional_db: Any) -> Iterator[str]:
    """A worker process on its own queue, using the test database; yields the queue name."""
    if not settings.REDIS_URL:
        unavailable("needs Redis: set REDIS_URL=redis://...")
    if connection.vendor != "postgresql":
        unavailable("the worker needs a database another process can open: set DATABASE_URL=postgres://...")
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    queue = f"lineage-test-{uuid.uuid4().hex[:8]}"
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "lineage_site",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        env={
            # The worker is the application: its own role, and never the owner's URL.
            **{k: v for k, v in os.environ.items() if k != "DATABASE_MIGRATE_URL"},
            "DATABASE_URL": database_url,
            "REDIS_URL": settings.REDIS_URL,
            "LINEAGE_GIT_CACHE_DIR": str(tmp_path / "worker-git-cache"),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=settings.BASE_DIR,
        start_new_session=True,
    )
    yield queue
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def test_two_workers_syncing_one_repository_at_once_write_each_row_once(
    worker: str, git_repo: GitRepo, tmp_path: Path
) -> None:
    for n in range(30):
        sha = git_repo.commit(f"change {n}")
        if n % 10 == 0:
            git_repo.tag(f"model-churn-v{n + 1}", sha)
    state = services.add_git_repository(name="churn", url=str(git_repo.path), by=SystemActor("test"))
    app.conf.task_always_eager = False  # restored by the autouse fixture

    for _ in range(2):
        sync_source.apply_async(args=[state.pk], queue=worker)

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state.refresh_from_db()
        if state.last_success_at is not None and not state.is_running:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the worker did not finish the sync: {(tmp_path / 'worker.log').read_text()[-3000:]}")
    time.sleep(2)  # let the second task finish (it found the source busy, or found nothing new)

    state.refresh_from_db()
    assert state.last_error == ""
    assert Commit.objects.count() == 30
    assert Commit.objects.values("sha").distinct().count() == 30
    assert sorted(GitTag.objects.values_list("name", flat=True)) == [
        "model-churn-v1",
        "model-churn-v11",
        "model-churn-v21",
    ]
    assert AuditEvent.objects.filter(action="git_tag.created").count() == 3
    assert AuditEvent.objects.filter(action="sync.git.completed").count() == 1
    assert SyncState.objects.count() == 1
