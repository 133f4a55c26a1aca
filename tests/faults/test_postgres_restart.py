"""Crash PostgreSQL (pg_ctl stop -m immediate) in the middle of an MLflow sync and of an approval, and restart it.

To land the crash inside a transaction, the test holds the advisory lock the audit log takes for each
append: the sync's next page (its runs already inserted) and the approval (its signature already
inserted) wait for it, and PostgreSQL dies under them. Nothing half-written may survive: every stored
run has its creation event and its dataset input, and the approval exists with its event or not at
all. The person approving gets a page that says the database is unavailable, not a stack trace; the
first page after the restart answers; signing again then succeeds once. The interrupted sync is
retried by its task and completes. The chain verifies.
"""

from __future__ import annotations

import json
import re
import threading
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
    PostgresCluster,
    RedisServer,
    WebServer,
    Worker,
    app_environment,
    enqueue,
    run_module,
    wait_until,
)

# audit.log's advisory lock, taken by every append until its transaction ends.
AUDIT_APPEND_LOCK = 7_342_001
DOWN_SECONDS = 2
RELEASE = "churn-v42"
MEANING = "Approved for production"


def hold_audit_appends(cluster: PostgresCluster, database: str) -> psycopg.Connection[Any]:
    """A connection holding the append lock: the next transaction that records an event waits in the middle."""
    conn = cluster.connect(database)
    conn.execute("SELECT pg_advisory_lock(%s)", [AUDIT_APPEND_LOCK])
    return conn


def wait_for_a_blocked_writer(conn: psycopg.Connection[Any]) -> None:
    def blocked() -> bool:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'"
            " AND wait_event = 'advisory'",
            [APP],
        ).fetchone()
        return bool(row and row[0])

    wait_until("the application's transaction to wait on the audit append lock", blocked, timeout=120)


def crash_and_restart(cluster: PostgresCluster) -> float:
    """kill PostgreSQL the way a crash does, keep it down a moment, start it (recovery from the WAL)."""
    cluster.crash()
    time.sleep(DOWN_SECONDS)
    cluster.start()
    return time.monotonic()


def form_field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name} field in the page"
    return found.group(1)


def signed_in(web: WebServer, username: str, password: str) -> requests.Session:
    session = requests.Session()
    login = session.get(f"{web.url}/login/", timeout=60)
    answer = session.post(
        f"{web.url}/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": form_field(login.text, "csrfmiddlewaretoken"),
        },
        timeout=60,
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:2000]
    return session


def approvals(conn: psycopg.Connection[Any]) -> tuple[int, int, str]:
    """The release's approvals, its approval events, and its state."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM releases_approval a WHERE a.release_id = r.id),"
        " (SELECT count(*) FROM audit_auditevent e WHERE e.action = 'release.approved' AND e.object_key = r.name),"
        " r.state FROM releases_release r WHERE r.name = %s",
        [RELEASE],
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), str(row[2])


def test_postgres_crashed_mid_sync_leaves_no_half_written_run_and_the_sync_completes(
    campaign: Campaign, database: str, redis: RedisServer, tmp_path: Path, figures: Figures
) -> None:
    cluster = campaign.cluster
    env = app_environment(database_url=cluster.url(APP, database), redis_url=redis.url, var_dir=tmp_path / "var")
    state_id = json.loads(run_module(env, "tests.faults.seed", "source", "mlflow", campaign.mlflow.uri))["state"]
    worker = Worker(env, tmp_path / "worker.log")
    try:
        worker.start()
        with cluster.connect(database) as conn:
            enqueue(redis.url, SYNC_TASK, state_id)
            wait_until("a third of the runs written", lambda: checks.run_count(conn) >= RUNS // 3, timeout=300)
            holder = hold_audit_appends(cluster, database)
            wait_for_a_blocked_writer(conn)
            committed = checks.run_count(conn)
        figures["runs committed when PostgreSQL crashed mid-page"] = committed
        try:
            back = crash_and_restart(cluster)
        finally:
            holder.close()
        with cluster.connect(database) as conn:
            assert checks.run_count(conn) == committed, "the page being written when PostgreSQL died must be gone"
            half = checks.half_written_runs(conn, checks.server_name(conn, state_id))
            assert half == dict.fromkeys(half, 0)
            wait_until(
                "the interrupted sync to be retried and finish",
                lambda: checks.sync_state(conn, state_id).finished,
                timeout=600,
                every=0.5,
            )
            figures["s from PostgreSQL back to the sync finished"] = time.monotonic() - back
            for name, value in checks.every_run_once(conn, state_id, campaign.mlflow.run_ids).items():
                figures[name] = value
            assert checks.sync_state(conn, state_id).last_error == ""
    finally:
        worker.stop()
    verdict, took = checks.verify_chain(env)
    figures["audit_verify"] = f"{verdict} ({took:.1f} s)"


def test_postgres_crashed_mid_approval_the_approval_is_whole_or_absent_and_the_signer_is_told(
    campaign: Campaign, database: str, redis: RedisServer, tmp_path: Path, figures: Figures
) -> None:
    cluster = campaign.cluster
    env = app_environment(database_url=cluster.url(APP, database), redis_url=redis.url, var_dir=tmp_path / "var")
    seeded = json.loads(run_module(env, "tests.faults.seed", "pending-release", "--release", RELEASE))
    web = WebServer(env, tmp_path / "web.log")
    try:
        web.start()
        session = signed_in(web, seeded["username"], seeded["password"])
        page = session.get(f"{web.url}/releases/{RELEASE}/", timeout=60)
        assert page.status_code == 200

        # PostgreSQL restarts while nobody asks anything: the next page must not fail on a dead connection.
        back = crash_and_restart(cluster)
        page = session.get(f"{web.url}/releases/{RELEASE}/", timeout=60)
        figures["first page after a restart while idle"] = f"{page.status_code} in {time.monotonic() - back:.2f} s"
        assert page.status_code == 200

        form = {
            "csrfmiddlewaretoken": form_field(page.text, "csrfmiddlewaretoken"),
            "digest": form_field(page.text, "digest"),
            "decision": "approve",
            "meaning": MEANING,
            "password": seeded["password"],
        }
        answers: list[requests.Response] = []
        holder = hold_audit_appends(cluster, database)
        post = threading.Thread(
            target=lambda: answers.append(
                session.post(f"{web.url}/releases/{RELEASE}/sign/", data=form, timeout=120, allow_redirects=False)
            )
        )
        try:
            post.start()
            wait_for_a_blocked_writer(holder)
            cluster.crash()
            post.join(timeout=120)
        finally:
            holder.close()
        assert answers, "the approval request got no answer"
        refused = answers[0]
        figures["approval while PostgreSQL crashed: answer"] = (
            f"{refused.status_code}, Retry-After {refused.headers.get('Retry-After')}"
        )
        assert refused.status_code == 503
        assert "The database is unavailable" in refused.text
        assert "Traceback" not in refused.text
        time.sleep(DOWN_SECONDS)
        cluster.start()
        with cluster.connect(database) as conn:
            assert approvals(conn) == (0, 0, "pending"), "an approval cut off by the crash must leave nothing"
        signed = session.post(f"{web.url}/releases/{RELEASE}/sign/", data=form, timeout=120, allow_redirects=False)
        figures["approval signed again after the restart: answer"] = signed.status_code
        assert signed.status_code == 302
        with cluster.connect(database) as conn:
            assert approvals(conn) == (1, 1, "approved")
            duplicated = checks.duplicated_events(conn)
            figures["audit events duplicated"] = len(duplicated)
            assert duplicated == []
    finally:
        web.stop()
    verdict, took = checks.verify_chain(env)
    figures["audit_verify"] = f"{verdict} ({took:.1f} s)"
