"""A fault-injecting HTTP proxy on loopback, in front of a real server (the `mlflow server` of the fault tests).

It forwards every request to the upstream server untouched until it is told to misbehave on a path: answer
500, stall past the client's timeout without answering, hang up without answering, or send the status, the
headers and half the body of the upstream's real answer and then drop the connection. A rule can let the
first N matching requests through (the pages before the fault) and stop after M faults (a fault that heals
by itself). The proxy counts what it saw, so a test can say how many attempts the client made.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

FaultKind = Literal["500", "stall", "hangup", "drop"]
# Hop-by-hop headers are the proxy's own business; the body is sent with its own Content-Length.
_NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


@dataclass
class Rule:
    """Misbehave on requests whose path starts with ``path``: after ``after`` good ones, ``times`` times.

    ``times`` None: until the proxy is healed.
    """

    path: str
    kind: FaultKind
    after: int = 0
    times: int | None = None
    matched: int = 0
    injected: int = 0
    injected_at: list[float] = field(default_factory=list)

    def applies(self, path: str) -> bool:
        """Count a request on this rule's path; True when this one gets the fault."""
        if not path.startswith(self.path):
            return False
        self.matched += 1
        if self.matched <= self.after or (self.times is not None and self.injected >= self.times):
            return False
        self.injected += 1
        self.injected_at.append(time.monotonic())
        return True


class FaultProxy:
    """The proxy's state: the upstream, the rule in force, and the requests seen by path."""

    def __init__(self, upstream: str, *, stall_seconds: float) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.stall_seconds = stall_seconds
        self.rule: Rule | None = None
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(self, rule: Rule) -> Rule:
        with self._lock:
            self.rule = rule
        return rule

    def heal(self) -> None:
        with self._lock:
            self.rule = None

    def requests_to(self, path: str) -> int:
        with self._lock:
            return sum(n for seen, n in self.seen.items() if seen.startswith(path))

    def _decide(self, path: str) -> FaultKind | None:
        with self._lock:
            self.seen[path] = self.seen.get(path, 0) + 1
            rule = self.rule
            return rule.kind if rule is not None and rule.applies(path) else None

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing.set()  # a stalled handler stops waiting
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_PATCH(self) -> None:
                self._serve()

            def do_DELETE(self) -> None:
                self._serve()

            def _serve(self) -> None:
                try:
                    self._proxy()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up first (its timeout): nothing to answer

            def _proxy(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?", 1)[0]
                fault = proxy._decide(path)
                if fault == "500":
                    self._answer(500, [("Content-Type", "text/html")], b"<h1>Internal Server Error</h1>")
                    return
                if fault in ("stall", "hangup"):
                    # Accept the request and say nothing (until the client has given up, for a stall), then hang up.
                    if fault == "stall":
                        proxy._closing.wait(proxy.stall_seconds)
                    self.close_connection = True
                    return
                status, headers, payload = self._forward(body)
                if fault == "drop":
                    self._answer(status, headers, payload[: len(payload) // 2], length=len(payload))
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self._answer(status, headers, payload)

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _NOT_FORWARDED]
                    return response.status, kept, payload
                finally:
                    upstream.close()

            def _answer(
                self, status: int, headers: list[tuple[str, str]], payload: bytes, *, length: int | None = None
            ) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload) if length is None else length))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


@contextmanager
def fault_proxy(upstream: str, *, stall_seconds: float) -> Iterator[FaultProxy]:
    """A proxy to ``upstream`` on a free loopback port, closed (and every stalled request released) on exit."""
    proxy = FaultProxy(upstream, stall_seconds=stall_seconds)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
