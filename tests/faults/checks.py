"""What every fault is judged by, read with SQL from the database the application wrote.

The checks do not go through the application under test: they count rows and audit events
themselves, and run the project's own ``manage.py audit_verify`` for the hash chain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.faults.services import manage


@dataclass(frozen=True)
class SyncState:
    lease_token: str
    progress_done: int
    last_success_at: Any
    last_error: str

    @property
    def finished(self) -> bool:
        return self.last_success_at is not None and not self.lease_token


def sync_state(conn: psycopg.Connection[Any], state_id: int) -> SyncState:
    row = conn.execute(
        "SELECT lease_token, progress_done, last_success_at, last_error FROM releases_syncstate WHERE id = %s",
        [state_id],
    ).fetchone()
    assert row is not None, f"no sync state {state_id}"
    return SyncState(*row)


def server_name(conn: psycopg.Connection[Any], state_id: int) -> str:
    row = conn.execute(
        "SELECT s.name FROM releases_trackingserver s JOIN releases_syncstate st ON st.server_id = s.id"
        " WHERE st.id = %s",
        [state_id],
    ).fetchone()
    assert row is not None
    return str(row[0])


def run_count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM releases_experimentrun").fetchone()
    return int(row[0]) if row else 0


def run_ids(conn: psycopg.Connection[Any]) -> list[str]:
    """Every stored run id, repeats kept (a repeat is what the campaign looks for)."""
    return [row[0] for row in conn.execute("SELECT run_id FROM releases_experimentrun")]


def duplicated_events(conn: psycopg.Connection[Any]) -> list[tuple[str, str, int]]:
    """Audit events recorded more than once: the same action on the same object with the same values."""
    return [
        (action, key, n)
        for action, key, n in conn.execute(
            "SELECT action, object_type || ':' || object_key, count(*) FROM audit_auditevent"
            " GROUP BY action, object_type, object_key, new::text, old::text HAVING count(*) > 1"
        )
    ]


def half_written_runs(conn: psycopg.Connection[Any], server: str) -> dict[str, int]:
    """Runs stored without exactly one creation event or without their dataset input, and events without a run."""
    counts = conn.execute(
        """
        SELECT
          (SELECT count(*) FROM releases_experimentrun r
            WHERE (SELECT count(*) FROM audit_auditevent e
                    WHERE e.object_type = 'run' AND e.object_key = %(server)s || ':' || r.run_id
                      AND e.action = 'run.created') <> 1),
          (SELECT count(*) FROM releases_experimentrun r
            WHERE NOT EXISTS (SELECT 1 FROM releases_rundatasetinput i WHERE i.run_id = r.id)),
          (SELECT count(*) FROM audit_auditevent e
            WHERE e.action = 'run.created' AND NOT EXISTS (
              SELECT 1 FROM releases_experimentrun r WHERE %(server)s || ':' || r.run_id = e.object_key))
        """,
        {"server": server},
    ).fetchone()
    assert counts is not None
    return dict(zip(("runs without one event", "runs without input", "events without run"), counts, strict=True))


def event_count(conn: psycopg.Connection[Any], action: str | None = None) -> int:
    if action is None:
        row = conn.execute("SELECT count(*) FROM audit_auditevent").fetchone()
    else:
        row = conn.execute("SELECT count(*) FROM audit_auditevent WHERE action = %s", [action]).fetchone()
    return int(row[0]) if row else 0


def verify_chain(env: dict[str, str]) -> tuple[str, float]:
    """``manage.py audit_verify`` over the whole log; its verdict line and how long it took. Fails when broken."""
    started = time.monotonic()
    done = manage(env, "audit_verify")
    took = time.monotonic() - started
    if done.returncode != 0:
        pytest.fail(f"audit_verify exited {done.returncode}: {done.stdout}{done.stderr}")
    verdict = next(line for line in done.stdout.splitlines() if line.startswith("audit log intact"))
    return verdict, took


def every_run_once(conn: psycopg.Connection[Any], state_id: int, expected: list[str]) -> dict[str, object]:
    """Assert what every sync fault must leave: each of MLflow's runs ``expected`` stored exactly once, none
    half-written (a run without its creation event or dataset input), and no audit event twice. Returns the
    figures it measured, by name."""
    stored = run_ids(conn)
    assert sorted(stored) == sorted(expected)
    half = half_written_runs(conn, server_name(conn, state_id))
    assert half == dict.fromkeys(half, 0)
    duplicated = duplicated_events(conn)
    assert duplicated == []
    return {
        "runs in MLflow / stored / distinct": f"{len(expected)} / {len(stored)} / {len(set(stored))}",
        "audit events duplicated": len(duplicated),
    }
