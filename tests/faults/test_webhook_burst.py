"""A burst of 1,000 signed MLflow webhook deliveries in 10 seconds, against gunicorn with 4 workers, one Celery
worker and a real `mlflow server` whose registry holds the 1,000 model versions the deliveries announce.

Each delivery must be answered at once (202, under a second): the receiver keeps it as one small row and
queues a sync only if none is waiting to start, so a burst costs a few syncs, each serving every delivery
kept before it started. Afterwards every model version is stored exactly once with its run, recorded by
exactly one event, every delivery is named exactly once by the events of the syncs that served it, none is
left waiting, and the chain verifies.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import requests

from releases.webhook_signature import signature
from tests import mlflow_store
from tests.faults import checks
from tests.faults.conftest import Campaign, Figures
from tests.faults.services import APP, RedisServer, WebServer, Worker, app_environment, run_module, wait_until
from tests.integration.conftest import start_mlflow_server
from tests.processes import stop

DELIVERIES = 1_000
SECONDS = 10.0
SENDERS = 32
SECRET = "whsec-burst"
MODEL_PREFIX = "burst"


def test_a_thousand_webhook_deliveries_in_ten_seconds_are_each_answered_at_once_and_synced_once(
    campaign: Campaign, database: str, redis: RedisServer, tmp_path: Path, figures: Figures
) -> None:
    mlflow_root = tmp_path / "mlflow"
    mlflow, uri = start_mlflow_server(mlflow_root)
    try:
        # Version v of model burst{v % 10}-model is number v // 10 + 1, made from run v.
        runs = mlflow_store.fill(
            mlflow_root / "mlflow.db",
            mlflow_root / "artifacts",
            runs=DELIVERIES,
            model_versions=DELIVERIES,
            model_prefix=MODEL_PREFIX,
        )
        names = mlflow_store.model_names(DELIVERIES, MODEL_PREFIX)
        versions = [(names[v % len(names)], v // len(names) + 1, runs[v]) for v in range(DELIVERIES)]
        env = app_environment(
            database_url=campaign.cluster.url(APP, database),
            redis_url=redis.url,
            var_dir=tmp_path / "var",
            LINEAGE_MLFLOW_WEBHOOK_SECRET=SECRET,
        )
        state_id = json.loads(run_module(env, "tests.faults.seed", "source", "mlflow", uri))["state"]
        worker = Worker(env, tmp_path / "worker.log")
        web = WebServer(env, tmp_path / "web.log", workers=4)
        try:
            worker.start()
            web.start()
            warm(web.url)
            answers = burst(f"{web.url}/api/hooks/mlflow/?server=mlflow", versions)
            last_sent = time.monotonic()
            with campaign.cluster.connect(database) as conn:
                wait_until(
                    "every delivery served",
                    lambda: waiting(conn) == 0 and checks.sync_state(conn, state_id).finished,
                    timeout=300,
                    every=0.2,
                )
                served_after = time.monotonic() - last_sent
                assert_synced_once(conn, versions, [a.delivery for a in answers])
                passes = checks.event_count(conn, "sync.webhooks_served")
                duplicated = checks.duplicated_events(conn)
                assert duplicated == []
                assert checks.sync_state(conn, state_id).last_error == ""
            assert "Traceback" not in web.log.read_text(errors="replace")
        finally:
            web.stop()
            worker.stop()
    finally:
        stop(mlflow)

    statuses = [a.status for a in answers]
    assert statuses == [202] * DELIVERIES, sorted(set(statuses))
    seconds = sorted(a.seconds for a in answers)
    span = max(a.sent_at for a in answers) - min(a.sent_at for a in answers)
    figures["deliveries sent / seconds"] = f"{DELIVERIES} in {span:.1f} s"
    figures["answers"] = f"{DELIVERIES} x 202"
    figures["answer time median / p95 / max, s"] = (
        f"{statistics.median(seconds):.3f} / {seconds[int(0.95 * len(seconds))]:.3f} / {seconds[-1]:.3f}"
    )
    figures["s from the last delivery until all were served"] = served_after
    figures["syncs' batches (one event each)"] = passes
    figures["model versions in MLflow / stored / recorded by one event"] = f"{DELIVERIES} / {DELIVERIES} / {DELIVERIES}"
    verdict, took = checks.verify_chain(env)
    figures["audit_verify"] = f"{verdict} ({took:.1f} s)"
    slow = sorted((round(a.sent_at - answers[0].sent_at, 2), round(a.seconds, 2)) for a in answers if a.seconds >= 1.0)
    assert not slow, f"{len(slow)} answers took a second or more (sent at s, took s): {slow[:20]}"


class Answer:
    def __init__(self, delivery: str, status: int, sent_at: float, seconds: float) -> None:
        self.delivery, self.status, self.sent_at, self.seconds = delivery, status, sent_at, seconds


def warm(url: str) -> None:
    """A deployment's workers have served pages before a burst comes: each imports and connects on its first."""
    with ThreadPoolExecutor(8) as pool:
        statuses = set(pool.map(lambda _: requests.get(f"{url}/login/", timeout=60).status_code, range(40)))
    assert statuses == {200}


def burst(url: str, versions: list[tuple[str, int, str]]) -> list[Answer]:
    """One signed ``model_version.created`` delivery per version, evenly over SECONDS, whatever the answers take."""
    local = threading.local()
    start = time.monotonic() + 0.5

    def send(n: int) -> Answer:
        name, version, run_id = versions[n]
        body = json.dumps(
            {
                "entity": "model_version",
                "action": "created",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "data": {
                    "name": name,
                    "version": str(version),
                    "run_id": run_id,
                    "source": f"runs:/{run_id}/model",
                    "tags": {},
                },
            }
        ).encode()
        delivery, timestamp = str(uuid.uuid4()), str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-MLflow-Signature": signature(SECRET, delivery, timestamp, body),
            "X-MLflow-Delivery-Id": delivery,
            "X-MLflow-Timestamp": timestamp,
        }
        if not hasattr(local, "session"):
            local.session = requests.Session()
        time.sleep(max(0.0, start + n * SECONDS / len(versions) - time.monotonic()))
        sent_at = time.monotonic()
        response = local.session.post(url, data=body, headers=headers, timeout=30)
        return Answer(delivery, response.status_code, sent_at, time.monotonic() - sent_at)

    with ThreadPoolExecutor(SENDERS) as pool:
        return list(pool.map(send, range(len(versions))))


def waiting(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM releases_syncrequest").fetchone()
    return int(row[0]) if row else 0


def assert_synced_once(
    conn: psycopg.Connection[Any], versions: list[tuple[str, int, str]], deliveries: list[str]
) -> None:
    """Each version stored once with its run and recorded by one event; each delivery named by one served event."""
    stored = conn.execute(
        "SELECT m.name, v.version, r.run_id FROM releases_modelversion v"
        " JOIN releases_registeredmodel m ON m.id = v.registered_model_id"
        " LEFT JOIN releases_experimentrun r ON r.id = v.run_id"
    ).fetchall()
    assert sorted(stored) == sorted(versions)
    recorded = [
        row[0]
        for row in conn.execute("SELECT object_key FROM audit_auditevent WHERE action = 'model_version.registered'")
    ]
    assert sorted(recorded) == sorted(f"{name}/{version}" for name, version, _ in versions)
    served = [
        delivery["id"]
        for (new,) in conn.execute(
            "SELECT new FROM audit_auditevent WHERE action = 'sync.webhooks_served' ORDER BY seq"
        )
        for delivery in new["deliveries"]
    ]
    assert sorted(served) == sorted(deliveries)
