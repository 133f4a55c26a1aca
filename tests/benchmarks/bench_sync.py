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
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

RUNS = int(os.environ.get("BENCH_RUNS", "10000"))
MODEL_VERSIONS = int(os.environ.get("BENCH_MODEL_VERSIONS", "1000"))
COMMITS = int(os.environ.get("BENCH_COMMITS", "50000"))
WORK = Path(tempfile.mkdtemp(prefix="lineage-bench-"))
FILL_CHUNK = 10_000


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


def _fill_mlflow_store(db: Path, artifacts: Path, runs: int = RUNS, model_versions: int = MODEL_VERSIONS) -> None:
    """Create the schema with MLflow's own store, then insert rows with SQL."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{db}"
    store = SqlAlchemyStore(uri, str(artifacts))
    RegistryStore(uri)
    experiment_id = store.create_experiment("churn")
    store.engine.dispose()
    now = int(time.time() * 1000) - 7 * 86_400_000  # a week old: history, not runs still being written
    con = sqlite3.connect(db)

    def columns(table: str) -> dict[str, tuple[bool, Any]]:
        return {row[1]: (bool(row[3]), row[4]) for row in con.execute(f"PRAGMA table_info({table})")}

    def insert(table: str, rows: list[dict[str, Any]]) -> None:
        cols = columns(table)
        for name, (notnull, default) in cols.items():
            if notnull and default is None and name not in rows[0]:
                for row in rows:
                    row[name] = ""
        names = list(rows[0])
        con.executemany(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",  # noqa: S608 - fixed names
            [tuple(row[n] for n in names) for row in rows],
        )

    run_ids = [uuid.uuid4().hex for _ in range(runs)]
    for chunk in range(0, runs, FILL_CHUNK):  # a million runs' rows are never all in memory at once
        _insert_runs(insert, run_ids, chunk, min(runs, chunk + FILL_CHUNK), now, artifacts, experiment_id)
    models = max(1, model_versions // 100)
    insert(
        "registered_models",
        [
            {"name": f"churn{m}-model", "creation_time": now, "last_updated_time": now, "description": ""}
            for m in range(models)
        ],
    )
    versions = []
    for v in range(model_versions):
        run_id = run_ids[v * (runs // model_versions)]
        versions.append(
            {
                "name": f"churn{v % models}-model",
                "version": v // models + 1,
                "creation_time": now,
                "last_updated_time": now,
                "description": "",
                "user_id": "",
                "current_stage": "None",
                "source": f"runs:/{run_id}/model",
                "run_id": run_id,
                "status": "READY",
                "status_message": "",
                "run_link": "",
            }
        )
    insert("model_versions", versions)
    con.commit()
    con.close()


def _insert_runs(
    insert: Any, run_ids: list[str], first: int, end: int, now: int, artifacts: Path, experiment_id: str
) -> None:
    """Runs ``first`` to ``end`` with their tags, params and metrics, each run a second after the one before."""
    runs, tags, params, metrics, latest = [], [], [], [], []
    for i in range(first, end):
        run_id = run_ids[i]
        start = now + i * 1000
        runs.append(
            {
                "run_uuid": run_id,
                "name": f"churn-{i}",
                "source_type": "LOCAL",
                "source_name": "train.py",
                "entry_point_name": "",
                "user_id": "data-scientist",
                "status": "FINISHED",
                "start_time": start,
                "end_time": start + 500,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": f"{artifacts}/{run_id}",
                "experiment_id": int(experiment_id),
            }
        )
        sha = f"{i:040x}"
        for key, value in (
            ("git_commit", sha[:12]),
            ("dataset_version", "churn-train:17"),
            ("mlflow.runName", f"churn-{i}"),
            ("mlflow.user", "data-scientist"),
        ):
            tags.append({"key": key, "value": value, "run_uuid": run_id})
        for key, value in (("feature_view", "customer_features_v5"), ("max_depth", "6"), ("lr", "0.1")):
            params.append({"key": key, "value": value, "run_uuid": run_id})
        for key, value in (("auc", 0.8 + (i % 100) / 1000), ("logloss", 0.3)):
            metrics.append(
                {"key": key, "value": value, "timestamp": start, "run_uuid": run_id, "step": 0, "is_nan": False}
            )
            latest.append(
                {"key": key, "value": value, "timestamp": start, "step": 0, "is_nan": False, "run_uuid": run_id}
            )
    insert("runs", runs)
    insert("tags", tags)
    insert("params", params)
    insert("metrics", metrics)
    insert("latest_metrics", latest)


def bench_mlflow() -> dict[str, float]:
    from audit.log import SystemActor
    from releases import services
    from releases.models import ExperimentRun, ModelVersion
    from releases.sync import sources
    from releases.sync.mlflow import client_for
    from tests.integration.conftest import start_mlflow_server, stop

    root = WORK / "mlflow"
    root.mkdir()
    _timed(
        f"fill the MLflow store with {RUNS} runs, {MODEL_VERSIONS} model versions",
        lambda: _fill_mlflow_store(root / "mlflow.db", root / "artifacts"),
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
    log_s, _ = _timed(
        "git log (full metadata)",
        lambda: subprocess.run(
            ["git", "log", "--all", "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cI%x1f%B%x1e"],
            cwd=repo,
            capture_output=True,
            check=True,
        ),
    )

    def gitpython() -> int:
        import git

        return sum(1 for c in git.Repo(repo).iter_commits("--all") if c.message is not None and c.author.email)

    lib_s, _ = _timed("GitPython iter_commits (same fields)", gitpython)
    state = services.add_git_repository(name="big", url=str(repo), by=SystemActor("bench"))
    sync_s, _ = _timed("git sync (mirror clone + record)", lambda: sources.sync_state(state))
    again_s, _ = _timed("git sync again, nothing changed", lambda: sources.sync_state(state))
    assert Commit.objects.filter(repository__name="big").count() == COMMITS
    print(
        f"   Git: sync {sync_s / log_s:.1f}x git log (target <= 2x); GitPython {lib_s / log_s:.1f}x git log; "
        f"no-change sync {again_s:.2f} s",
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
