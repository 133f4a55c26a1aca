"""The simulated users of bench_load, read by ``locust -f`` in its own process.

Each kind asks for one thing again and again with no pause between requests (a closed loop: the
number of users is the number of requests in flight). An answer counts only when it is a 200 that
carries what a correct answer carries, so a redirect to the sign-in page or an error page is a
failure, not a fast success. The names, the API token and the session come from the JSON file that
BENCH_LOAD_PLAN names (bench_load writes it).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import gevent
from locust import FastHttpUser, constant, events, task

PLAN = json.loads(Path(os.environ["BENCH_LOAD_PLAN"]).read_text())


@events.init.add_listener
def read_the_clock(**_: object) -> None:
    """gevent's loop reads the clock once a turn, and has not turned since locust began to import: without
    this, --run-time would count from then, and a step on a busy machine would be seconds short."""
    gevent.get_hub().loop.update_now()


class _Asking(FastHttpUser):
    abstract = True
    wait_time = constant(0)
    # Bytes every correct answer contains.
    mark = b""

    def ask(self, path: str, name: str, headers: dict[str, str]) -> None:
        with self.client.get(path, name=name, headers=headers, allow_redirects=False, catch_response=True) as answer:
            if answer.status_code != 200 or self.mark not in (answer.content or b""):
                answer.failure(f"{answer.status_code} without {self.mark!r}")


class Board(_Asking):
    """An ML lead's board, signed in (the sign-out form is on every signed-in page)."""

    mark = b'class="logout"'

    @task
    def board(self) -> None:
        self.ask("/", "/", {"Cookie": PLAN["cookie"]})


class TracePage(_Asking):
    """A release's page (its trace), signed in."""

    mark = b'class="logout"'

    @task
    def trace_page(self) -> None:
        self.ask(f"/releases/{random.choice(PLAN['releases'])}/", "/releases/NAME/", {"Cookie": PLAN["cookie"]})


class TraceApi(_Asking):
    """The full trace over the API, with a reader's token."""

    mark = b'"lineage_digest"'

    @task
    def trace_api(self) -> None:
        headers = {"Authorization": f"Bearer {PLAN['token']}"}
        self.ask(f"/api/releases/{random.choice(PLAN['releases'])}/", "/api/releases/NAME/", headers)


class MlflowVersion(_Asking):
    """MLflow's own single lookup of a model version."""

    mark = b'"model_version"'

    @task
    def model_version(self) -> None:
        name, version = random.choice(PLAN["versions"])
        self.ask(f"/api/2.0/mlflow/model-versions/get?name={name}&version={version}", "model-versions/get", {})
