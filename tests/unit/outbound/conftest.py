"""A real HTTP receiver on loopback for outbound events, and a subscription to it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from audit.vocabulary import OUTBOUND_EVENTS
from releases import services
from releases.models import WebhookSubscription
from tests.factories import SYSTEM

SECRET_ENV = "LINEAGE_WEBHOOK_SECRET_TEST"
SECRET = "correct horse webhook secret"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        """Checked as a receiver would, from the headers alone: HMAC-SHA256 over "<id>.<timestamp>.<body>"."""
        signed = f"{self.headers['X-Lineage-Delivery-Id']}.{self.headers['X-Lineage-Timestamp']}.".encode() + self.body
        expected = "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
        return hmac.compare_digest(self.headers.get("X-Lineage-Signature", ""), expected)


@dataclass
class Receiver:
    """Records every request; answers each with the next scripted (status, headers), then 200."""

    url: str
    received: list[Received] = field(default_factory=list)
    answers: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)

    def answer(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.answers.extend((status, headers or {}) for status in statuses)


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A ``http.server`` on a free loopback port, in a thread, for as long as the block runs."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            status, headers = state.answers.popleft() if state.answers else (200, {})
            answer = b"ok" if status < 300 else f"receiver says {status}".encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/lineage"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """The subscriptions' signing secret, in the environment of this process (the worker, in eager mode)."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.delenv(f"{SECRET_ENV}_FILE", raising=False)
    return SECRET


def subscribe(
    url: str,
    events: Iterable[str] = tuple(OUTBOUND_EVENTS),
    *,
    name: str = "ops",
    format: str = "json",
    secret_env: str = SECRET_ENV,
) -> WebhookSubscription:
    return services.add_webhook(name=name, url=url, events=events, format=format, secret_env=secret_env, by=SYSTEM)[0]
