"""Restart Redis (kill -9, no persistence) in the middle of an MLflow sync and in the middle of a write-back.

Redis is the broker: a task a worker is running does not need it until it is acknowledged. So the sync
keeps writing while Redis is gone and finishes; the write-back, held in flight by an MLflow that stops
answering (SIGSTOP), moves the alias once MLflow answers again. The worker reconnects by itself and
runs the next task it is sent. Afterwards every run is stored once, the write-back is applied once, no
audit event is recorded twice, and the chain verifies.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import requests

from tests.faults import checks
from tests.faults.conftest import RUNS, Campaign, Figures
from tests.faults.services import (
    APP,
    SYNC_TASK,
    RedisServer,
    Worker,
    app_environment,
    enqueue,
    run_module,
    wait_until,
)

# How long Redis stays down: long enough for the worker to notice and start reconnecting.
DOWN_SECONDS = 3
MODEL, VERSION, ALIAS = "churn0-model", 1, "staging"


def write_back_state(conn: psycopg.Connection[Any], write_back_id: int) -> tuple[str, int]:
    row = conn.execute("SELECT status, attempts FROM releases_writeback WHERE id = %s", [write_back_id]).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def alias_target(uri: str) -> str:
    """The version MLflow's alias points at, read from its REST API."""
    response = requests.get(
        f"{uri}/api/2.0/mlflow/registered-models/alias", params={"name": MODEL, "alias": ALIAS}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["model_version"]["version"])


def restart(redis: RedisServer) -> float:
    """kill -9 Redis, keep it down a moment, start it again on its port: the time it came back."""
    redis.crash()
    time.sleep(DOWN_SECONDS)
    redis.start()
    return time.monotonic()


def test_redis_restarted_mid_sync_and_mid_write_back_the_work_completes(
    campaign: Campaign, database: str, redis: RedisServer, tmp_path: Path, figures: Figures
) -> None:
    env = app_environment(
        database_url=campaign.cluster.url(APP, database), redis_url=redis.url, var_dir=tmp_path / "var"
    )
    state_id = json.loads(run_module(env, "tests.faults.seed", "source", "mlflow", campaign.mlflow.uri))["state"]
    worker = Worker(env, tmp_path / "worker.log")
    mlflow = campaign.mlflow.process.pid
    with campaign.cluster.connect(database) as conn:
        try:
            worker.start()
            enqueue(redis.url, SYNC_TASK, state_id)
            wait_until("a third of the runs written", lambda: checks.run_count(conn) >= RUNS // 3, timeout=300)
            figures["runs stored when Redis was killed during the sync"] = checks.run_count(conn)
            back = restart(redis)
            assert not checks.sync_state(conn, state_id).finished, "Redis must come back while the sync still runs"
            wait_until("the sync to finish", lambda: checks.sync_state(conn, state_id).finished, timeout=600, every=0.5)
            figures["sync: s from Redis back to the sync finished"] = time.monotonic() - back
            first_success = checks.sync_state(conn, state_id).last_success_at
            enqueue(redis.url, SYNC_TASK, state_id)
            wait_until(
                "the worker to run a task sent after the restart",
                lambda: checks.sync_state(conn, state_id).last_success_at != first_success,
                timeout=300,
                every=0.3,
            )
            figures["sync: s from Redis back to the worker running a new task"] = time.monotonic() - back

            # MLflow stops answering, so the write-back the deployment owes is held in flight.
            os.killpg(mlflow, signal.SIGSTOP)
            try:
                mark = len(worker.log.read_bytes())
                write_back = json.loads(
                    run_module(
                        env,
                        "tests.faults.seed",
                        "staging-deploy",
                        "--release",
                        "churn0-v1",
                        "--model-version",
                        f"{MODEL}/{VERSION}",
                        "--alias",
                        ALIAS,
                    )
                )["write_back"]
                wait_until(
                    "the worker to take the write-back",
                    lambda: b"apply_write_back" in worker.log.read_bytes()[mark:],
                    timeout=120,
                )
                time.sleep(1)  # its request to MLflow is sent, and waits for the answer
                assert write_back_state(conn, write_back)[0] == "queued"
                back = restart(redis)
            finally:
                os.killpg(mlflow, signal.SIGCONT)
            wait_until(
                "the write-back to be applied",
                lambda: write_back_state(conn, write_back)[0] == "done",
                timeout=300,
                every=0.3,
            )
            figures["write-back: s from Redis back to the alias moved"] = time.monotonic() - back
        finally:
            worker.stop()

        assert write_back_state(conn, write_back) == ("done", 1)
        assert alias_target(campaign.mlflow.uri) == str(VERSION)
        assert checks.event_count(conn, "mlflow.write_back_applied") == 1
        assert checks.event_count(conn, "mlflow.write_back_failed") == 0
        for name, value in checks.every_run_once(conn, state_id, campaign.mlflow.run_ids).items():
            figures[name] = value
        figures["audit events"] = checks.event_count(conn)
    verdict, took = checks.verify_chain(env)
    figures["audit_verify"] = f"{verdict} ({took:.1f} s)"
