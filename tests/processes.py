"""Stopping the servers tests and benchmarks start (mlflow, gunicorn, Celery, redis) with all they forked.

Each is started in its own session (``start_new_session=True``), so its process group holds its workers.
No Django here: benchmarks import this before Django is set up.
"""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import suppress
from typing import Any


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
