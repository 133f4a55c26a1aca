"""The full trace over the API against MLflow's own single lookup, side by side on this machine.

- this product: ``GET /api/releases/NAME/`` (the whole chain, status, approvals, deployments) served by
  gunicorn with 2 workers on PostgreSQL, over the large set (10,000 releases, 100,000 runs, 500 endpoints,
  50,000 deployments), with a reader's API token;
- the anchor: a real ``mlflow server`` (2 workers) on a store of the same size (100,000 runs, 10,000 model
  versions), answering ``GET /api/2.0/mlflow/model-versions/get``; and its two calls a client makes to
  learn what we answer in one (the version, then its run).

Both are asked in turn, request by request, each on a fresh HTTP connection, for random names; the
figures are medians and 95th percentiles in ms, and the ratio to the anchor (goal: < 1.0). Wall-clock
figures move with the machine's load; so the CPU time one request costs the product is measured too, in
one process through Django's test client on the same database (``time.process_time``: the middleware, the
token check, the trace, the serializer, the renderer; not PostgreSQL's own time), which the load barely moves.

Needs BENCH_DATABASE_URL (``postgres://postgres@127.0.0.1:5432/lineage_bench``): the database
``lineage_bench_trace`` is generated once and kept (delete it to start over); the MLflow store is kept
under var/bench/trace-mlflow. BENCH_TRACE_REQUESTS (default 400) requests of each kind.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import statistics
import time
from typing import Any

from tests.benchmarks import servers
from tests.processes import free_port, stop, wait_until_answering

REQUESTS = int(os.environ.get("BENCH_TRACE_REQUESTS", "400"))


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
    url = servers.bench_database("lineage_bench_trace")
    if not url:
        print("   skipped: set BENCH_DATABASE_URL=postgres://... (this benchmark measures PostgreSQL)", flush=True)
        return
    env = servers.settings_env(url, servers.LOGS / "trace")
    started = time.monotonic()
    servers.prepare_database(url, env)
    print(f"   large set ready in {url.rpartition('/')[2]} ({time.monotonic() - started:.0f} s)", flush=True)
    measure(url, env, anchor=servers.trace_mlflow_store())
    cpu_per_request(env)


# Run in a child process with the benchmark's settings; prints the milliseconds of CPU per request as JSON.
CPU_CODE = """
import json, random, time
from django.test import Client
from releases.models import Release
names = list(Release.objects.values_list("name", flat=True))
picks = random.Random(42)
client = Client(HTTP_AUTHORIZATION="Bearer {token}", HTTP_HOST="127.0.0.1")
def cpu(paths, status):
    for path in paths[:20]:
        client.get(path)
    started = time.process_time()
    for path in paths:
        assert client.get(path).status_code == status, path
    return (time.process_time() - started) * 1000 / len(paths)
trace = cpu([f"/api/releases/{{picks.choice(names)}}/" for _ in range({n})], 200)
missing = cpu([f"/api/releases/no-such-release-{{i}}/" for i in range({n})], 404)
print(json.dumps({{"trace": trace, "missing": missing}}))
"""


def cpu_per_request(env: dict[str, str]) -> None:
    """CPU milliseconds per full trace and per 404, in one process (the same database and settings)."""
    figures = json.loads(servers.run_django(CPU_CODE.format(token=servers.api_token(env), n=REQUESTS), env))
    print(
        f"   CPU per request in one process ({REQUESTS} each, Django's test client): "
        f"full trace {figures['trace']:.2f} ms, 404 {figures['missing']:.2f} ms",
        flush=True,
    )


def measure(url: str, env: dict[str, str], anchor: list[tuple[str, str]] | None) -> None:
    """Serve the database at ``url`` with gunicorn (settings ``env``) and time the full trace of random
    releases; beside the trace-sized MLflow store's own lookups of the (name, version) pairs of ``anchor``."""
    names = servers.release_names(url)
    token = servers.api_token(env)
    ours_port, mlflow_port = free_port(), free_port()
    ours = servers.gunicorn(env, ours_port, workers=2, log="trace-gunicorn.log")
    mlflow = None
    if anchor is not None:
        mlflow = servers.mlflow_server(servers.TRACE_STORE, mlflow_port, workers=2, log="trace-mlflow.log")
    try:
        wait_until_answering(
            f"http://127.0.0.1:{ours_port}/api/releases/", ours, timeout=servers.START_SECONDS
        )  # 401 without a token: the app answers
        if mlflow is not None:
            wait_until_answering(f"http://127.0.0.1:{mlflow_port}/health", mlflow, timeout=servers.START_SECONDS)
        picks = random.Random(42)
        auth = {"Authorization": f"Bearer {token}"}
        # Warm both: each worker's imports, connections and caches, as a running service has them.
        for _ in range(20):
            _get(ours_port, f"/api/releases/{picks.choice(names)}/", auth)
            if anchor:
                name, version = picks.choice(anchor)
                _get(mlflow_port, f"/api/2.0/mlflow/model-versions/get?name={name}&version={version}")
        trace, single, pair, missing = [], [], [], []
        for _ in range(REQUESTS):
            elapsed, body = _get(ours_port, f"/api/releases/{picks.choice(names)}/", auth)
            assert body["lineage_digest"].startswith("sha256:")
            trace.append(elapsed)
            if anchor:
                name, version = picks.choice(anchor)
                path = f"/api/2.0/mlflow/model-versions/get?name={name}&version={version}"
                elapsed, body = _get(mlflow_port, path)
                single.append(elapsed)
                run_elapsed, _ = _get(mlflow_port, f"/api/2.0/mlflow/runs/get?run_id={body['model_version']['run_id']}")
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
        if anchor:
            one_median, one_p95 = _summary("MLflow model-versions/get", single)
            two_median, _ = _summary("MLflow model-versions/get then runs/get", pair)
            print(
                f"   ratio to MLflow's single lookup: median {ours_median / one_median:.2f}, "
                f"p95 {ours_p95 / one_p95:.2f} (goal < 1.0); to its two calls: median {ours_median / two_median:.2f}",
                flush=True,
            )
    finally:
        stop(ours)
        if mlflow is not None:
            stop(mlflow)


if __name__ == "__main__":
    main()
