"""One request to MLflow through ``releases.sync.mlflow.call``: bounded attempts, then one plain line.

The official client talks to a loopback server standing in for a broken MLflow (a canned search answer
behind the fault-injecting proxy of tests/faults), so the exceptions are the ones the client really raises.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from releases.models import TrackingServer
from releases.sync.mlflow import call
from releases.sync.state import SourceUnavailable
from tests.faults.proxy import FaultProxy, Rule, fault_proxy

SEARCH = "/api/2.0/mlflow/runs/search"
# A page with a long token: half of it is still not JSON.
PAGE = json.dumps({"runs": [], "next_page_token": "t" * 200}).encode()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The proxy in front of a server that answers every search with PAGE; the client tries twice, 1 s each."""

    class Search(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Search)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    try:
        with fault_proxy(f"http://127.0.0.1:{upstream.server_address[1]}", stall_seconds=3) as running:
            yield running
    finally:
        upstream.shutdown()
        upstream.server_close()
        thread.join(timeout=10)


def search(proxy: FaultProxy) -> tuple[Any, TrackingServer]:
    from mlflow.tracking import MlflowClient

    server = TrackingServer(name="mlflow", tracking_uri=proxy.url)
    client = MlflowClient(tracking_uri=proxy.url)
    return call(server, lambda: client.search_runs(["0"])), server


def refusal(proxy: FaultProxy) -> str:
    with pytest.raises(SourceUnavailable) as failed:
        search(proxy)
    return str(failed.value)


def test_a_healthy_server_is_asked_once(proxy: FaultProxy) -> None:
    page, _ = search(proxy)

    assert (list(page), page.token) == ([], "t" * 200)
    assert proxy.requests_to(SEARCH) == 1


def test_a_server_answering_500_is_tried_as_often_as_the_client_retries_then_named(proxy: FaultProxy) -> None:
    proxy.inject(Rule(SEARCH, "500"))

    assert refusal(proxy) == f"MLflow at {proxy.url} answered runs/search with HTTP 500 (tried 2 times)"
    assert proxy.requests_to(SEARCH) == 2


def test_a_stalled_server_is_given_up_after_the_timeout_on_each_attempt(proxy: FaultProxy) -> None:
    proxy.inject(Rule(SEARCH, "stall"))
    started = time.monotonic()

    assert refusal(proxy) == f"MLflow at {proxy.url} did not answer runs/search within 1 s (tried 2 times)"
    assert proxy.requests_to(SEARCH) == 2
    assert 2 <= time.monotonic() - started < 10


def test_a_server_hanging_up_without_an_answer_is_named(proxy: FaultProxy) -> None:
    proxy.inject(Rule(SEARCH, "hangup"))

    assert refusal(proxy) == (
        f"MLflow at {proxy.url} closed the connection without answering runs/search (tried 2 times)"
    )
    assert proxy.requests_to(SEARCH) == 2


def test_a_connection_dropped_mid_answer_once_is_retried_and_the_page_read(proxy: FaultProxy) -> None:
    rule = proxy.inject(Rule(SEARCH, "drop", times=1))

    page, _ = search(proxy)

    assert page.token == "t" * 200
    assert (rule.injected, proxy.requests_to(SEARCH)) == (1, 2)


def test_a_connection_dropped_mid_answer_every_time_is_given_up_after_as_many_attempts(proxy: FaultProxy) -> None:
    proxy.inject(Rule(SEARCH, "drop"))

    assert refusal(proxy) == (
        f"MLflow at {proxy.url} dropped the connection in the middle of answering runs/search (tried 2 times)"
    )
    assert proxy.requests_to(SEARCH) == 2
