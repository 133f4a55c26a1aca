"""Load held: requests per second at p95 < 100 ms, this product beside MLflow's own server, under locust.

- this product: gunicorn with 4 workers on PostgreSQL, over the large set (10,000 releases, 100,000 runs,
  500 endpoints, 50,000 deployments), asked for the board and a release's page (signed in as an ML
  lead) and the full trace over the API (``GET /api/releases/NAME/``, a reader's token);
- meanwhile 2 Celery workers (concurrency 1 each, on Redis) sync without a pause: each re-reads one
  MLflow tracking server in full (2,000 runs, 200 model versions, served by an ``mlflow server`` of its
  own), 20 of whose runs were retagged since its last sync, so each sync writes too;
- the anchor: a real ``mlflow server`` with 4 workers on a store of the large set's size (100,000 runs,
  10,000 model versions), answering ``GET /api/2.0/mlflow/model-versions/get``.

locust (headless, on loopback) runs each target alone for BENCH_LOAD_SECONDS (default 20) per step
with 1, 2, 4, ... BENCH_LOAD_USERS (default 32) users asking with no pause; at each step the targets
take turns in a rotating order, and a target stops at its first step whose p95 reaches 100 ms or
that has a failure. It prints each step (requests per second, median, p95, the CPU time the server's
own processes spent per request (PostgreSQL's work for ours not counted), failures, the load average
before and after), then each target's highest requests per second at p95 < 100 ms, the ratio of the
trace API's to MLflow's (goal > 1), and the syncs the workers completed meanwhile.

Needs BENCH_DATABASE_URL (``postgres://postgres@127.0.0.1:5432/lineage_bench``; the database
``lineage_bench_load`` is generated once and kept), Redis at BENCH_REDIS_URL (default
``redis://127.0.0.1:6379/7``, emptied at the start) and locust (``requirements-bench.txt``). The
MLflow stores are kept under var/bench/ (trace-mlflow, shared with bench_trace_api, and load-sync-*).
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import math
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event, Thread
from typing import Any

from tests import mlflow_store
from tests.benchmarks import servers
from tests.processes import free_port, stop, wait_until_answering

SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", "20"))
WARM_SECONDS = 5
MOST_USERS = int(os.environ.get("BENCH_LOAD_USERS", "32"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
P95_LIMIT_MS = 100
# MLflow's workers import for minutes on a busy machine (uvicorn restarts one that is slow to come up).
START_TIMEOUT = 600
WEB_WORKERS = 4
SYNC_WORKERS = 2
# Each sync worker's source: a small MLflow server of its own (the per-source lease keeps two workers
# off one source), re-read in full each time, with a few runs retagged before each sync.
SYNC_SOURCES = ("load-sync-a", "load-sync-b")
SYNC_RUNS, SYNC_VERSIONS, RETAGGED = 2_000, 200, 20
SYNC_TASK = "releases.tasks.sync_source"
LOCUSTFILE = Path(__file__).with_name("load_users.py")


@dataclass(frozen=True)
class Target:
    label: str
    user_class: str
    port: int
    # The server that answers: its processes' CPU time is counted per request.
    server: subprocess.Popen[bytes]


@dataclass(frozen=True)
class Step:
    users: int
    seconds: float
    rps: float
    cpu_ms: float
    median_ms: float
    p95_ms: float
    requests: int
    failures: int
    load_before: float
    load_after: float

    @property
    def held(self) -> bool:
        return self.p95_ms < P95_LIMIT_MS and not self.failures and self.requests > 0


# The sync workers' load -------------------------------------------------------------------------


@dataclass
class SyncSource:
    name: str
    store: Path
    port: int
    state_id: int = 0
    run_ids: list[str] = field(default_factory=list)


@dataclass
class SyncCounts:
    completed: int = 0
    failed: int = 0
    runs_updated: int = 0
    seconds: list[float] = field(default_factory=list)


def _sync_store(name: str, prefix: str) -> Path:
    """A small MLflow store, filled once and kept, whose runs name commits of the large set."""
    store = servers.LOGS / name
    if not (store / "mlflow.db").exists():
        mlflow_store.fill(
            store / "mlflow.db",
            store / "artifacts",
            runs=SYNC_RUNS,
            model_versions=SYNC_VERSIONS,
            model_prefix=prefix,
            commit_of=lambda i: f"{i % 10_000 + 1:040x}",
        )
    return store


class SyncFeeder(Thread):
    """A beat without pauses: each source gets its next sync as soon as its last one is done.

    Before each sync, RETAGGED of the source's runs get a new tag through MLflow's REST API, so the
    sync finds them changed and writes them. Completions are read from the source's sync state.
    """

    def __init__(self, url: str, sources: list[SyncSource], *, rounds: int = 0) -> None:
        super().__init__(daemon=True)
        from celery import Celery

        self.url = url
        self.sources = sources
        self.app = Celery(broker=REDIS_URL)
        self.stopping = Event()
        self.counts = SyncCounts()
        # How many syncs each source gets (0: until stopped).
        self.rounds = rounds
        self.sent: dict[int, int] = {}
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self._feed()
        except Exception as exc:  # reported by whoever waits on the counts, not lost with the thread
            self.error = exc

    def _feed(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            waiting: dict[int, tuple[Any, int]] = {}
            while not self.stopping.is_set():
                for source in self.sources:
                    success, failures, duration, updated = self._state(conn, source)
                    if source.state_id in waiting:
                        before, failures_before = waiting[source.state_id]
                        if success != before:
                            self.counts.completed += 1
                            self.counts.runs_updated += updated
                            self.counts.seconds.append(duration)
                        elif failures > failures_before:
                            self.counts.failed += 1
                        else:
                            continue
                        del waiting[source.state_id]
                    if self.rounds and self.sent.get(source.state_id, 0) >= self.rounds:
                        continue
                    self._retag(source)
                    self.app.send_task(SYNC_TASK, args=[source.state_id], kwargs={"full": True})
                    self.sent[source.state_id] = self.sent.get(source.state_id, 0) + 1
                    waiting[source.state_id] = (success, failures)
                self.stopping.wait(0.2)

    def stop(self) -> SyncCounts:
        self.stopping.set()
        self.join(timeout=30)
        if self.error is not None:
            raise RuntimeError(f"feeding the sync workers failed: {self.error}") from self.error
        return self.counts

    def _state(self, conn: Any, source: SyncSource) -> tuple[Any, int, float, int]:
        row = conn.execute(
            "SELECT last_success_at, failures_in_a_row, last_duration_seconds, updated_count "
            "FROM releases_syncstate WHERE id = %s",
            (source.state_id,),
        ).fetchone()
        return row[0], int(row[1]), float(row[2] or 0), int(row[3])

    def _retag(self, source: SyncSource) -> None:
        for run_id in random.sample(source.run_ids, RETAGGED):
            conn = http.client.HTTPConnection("127.0.0.1", source.port, timeout=30)
            body = json.dumps({"run_id": run_id, "key": "retrained_at", "value": str(time.time())})
            conn.request("POST", "/api/2.0/mlflow/runs/set-tag", body, {"Content-Type": "application/json"})
            conn.getresponse().read()
            conn.close()


def _first_syncs(url: str, sources: list[SyncSource], timeout: float = 600) -> None:
    """One sync of each source before the load (the first ever imports its runs), waited for."""
    feeder = SyncFeeder(url, sources, rounds=1)
    feeder.start()
    deadline = time.monotonic() + timeout
    while feeder.counts.completed + feeder.counts.failed < len(sources):
        if time.monotonic() > deadline or not feeder.is_alive():
            feeder.stop()
            raise RuntimeError(f"the first syncs did not finish within {timeout:.0f} s (log: var/bench/load-celery-*)")
        time.sleep(0.5)
    counts = feeder.stop()
    if counts.failed:
        raise RuntimeError("a first sync failed: see the sync state's last_error in the bench database")


# Setting up ------------------------------------------------------------------------------------------


def _session_and_sources(env: dict[str, str], sources: list[SyncSource]) -> str:
    """Collect the static files (pages name them from the manifest), point each sync source at its
    server and sign the ML lead in; the session cookie.

    A kept store is served on a new port each run: its source keeps its name and rows, and only its
    address changes (a bench fixture, as the large set's own rows are, not a service call).
    """
    code = (
        "import json\n"
        "from django.conf import settings\n"
        "from django.contrib.auth.models import User\n"
        "from django.test import Client\n"
        "from audit.log import SystemActor\n"
        "from releases import services\n"
        "from releases.models import SyncState, TrackingServer\n"
        "from django.core.management import call_command\n"
        "call_command('collectstatic', interactive=False, verbosity=0)\n"
        "by = SystemActor('bench')\n"
        "services.register_dataset_version(name='churn-train', version=17, uri='s3://d/17', "
        "content_hash='sha256:' + '0' * 64, by=by)\n"
        f"sources = {json.dumps({s.name: f'http://127.0.0.1:{s.port}' for s in sources})}\n"
        "ids = {}\n"
        "for name, uri in sources.items():\n"
        "    TrackingServer.objects.filter(name=name).update(tracking_uri=uri, ui_url=uri)\n"
        "    state = services.add_mlflow_server(name=name, tracking_uri=uri, by=by)\n"
        "    SyncState.objects.filter(pk=state.pk).update(lease_until=None, lease_token='', running_since=None)\n"
        "    ids[name] = state.pk\n"
        "client = Client()\n"
        "client.force_login(User.objects.get(username='lead'))\n"
        "cookie = f'{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}'\n"
        "print(json.dumps({'cookie': cookie, 'ids': ids}))\n"
    )
    answer = json.loads(servers.run_django(code, env))
    for source in sources:
        source.state_id = int(answer["ids"][source.name])
    return str(answer["cookie"])


def _run_ids(store: Path) -> list[str]:
    with sqlite3.connect(store / "mlflow.db") as con:
        return [row[0] for row in con.execute("SELECT run_uuid FROM runs")]


def _empty_redis() -> bool:
    """Empty the benchmark's Redis database (tasks a killed run left); False when Redis does not answer."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
    except redis.RedisError:
        return False
    return True


# Measuring ------------------------------------------------------------------------------------------


def _warm(targets: list[Target], plan_file: Path) -> None:
    """A few seconds of each target at one user per worker, not counted: every worker's imports,
    connections and caches, as a running service has them; and a check that every answer is right."""
    for target in targets:
        step = _locust(target, WEB_WORKERS, plan_file, seconds=WARM_SECONDS)
        if step.failures or not step.requests:
            raise RuntimeError(
                f"{target.label}: {step.failures} of {step.requests} answers were wrong while warming up "
                "(logs: var/bench/load-*.log)"
            )


def _locust(target: Target, users: int, plan_file: Path, *, seconds: int = SECONDS) -> Step:
    """One step: ``users`` users on ``target`` for ``seconds``, headless; its figures from locust's final stats.

    The requests per second are counted over the window locust measured: from the moment every user
    was spawned to the last request.
    """
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds([target.server])
    done = subprocess.run(
        [
            str(servers.BIN / "locust"),
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--host",
            f"http://127.0.0.1:{target.port}",
            "--reset-stats",
            "--json",
            "--skip-log-setup",
            "--exit-code-on-error",
            "0",
            target.user_class,
        ],
        cwd=servers.ROOT,
        env=dict(os.environ, BENCH_LOAD_PLAN=str(plan_file)),
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    if done.returncode:
        raise RuntimeError(f"locust exited with {done.returncode}: {done.stderr.strip()[-1000:]}")
    load_after = os.getloadavg()[0]
    cpu = _cpu_seconds([target.server]) - cpu_before
    stats = json.loads(done.stdout)
    times: dict[float, int] = {}
    for entry in stats:
        for ms, count in entry["response_times"].items():
            times[float(ms)] = times.get(float(ms), 0) + count
    requests = sum(entry["num_requests"] for entry in stats)
    window = max((e["last_request_timestamp"] or 0) - e["start_time"] for e in stats) if stats else 0.0
    return Step(
        users=users,
        seconds=window,
        rps=requests / window if window > 0 else 0.0,
        cpu_ms=cpu * 1000 / requests if requests else math.inf,
        median_ms=_percentile(times, 0.5),
        p95_ms=_percentile(times, 0.95),
        requests=requests,
        failures=sum(entry["num_failures"] for entry in stats),
        load_before=load_before,
        load_after=load_after,
    )


def _cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """The CPU time (user and system) these processes and every process they started have used so far."""
    import psutil

    total = 0.0
    for process in processes:
        try:
            parent = psutil.Process(process.pid)
            family = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = member.cpu_times()
                total += times.user + times.system
    return total


def _percentile(times: dict[float, int], share: float) -> float:
    """The response time (ms, rounded as locust keeps it) that ``share`` of the requests did not exceed."""
    needed, seen = math.ceil(share * sum(times.values())), 0
    for ms in sorted(times):
        seen += times[ms]
        if seen >= needed:
            return ms
    return math.inf


def _steps() -> list[int]:
    users, steps = 1, []
    while users <= MOST_USERS:
        steps.append(users)
        users *= 2
    return steps


def _measure(targets: list[Target], plan_file: Path) -> dict[str, list[Step]]:
    """Every target at each number of users in turn, in a rotating order, until its p95 reaches the limit."""
    found: dict[str, list[Step]] = {t.label: [] for t in targets}
    going = list(targets)
    header = (
        "target",
        "users",
        "s",
        "req/s",
        "median ms",
        "p95 ms",
        "server CPU ms/req",
        "requests",
        "failures",
        "load before → after",
    )
    print(f"   | {' | '.join(header)} |\n   |---|{'---:|' * (len(header) - 2)}---|", flush=True)
    for i, users in enumerate(_steps()):
        turn = going[i % len(going) :] + going[: i % len(going)] if going else []
        for target in turn:
            step = _locust(target, users, plan_file)
            found[target.label].append(step)
            cells = (
                target.label,
                str(users),
                f"{step.seconds:.0f}",
                f"{step.rps:.1f}",
                f"{step.median_ms:.0f}",
                f"{step.p95_ms:.0f}",
                f"{step.cpu_ms:.1f}",
                str(step.requests),
                str(step.failures),
                f"{step.load_before:.2f} → {step.load_after:.2f}",
            )
            print(f"   | {' | '.join(cells)} |", flush=True)
            if not step.held:
                going.remove(target)
    return found


def _report(found: dict[str, list[Step]], api: str, anchor: str) -> None:
    best: dict[str, Step | None] = {}
    for label, steps in found.items():
        held = [s for s in steps if s.held]
        best[label] = max(held, key=lambda s: s.rps) if held else None
        top = best[label]
        where = f"{top.rps:.1f} req/s (users: {top.users}, p95 {top.p95_ms:.0f} ms)" if top else "none"
        print(f"   {label}: max req/s at p95 < {P95_LIMIT_MS} ms: {where}", flush=True)
    ours, theirs = best[api], best[anchor]
    if ours and theirs:
        print(f"   ratio {api} / {anchor}: {ours.rps / theirs.rps:.2f} (goal > 1)", flush=True)


def _report_syncs(counts: SyncCounts, seconds: float, cpu: float) -> None:
    busy = sum(counts.seconds) / (SYNC_WORKERS * seconds) if seconds else 0.0
    median = sorted(counts.seconds)[len(counts.seconds) // 2] if counts.seconds else 0.0
    print(
        f"   sync workers during the load ({seconds:.0f} s): {counts.completed} full syncs completed, "
        f"{counts.failed} failed, {counts.runs_updated} runs rewritten, median {median:.1f} s a sync, "
        f"workers busy {busy:.0%} of the time; the workers and their MLflow servers used {cpu / seconds:.2f} cores "
        "(PostgreSQL's share not counted)",
        flush=True,
    )


def _plan(url: str, env: dict[str, str], sources: list[SyncSource], versions: list[tuple[str, str]]) -> dict[str, Any]:
    """The large set made ready, and what the simulated users ask with: names, session cookie, token."""
    servers.prepare_database(url, env)
    return {
        "releases": servers.release_names(url),
        "versions": versions,
        "cookie": _session_and_sources(env, sources),
        "token": servers.api_token(env),
    }


def _serve(running: ExitStack, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    running.callback(stop, process)
    return process


def main() -> None:
    url = servers.bench_database("lineage_bench_load")
    if not url:
        print("   skipped: set BENCH_DATABASE_URL=postgres://... (this benchmark measures PostgreSQL)", flush=True)
        return
    if shutil.which("locust", path=str(servers.BIN)) is None:
        print("   skipped: locust is not installed (uv pip install -r requirements-bench.txt)", flush=True)
        return
    if not _empty_redis():
        print(f"   skipped: Redis does not answer at {REDIS_URL} (set BENCH_REDIS_URL)", flush=True)
        return
    env = servers.settings_env(url, servers.LOGS / "load", REDIS_URL=REDIS_URL)
    started = time.monotonic()
    versions = servers.trace_mlflow_store()
    sources = [SyncSource(name, _sync_store(name, f"sync{name[-1]}"), free_port()) for name in SYNC_SOURCES]
    for source in sources:
        source.run_ids = _run_ids(source.store)
    ours_port, mlflow_port = free_port(), free_port()
    with ExitStack() as running, tempfile.TemporaryDirectory(prefix="lineage-load-") as work:
        # MLflow's servers take long to start on a busy machine: they start while the database is prepared.
        anchor = _serve(
            running,
            servers.mlflow_server(servers.TRACE_STORE, mlflow_port, workers=WEB_WORKERS, log="load-mlflow.log"),
        )
        sync_servers = [
            _serve(
                running,
                servers.mlflow_server(source.store, source.port, workers=1, log=f"{source.name}-mlflow.log"),
            )
            for source in sources
        ]
        plan = _plan(url, env, sources, versions)
        web = _serve(running, servers.gunicorn(env, ours_port, workers=WEB_WORKERS, log="load-gunicorn.log"))
        sync_workers = [
            _serve(running, servers.celery_worker(env, f"load-{n}", log=f"load-celery-{n}.log"))
            for n in range(SYNC_WORKERS)
        ]
        wait_until_answering(
            f"http://127.0.0.1:{ours_port}/api/releases/", web, timeout=START_TIMEOUT
        )  # 401 without a token: the app answers
        wait_until_answering(f"http://127.0.0.1:{mlflow_port}/health", anchor, timeout=START_TIMEOUT)
        for source, process in zip(sources, sync_servers, strict=True):
            wait_until_answering(f"http://127.0.0.1:{source.port}/health", process, timeout=START_TIMEOUT)
        print(f"   data ready and servers started ({time.monotonic() - started:.0f} s)", flush=True)
        first = time.monotonic()
        _first_syncs(url, sources)
        print(f"   first sync of each source done ({time.monotonic() - first:.0f} s)", flush=True)
        plan_file = Path(work) / "plan.json"
        plan_file.write_text(json.dumps(plan))
        targets = [
            Target("board", "Board", ours_port, web),
            Target("trace page", "TracePage", ours_port, web),
            Target("trace API", "TraceApi", ours_port, web),
            Target("MLflow model-versions/get", "MlflowVersion", mlflow_port, anchor),
        ]
        _warm(targets, plan_file)
        _run(targets, plan_file, url, sources, [*sync_workers, *sync_servers])


def _run(
    targets: list[Target], plan_file: Path, url: str, sources: list[SyncSource], syncing: list[subprocess.Popen[bytes]]
) -> None:
    """The steps, with the sync workers kept busy throughout; then the summary."""
    feeder = SyncFeeder(url, sources)
    feeder.start()
    load_started = time.monotonic()
    sync_cpu = _cpu_seconds(syncing)
    print(
        f"   {os.cpu_count()} cores ({_cpu()}); gunicorn {WEB_WORKERS} workers, mlflow server {WEB_WORKERS} workers, "
        f"{SYNC_WORKERS} Celery workers syncing; {SECONDS} s a step; "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        flush=True,
    )
    try:
        found = _measure(targets, plan_file)
    finally:
        counts = feeder.stop()
    _report(found, "trace API", "MLflow model-versions/get")
    _report_syncs(counts, time.monotonic() - load_started, _cpu_seconds(syncing) - sync_cpu)


def _cpu() -> str:
    """The processor's model name, as Linux reports it."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "processor unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "processor unknown")


if __name__ == "__main__":
    main()
