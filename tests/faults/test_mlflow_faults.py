"""The MLflow server misbehaving in the middle of paging: bounded attempts, one plain line on /sync/, then a
complete sync once it recovers.

A real `mlflow server` holds the runs; the sync reads them through tests/faults/proxy.py, which lets the
first page through and then answers 500, stalls past the client's timeout, or drops the connection half-way
through the page. Pages of ten runs (the product reads a thousand at a time) make three pages of thirty runs.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.log import SystemActor
from releases import services
from releases.models import ExperimentRun, SyncState
from releases.sync import mlflow as mlflow_sync
from releases.tasks import sync_source
from tests.faults.mlflow_server import log_runs, mlflow_upstream, tracking_client
from tests.faults.proxy import FaultKind, FaultProxy, Rule, fault_proxy

__all__ = ["mlflow_upstream"]  # the session's server, a fixture

pytestmark = pytest.mark.django_db

RUNS = 30
PAGE = 10
SEARCH = "/api/2.0/mlflow/runs/search"
# The client's own retry settings as the product sets them (releases/sync/mlflow.py), restated so that the
# caller's shell cannot change them; only the stall's timeout is shortened from 60 s, to keep the test short.
RETRIES = 2
TIMEOUT_SECONDS = {"500": 30, "stall": 3, "drop": 30}
# Giving up takes the client's backoff (none, then 2 s) and, for a stall, its timeout on each of the three
# attempts (9 s); the rest is room for a loaded machine. (With the product's 60 s timeout, a stalled server
# holds a sync three minutes before it gives up.)
GIVE_UP_WITHIN = {"500": 15, "stall": 25, "drop": 15}


@pytest.fixture(scope="module")
def server_runs(mlflow_upstream: str) -> int:
    """Thirty finished runs on the server; returns how many runs the server holds in all."""
    client = tracking_client(mlflow_upstream)
    log_runs(client, f"faults-{uuid.uuid4().hex[:8]}", RUNS)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(experiments, max_results=50_000))


@pytest.fixture
def proxy(mlflow_upstream: str) -> Iterator[FaultProxy]:
    with fault_proxy(mlflow_upstream, stall_seconds=TIMEOUT_SECONDS["stall"] + 2) as running:
        yield running


@pytest.fixture
def behind_proxy(proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> SyncState:
    monkeypatch.setattr(mlflow_sync, "PAGE", PAGE)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(RETRIES))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    return services.add_mlflow_server(name="mlflow-prod", tracking_uri=proxy.url, by=SystemActor("test"))


def sync(state: SyncState) -> tuple[str, float]:
    """Run the worker's task (in-process) once; its outcome and how long it took."""
    started = time.monotonic()
    outcome = sync_source.apply(args=[state.pk]).get()
    return str(outcome), time.monotonic() - started


def sync_row(user: User, name: str) -> str:
    """The /sync/ page's table row for source ``name``, as an on-call engineer sees it."""
    client = Client()
    client.force_login(user)
    response = client.get("/sync/")
    assert response.status_code == 200
    [row] = [row for row in re.split(r"<tr>", response.content.decode()) if f"<strong>{name}</strong>" in row]
    return row


EXPECTED_ERROR = {
    "500": "answered runs/search with HTTP 500 (tried 3 times)",
    "stall": f"did not answer runs/search within {TIMEOUT_SECONDS['stall']} s (tried 3 times)",
    "drop": "dropped the connection in the middle of answering runs/search (tried 3 times)",
}


@pytest.mark.parametrize("kind", ["500", "stall", "drop"])
def test_mlflow_failing_mid_paging_is_tried_a_bounded_number_of_times_shown_plainly_then_synced_whole(
    kind: FaultKind,
    behind_proxy: SyncState,
    proxy: FaultProxy,
    server_runs: int,
    oncall: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", str(TIMEOUT_SECONDS[kind]))
    rule = proxy.inject(Rule(SEARCH, kind, after=1))  # the first page is answered, the second is not

    outcome, gave_up_after = sync(behind_proxy)

    expected = f"MLflow at {proxy.url} {EXPECTED_ERROR[kind]}"
    assert outcome == f"failed: {expected}"
    assert rule.injected == RETRIES + 1, "every attempt at the page, and no more"
    behind_proxy.refresh_from_db()
    assert behind_proxy.last_error == expected
    row = sync_row(oncall, "mlflow-prod")
    assert f'<div class="warning" role="alert">⚠ {expected}</div>' in row
    assert "Traceback" not in row
    assert ExperimentRun.objects.count() == PAGE, "the page read before the fault is kept"
    assert gave_up_after < GIVE_UP_WITHIN[kind]

    proxy.heal()
    outcome, recovered_in = sync(behind_proxy)

    assert not outcome.startswith("failed"), outcome
    behind_proxy.refresh_from_db()
    assert (behind_proxy.last_error, behind_proxy.failures_in_a_row) == ("", 0)
    assert ExperimentRun.objects.count() == server_runs
    assert ExperimentRun.objects.values("run_id").distinct().count() == server_runs, "every run exactly once"
    assert 'role="alert"' not in sync_row(oncall, "mlflow-prod")
    print(
        f"\n[mlflow {kind}] {rule.injected} attempts at page 2, gave up after {gave_up_after:.1f} s "
        f"({_seconds_between(rule.injected_at)}); after recovery every run of {server_runs} synced "
        f"in {recovered_in:.1f} s"
    )


def test_a_connection_dropped_once_mid_page_is_retried_and_the_sync_completes(
    behind_proxy: SyncState, proxy: FaultProxy, server_runs: int
) -> None:
    rule = proxy.inject(Rule(SEARCH, "drop", after=1, times=1))

    outcome, took = sync(behind_proxy)

    assert not outcome.startswith("failed"), outcome
    pages = -(-server_runs // PAGE)
    assert (rule.matched, rule.injected) == (pages + 1, 1), "page 2 read twice, every other page once"
    behind_proxy.refresh_from_db()
    assert behind_proxy.last_error == ""
    assert ExperimentRun.objects.values("run_id").distinct().count() == server_runs
    print(f"\n[mlflow drop once] page 2 read again after the drop; the sync completed in {took:.1f} s")


def _seconds_between(moments: list[float]) -> str:
    gaps = [f"{b - a:.1f}" for a, b in itertools.pairwise(moments)]
    return f"attempts {', '.join(gaps)} s apart" if gaps else "one attempt"
