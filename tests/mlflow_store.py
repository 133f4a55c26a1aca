"""An MLflow store filled with SQL: tens of thousands of runs in seconds, which a real `mlflow server` then serves.

Creating runs one REST call at a time costs hours at benchmark sizes; the benchmarks and the fault
campaign write the rows straight into the SQLite store instead, after MLflow's own store classes made
the schema (so the columns are whatever this MLflow version has).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# What every `mlflow server` the tests and benchmarks start runs with. MLflow's server starts a job runner
# and a dozen task consumers by default (for its own GenAI jobs); the product uses none of them, and on a
# small machine they take the CPU the tests and benchmarks measure.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# Every run declares this dataset version; registering it first gives each synced run one dataset input.
DATASET = "churn-train:17"
# Runs written per round of inserts.
CHUNK = 10_000


def model_names(model_versions: int, prefix: str = "churn") -> list[str]:
    """The registered models ``fill`` spreads its versions over: ``churn0-model``, ``churn1-model``, ..."""
    return [f"{prefix}{m}-model" for m in range(max(1, model_versions // 100))]


def short_commit(i: int) -> str:
    """The commit run ``i`` is tagged with, unless ``fill`` is told otherwise."""
    return f"{i:040x}"[:12]


def _create_schema(db: Path, artifacts: Path) -> None:
    """The tables, made by MLflow's own stores (what `mlflow server` does at its first start)."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{db}"
    store = SqlAlchemyStore(uri, str(artifacts))
    RegistryStore(uri)
    store.engine.dispose()


def fill(
    db: Path,
    artifacts: Path,
    *,
    runs: int,
    model_versions: int,
    model_prefix: str = "churn",
    commit_of: Callable[[int], str] = short_commit,
) -> list[str]:
    """Add an experiment ``churn`` with ``runs`` runs, and ``model_versions`` registered model versions.

    The schema is made first unless the store exists already (a running `mlflow server` made it, so this
    process need not import MLflow's server code). Models are named ``model_prefix``N-model; run ``i`` is
    tagged with the commit ``commit_of(i)``. Returns the run ids. The runs are a week old (history,
    not runs still being written), each with a ``git_commit`` and a ``dataset_version`` tag, three params
    and two metrics; version ``v`` of the models comes from run ``v * (runs // model_versions)``.
    """
    if not db.exists():
        _create_schema(db, artifacts)
    now = int(time.time() * 1000) - 7 * 86_400_000
    con = sqlite3.connect(db, timeout=60)
    # A store made for the occasion: nothing to gain from waiting for the disk at each write.
    con.execute("PRAGMA synchronous = OFF")

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

    experiment_id = con.execute(
        "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time)"
        " VALUES ('churn', ?, 'active', ?, ?)",
        (str(artifacts), now, now),
    ).lastrowid
    run_ids = [uuid.uuid4().hex for _ in range(runs)]
    for first in range(0, runs, CHUNK):  # a million runs' rows are never all in memory at once
        _insert_runs(insert, run_ids[first : first + CHUNK], first, now, artifacts, experiment_id, commit_of)
    names = model_names(model_versions, model_prefix)
    insert(
        "registered_models",
        [{"name": name, "creation_time": now, "last_updated_time": now, "description": ""} for name in names],
    )
    versions = []
    for v in range(model_versions):
        run_id = run_ids[v * (runs // model_versions)]
        versions.append(
            {
                "name": names[v % len(names)],
                "version": v // len(names) + 1,
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
    if versions:
        insert("model_versions", versions)
    con.commit()
    con.close()
    return run_ids


def _insert_runs(
    insert: Any,
    run_ids: list[str],
    first: int,
    now: int,
    artifacts: Path,
    experiment_id: Any,
    commit_of: Callable[[int], str],
) -> None:
    """The runs ``run_ids`` (numbered from ``first``) with their tags, params and metrics, a second apart."""
    run_rows, tags, params, metrics, latest = [], [], [], [], []
    for i, run_id in enumerate(run_ids, start=first):
        start = now + i * 1000
        run_rows.append(
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
                "experiment_id": experiment_id,
            }
        )
        for key, value in (
            ("git_commit", commit_of(i)),
            ("dataset_version", DATASET),
            ("mlflow.runName", f"churn-{i}"),
            ("mlflow.user", "data-scientist"),
        ):
            tags.append({"key": key, "value": value, "run_uuid": run_id})
        for key, value in (("feature_view", "customer_features_v5"), ("max_depth", "6"), ("lr", "0.1")):
            params.append({"key": key, "value": value, "run_uuid": run_id})
        for metric, measured in (("auc", 0.8 + (i % 100) / 1000), ("logloss", 0.3)):
            metrics.append(
                {"key": metric, "value": measured, "timestamp": start, "run_uuid": run_id, "step": 0, "is_nan": False}
            )
            latest.append(
                {"key": metric, "value": measured, "timestamp": start, "step": 0, "is_nan": False, "run_uuid": run_id}
            )
    insert("runs", run_rows)
    insert("tags", tags)
    insert("params", params)
    insert("metrics", metrics)
    insert("latest_metrics", latest)
