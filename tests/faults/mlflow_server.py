"""One real `mlflow server` on loopback for the fault tests of a session, and quick ways to fill it.

It takes many seconds to start, so the fault tests that log runs through its API share it (each uses its
own experiment and model names); it is stopped when the session ends. The webhook burst starts its own, on a
store filled by SQL with the versions its deliveries announce.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import start_mlflow_server, stop

_RUNNING: dict[str, tuple[subprocess.Popen[bytes], str]] = {}


@pytest.fixture(scope="session")
def mlflow_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tracking URI of the session's server (started by whichever fault test asks first)."""
    if "server" not in _RUNNING:
        _RUNNING["server"] = start_mlflow_server(tmp_path_factory.mktemp("mlflow-faults"))
    yield _RUNNING["server"][1]
    # Each test module that imports this fixture has its own copy of it; the first to finish stops the server.
    running = _RUNNING.pop("server", None)
    if running is not None:
        stop(running[0])


def tracking_client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def log_runs(client: Any, experiment: str, count: int, *, tags: dict[str, str] | None = None) -> list[str]:
    """``count`` finished runs in ``experiment`` (created if needed); their ids, oldest first."""
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run_ids = []
    for n in range(count):
        run = client.create_run(experiment_id, run_name=f"{experiment}-{n}", tags=tags or {})
        client.set_terminated(run.info.run_id)
        run_ids.append(str(run.info.run_id))
    return run_ids


def register_versions(client: Any, model: str, run_ids: list[str], *, tags: dict[str, str]) -> list[int]:
    """One version of registered model ``model`` per run, each with ``tags``; their version numbers."""
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):  # registered by an earlier call
        client.create_registered_model(model)
    return [
        int(client.create_model_version(model, source=f"runs:/{run_id}/model", run_id=run_id, tags=tags).version)
        for run_id in run_ids
    ]
