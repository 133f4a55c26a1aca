"""Sync throughput, side by side with the raw reads of the same sources, in one run on one machine.

- MLflow: 10,000 runs and 1,000 model versions written straight into a real `mlflow server`'s
  SQLite store (minutes of set-up, not hours through the API), then: raw ``search_runs`` paging,
  the first sync, a second sync with nothing changed, and a full re-read with nothing changed.
- Git: a 50,000-commit repository made with ``git fast-import``; ``git log`` over it, the sync,
  and GitPython reading the same commits (why the adapter uses the CLI).

Uses its own database: SQLite under a temporary directory, or, with BENCH_DATABASE_URL
(``postgres://.../lineage_bench``), a PostgreSQL database it drops and re-creates. Sizes: BENCH_RUNS,
BENCH_MODEL_VERSIONS, BENCH_COMMITS.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

RUNS = int(os.environ.get("BENCH_RUNS", "10000"))
MODEL_VERSIONS = int(os.environ.get("BENCH_MODEL_VERSIONS", "1000"))
COMMITS = int(os.environ.get("BENCH_COMMITS", "50000"))
# git log and the git sync are each timed this many times; the median is the figure.
REPEATS = 3
WORK = Path(tempfile.mkdtemp(prefix="lineage-bench-"))


def _fresh_postgres(url: str) -> str:
    """Drop and re-create the database BENCH_DATABASE_URL names, so every run starts from empty."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "lineage_bench"
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def _django() -> None:
    # PostgreSQL is what a deployment runs on; SQLite (the embedded default) when no URL is given.
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if url:
        os.environ["DATABASE_URL"] = _fresh_postgres(url)
    else:
        os.environ.pop("DATABASE_URL", None)
    # The benchmark makes and fills its own database as one role.
    os.environ.pop("DATABASE_MIGRATE_URL", None)
    os.environ["LINEAGE_VAR_DIR"] = str(WORK / "var")
    # Production settings (DEBUG off: no query log growing with every statement), with the secrets a
    # deployment would mount made up for this throwaway database.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
    os.environ.setdefault("LINEAGE_SIGNING_KEY_AUTOCREATE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lineage_site.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _timed(label: str, fn: Any) -> tuple[float, Any]:
    started = time.monotonic()
    value = fn()
    elapsed = time.monotonic() - started
    print(f"   {label}: {elapsed:.2f} s", flush=True)
    return elapsed, value


def bench_mlflow() -> dict[str, float]:
    from audit.log import SystemActor
    from releases import services
    from releases.models import ExperimentRun, ModelVersion
    from releases.sync import sources
    from releases.sync.mlflow import client_for
    from tests import mlflow_store
    from tests.integration.conftest import start_mlflow_server, stop

    root = WORK / "mlflow"
    root.mkdir()
    _timed(
        f"fill the MLflow store with {RUNS} runs, {MODEL_VERSIONS} model versions",
        lambda: mlflow_store.fill(root / "mlflow.db", root / "artifacts", runs=RUNS, model_versions=MODEL_VERSIONS),
    )
    process, uri = start_mlflow_server(root)
    try:
        services.register_dataset_version(
            name="churn-train", version=17, uri="s3://d/17", content_hash="sha256:" + "0" * 64, by=SystemActor("bench")
        )
        state = services.add_mlflow_server(name="bench", tracking_uri=uri, by=SystemActor("bench"))
        assert state.server is not None
        client = client_for(state.server)
        experiment_ids = [e.experiment_id for e in client.search_experiments()]

        def raw() -> int:
            # The same query and page size the sync sends, so only the writes differ.
            count, token = 0, None
            while True:
                page = client.search_runs(
                    experiment_ids, "", max_results=1000, order_by=["attributes.start_time ASC"], page_token=token
                )
                count += len(page)
                token = page.token
                if not token:
                    return count

        # Best of two: the first pass also warms the server's store, which would flatter the sync.
        raw_s, raw_count = min(_timed("raw search_runs paging", raw), _timed("raw search_runs paging, again", raw))
        first_s, _ = _timed("first sync", lambda: sources.sync_state(state))
        second_s, _ = _timed("second sync, nothing changed", lambda: sources.sync_state(state))
        full_s, _ = _timed("full re-read, nothing changed", lambda: sources.sync_state(state, full=True))
        assert raw_count == RUNS
        assert ExperimentRun.objects.count() == RUNS
        assert ModelVersion.objects.count() == MODEL_VERSIONS
    finally:
        stop(process)
    figures = {
        "raw_runs_per_s": RUNS / raw_s,
        "sync_runs_per_s": RUNS / first_s,
        "second_fraction": second_s / first_s,
        "full_fraction": full_s / first_s,
    }
    print(
        f"   MLflow: raw search_runs {figures['raw_runs_per_s']:.0f} runs/s; "
        f"sync {figures['sync_runs_per_s']:.0f} runs/s "
        f"({figures['sync_runs_per_s'] / figures['raw_runs_per_s']:.2f} of raw, target >= 0.8); "
        f"second sync {figures['second_fraction']:.1%} of the first (target <= 5%); "
        f"full no-change re-read {figures['full_fraction']:.1%}",
        flush=True,
    )
    return figures


def _make_repo(path: Path) -> None:
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True)
    lines: list[str] = []
    ts = 1_700_000_000
    for i in range(1, COMMITS + 1):
        message = f"change {i}\n"
        lines.append(f"commit refs/heads/main\nmark :{i}\ncommitter Dana Dev <dana@example.com> {ts + i} +0000\n")
        lines.append(f"data {len(message)}\n{message}")
        if i > 1:
            lines.append(f"from :{i - 1}\n")
        lines.append(f"M 644 inline f{i % 50}.py\ndata {len(str(i)) + 1}\n{i}\n\n")
        if i % 1000 == 0:
            lines.append(f"reset refs/tags/model-churn-v{i // 1000}\nfrom :{i}\n\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input="".join(lines).encode(), check=True)


def bench_git() -> dict[str, float]:
    from audit.log import SystemActor
    from releases import services
    from releases.models import Commit
    from releases.sync import sources

    repo = WORK / "big.git"
    _timed(f"git fast-import of {COMMITS} commits", lambda: _make_repo(repo))
    log_command = ["git", "log", "-z", "--all", "--format=%H%x00%P%x00%an%x00%ae%x00%aI%x00%cI%x00%B"]
    _timed("git log (full metadata), to warm up", lambda: subprocess.run(log_command, cwd=repo, capture_output=True))
    log_s = statistics.median(
        _timed(
            f"git log (full metadata), {n} of {REPEATS}",
            lambda: subprocess.run(log_command, cwd=repo, capture_output=True, check=True),
        )[0]
        for n in range(1, REPEATS + 1)
    )

    def gitpython() -> int:
        import git

        return sum(1 for c in git.Repo(repo).iter_commits("--all") if c.message is not None and c.author.email)

    lib_s, _ = _timed("GitPython iter_commits (same fields)", gitpython)
    # Each a first sync of all 50,000 commits: the same repository added under another name each time.
    states = [
        services.add_git_repository(name=f"big-{n}", url=str(repo), by=SystemActor("bench"))
        for n in range(1, REPEATS + 1)
    ]
    sync_s = statistics.median(
        _timed(f"git sync (mirror clone + record), {n} of {REPEATS}", partial(sources.sync_state, state))[0]
        for n, state in enumerate(states, start=1)
    )
    again_s, _ = _timed("git sync again, nothing changed", lambda: sources.sync_state(states[0]))
    assert Commit.objects.filter(repository__name="big-1").count() == COMMITS
    print(
        f"   Git, medians of {REPEATS}: git log {log_s:.2f} s, sync {sync_s:.2f} s, {sync_s / log_s:.1f}x git log "
        f"(target <= 2x); GitPython {lib_s / log_s:.1f}x git log; no-change sync {again_s:.2f} s",
        flush=True,
    )
    return {"log_s": log_s, "sync_s": sync_s, "gitpython_s": lib_s}


def main() -> None:
    _django()
    from django.db import connection

    print(f"   work dir {WORK}; database {connection.vendor} {connection.settings_dict['NAME']}", flush=True)
    bench_mlflow()
    bench_git()


if __name__ == "__main__":
    main()
