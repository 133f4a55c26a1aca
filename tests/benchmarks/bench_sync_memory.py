"""The memory a full MLflow sync takes, for stores of growing size: it must not grow with the number of runs.

For each N of BENCH_SYNC_MEMORY_RUNS (default ``10000,100000``): an MLflow store of N runs and N/10 model
versions (``tests.mlflow_store.fill``, kept under var/bench/sync-memory/N for the next run), a real
`mlflow server` on it, and a first full sync into an empty PostgreSQL database, in a child process whose
peak resident memory (VmHWM, reset once Django is loaded and the source added) is printed with its RSS
before the sync, the time and the load average.

Needs BENCH_DATABASE_URL (``postgres://postgres@127.0.0.1:5432/lineage_bench``); the database
``lineage_bench_scale_sync`` is dropped and re-created for each N.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.common import load_average

ROOT = Path(__file__).resolve().parents[2]
STORES = ROOT / "var" / "bench" / "sync-memory"
SIZES = [int(n) for n in os.environ.get("BENCH_SYNC_MEMORY_RUNS", "10000,100000").split(",")]


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _sync(uri: str) -> dict[str, Any]:
    """Inside the child: add the server, reset the peak, sync everything once, report the peak."""
    import django

    django.setup()
    from audit.log import SystemActor
    from releases import services
    from releases.models import ExperimentRun
    from releases.sync import sources

    bench = SystemActor("bench")
    services.register_dataset_version(
        name="churn-train", version=17, uri="s3://d/17", content_hash="sha256:" + "0" * 64, by=bench
    )
    state = services.add_mlflow_server(name="bench", tracking_uri=uri, by=bench)
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak from here on: the sync's own
    began = time.monotonic()
    sources.sync_state(state)
    seconds = time.monotonic() - began
    return {
        "runs": ExperimentRun.objects.count(),
        "seconds": round(seconds, 1),
        "rss_before_mb": round(before / 1024, 1),
        "peak_mb": round(_status_kb("VmHWM") / 1024, 1),
    }


def _fresh_database(url: str) -> str:
    import psycopg

    base, _, _ = url.rpartition("/")
    name = "lineage_bench_scale_sync"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def _store(runs: int) -> Path:
    from tests import mlflow_store

    root = STORES / str(runs)
    if not (root / "mlflow.db").exists():
        root.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        mlflow_store.fill(root / "mlflow.db", root / "artifacts", runs=runs, model_versions=max(1, runs // 10))
        print(f"   filled an MLflow store of {runs:,} runs in {time.monotonic() - began:.0f} s", flush=True)
    return root


def _analyzing(url: str, every: float = 30.0) -> threading.Event:
    """Keep the planner's statistics current while the sync fills the tables, as autovacuum's ANALYZE does on a
    deployed PostgreSQL; returns the event that stops it. Where autovacuum is off (as on this machine's
    PostgreSQL), a table analyzed empty would keep being planned as empty through a million-run sync."""
    import psycopg

    stop = threading.Event()

    def run() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.wait(every):
                conn.execute("ANALYZE")

    threading.Thread(target=run, name="analyze", daemon=True).start()
    return stop


def measure(runs: int, url: str) -> dict[str, Any]:
    """One full sync of a store of ``runs`` runs, served by a real `mlflow server`, in a child process."""
    from tests.benchmarks import servers
    from tests.processes import free_port, stop, wait_until_answering

    root = _store(runs)
    database = _fresh_database(url)
    # Production settings: DEBUG off, so no query log grows with every statement.
    env = servers.settings_env(database, STORES / "var")
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    process = servers.mlflow_server(root, port, workers=1, log=f"sync-memory-{runs}-mlflow.log")
    wait_until_answering(f"http://127.0.0.1:{port}/health", process, timeout=servers.START_SECONDS)
    analyzing = _analyzing(database)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.benchmarks.bench_sync_memory", "--sync", f"http://127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
    finally:
        analyzing.set()
        stop(process)
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if found["runs"] != runs:
        raise RuntimeError(f"the sync recorded {found['runs']} runs of {runs}")
    return found


def main() -> None:
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if not url.startswith("postgres"):
        print("   skipped: set BENCH_DATABASE_URL=postgres://... (this benchmark measures PostgreSQL)", flush=True)
        return
    print("   | runs | sync, s | runs/s | RSS before, MB | peak RSS during the sync, MB | load |", flush=True)
    print("   |---:|---:|---:|---:|---:|---|", flush=True)
    for runs in SIZES:
        found = measure(runs, url)
        print(
            f"   | {runs:,} | {found['seconds']} | {runs / found['seconds']:.0f} | {found['rss_before_mb']} "
            f"| {found['peak_mb']} | {load_average()} |",
            flush=True,
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sync"]:
        print(json.dumps(_sync(sys.argv[2])))
    else:
        main()
