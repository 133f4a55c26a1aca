"""The servers tests and benchmarks start (mlflow, gunicorn, Celery, redis): a port for each, waiting until
one answers, and stopping it with all it forked.

Each is started in its own session (``start_new_session=True``), so its process group holds its workers.
Nothing but the standard library here: benchmarks import this before Django is set up, and the first-page
benchmark before anything is installed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import Any


class NotAnswering(RuntimeError):
    """A server started for a test or benchmark exited, or did not answer in time (it has been stopped)."""


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answering(url: str, process: subprocess.Popen[Any], *, timeout: float, log: Path | None = None) -> None:
    """Return once ``url`` answers with anything but a server error (a redirect or a 401 means the application
    is up). If ``process`` exits first, or ``timeout`` seconds pass, stop it and raise NotAnswering with the end
    of its ``log``."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise NotAnswering(f"the server for {url} exited with {process.returncode}{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError as answer:
            if answer.code < 500:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(process)
            raise NotAnswering(f"the server for {url} did not answer within {timeout:.0f} s{_tail(log)}")
        time.sleep(0.3)


def _tail(log: Path | None, chars: int = 3000) -> str:
    if log is None or not log.exists():
        return ""
    return ":\n" + log.read_text(errors="replace")[-chars:]


def stop(process: subprocess.Popen[Any], *, grace: float = 20) -> None:
    """End ``process`` and every process in its group: TERM, then KILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
