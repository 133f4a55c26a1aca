"""kill -9 a Celery worker in the middle of syncing 10,000 MLflow runs, twice, and restart it.

First the pool process alone is killed, as the kernel's OOM killer does: the worker's main process
hands the task back to Redis at once (acks late, reject on worker lost). Then the whole worker dies, as
when its machine or container does: Redis hands the task out again once its visibility timeout has
passed. Each time the task that comes back holds the lease of the delivery that died, so it resumes at
once instead of waiting for that lease to expire; the watermark the dead delivery never advanced makes
it read every run again, and the runs it had written are found unchanged.

After the restarts every MLflow run is stored exactly once, with its one creation event and its
dataset input, no audit event is recorded twice, the lease is released, and the chain verifies.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

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

# Short, so that the whole-worker kill is recovered within the test: Redis redelivers an unacknowledged
# task this long after it was handed out, and a sync's lease lasts this long past its last progress.
VISIBILITY_SECONDS = 10
LEASE_SECONDS = 30


def visible_again(redis: RedisServer) -> float:
    """When Redis may hand the unacknowledged task out again: its delivery time plus the visibility timeout."""
    delivered = redis.client().zrange("unacked_index", 0, -1, withscores=True)
    assert delivered, "the killed worker's task must be unacknowledged in Redis"
    return max(score for _, score in delivered) + VISIBILITY_SECONDS + 0.5


def test_worker_killed_mid_sync_resumes_and_writes_every_run_once(
    campaign: Campaign, database: str, redis: RedisServer, tmp_path: Path, figures: Figures
) -> None:
    env = app_environment(
        database_url=campaign.cluster.url(APP, database),
        redis_url=redis.url,
        var_dir=tmp_path / "var",
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_SECONDS),
        LINEAGE_SYNC_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    state_id = json.loads(run_module(env, "tests.faults.seed", "source", "mlflow", campaign.mlflow.uri))["state"]
    worker = Worker(env, tmp_path / "worker.log")
    with campaign.cluster.connect(database) as conn:
        try:
            worker.start()
            started = time.monotonic()
            enqueue(redis.url, SYNC_TASK, state_id)

            # The OOM killer's case: the pool process dies, the worker's main process lives on.
            wait_until("a third of the runs written", lambda: checks.run_count(conn) >= RUNS // 3, timeout=300)
            os.kill(worker.pool_child(), signal.SIGKILL)
            killed = time.monotonic()
            at_first_kill = checks.run_count(conn)
            figures["runs stored when the pool process was killed"] = at_first_kill
            wait_until(
                "the task handed back to resume writing",
                lambda: checks.run_count(conn) > at_first_kill,
                timeout=300,
            )
            figures["pool process killed: s until runs were written again"] = time.monotonic() - killed

            # The machine's case: main process and pool process die at once; a supervisor restarts the worker.
            wait_until("two thirds of the runs written", lambda: checks.run_count(conn) >= 2 * RUNS // 3, timeout=300)
            worker.kill()
            killed = time.monotonic()
            at_second_kill = checks.run_count(conn)
            figures["runs stored when the whole worker was killed"] = at_second_kill
            assert at_first_kill < at_second_kill < RUNS, "both kills must land in the middle of the sync"
            # A worker restores the unacknowledged tasks whose visibility timeout has passed as it starts (then
            # every 100 s): restarted once that is so, it gets the task back at once.
            time.sleep(max(0.0, visible_again(redis) - time.time()))
            worker.start()
            wait_until(
                "the sync to finish after the restart",
                lambda: checks.sync_state(conn, state_id).finished,
                timeout=600,
                every=0.5,
            )
            figures["whole worker killed: s until the sync finished"] = time.monotonic() - killed
            figures["whole sync with both kills, s"] = time.monotonic() - started
        finally:
            worker.stop()

        state = checks.sync_state(conn, state_id)
        assert state.last_error == ""
        for name, value in checks.every_run_once(conn, state_id, campaign.mlflow.run_ids).items():
            figures[name] = value
        assert checks.event_count(conn, "run.created") == RUNS
        assert checks.event_count(conn, "sync.mlflow.completed") == 1
        figures["audit events"] = checks.event_count(conn)
    verdict, took = checks.verify_chain(env)
    figures["audit_verify"] = f"{verdict} ({took:.1f} s)"
