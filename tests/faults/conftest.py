"""The fault campaign's services and figures.

`make faults` runs this directory (`pytest tests/faults`); the default `pytest` run leaves it out
(tests/conftest.py, ``pytest_ignore_collect``). Each test reports its figures with the ``figures``
fixture; they are printed together at the end of the run, for the README's table.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import mlflow_store
from tests.faults.services import APP, OWNER, PostgresCluster, RedisServer, app_environment, manage
from tests.integration.conftest import start_mlflow_server, stop

# The MLflow store every sync fault reads: the 10,000 runs, and a registered model's versions.
RUNS = 10_000
MODEL_VERSIONS = 100
TEMPLATE = "lineage_template"

_REPORTED: list[tuple[str, dict[str, str]]] = []


@dataclass
class Figures:
    """What one fault test measured, by name, in the order it measured it."""

    test: str
    values: dict[str, str] = field(default_factory=dict)

    def __setitem__(self, name: str, value: object) -> None:
        self.values[name] = f"{value:.1f}" if isinstance(value, float) else str(value)
        print(f"   {name}: {self.values[name]}", flush=True)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    measured = Figures(request.node.name)
    yield measured
    if measured.values:
        _REPORTED.append((measured.test, measured.values))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _REPORTED:
        return
    terminalreporter.section("fault campaign figures")
    for test, values in sorted(_REPORTED):
        terminalreporter.write_line(test)
        for name, value in values.items():
            terminalreporter.write_line(f"    {name}: {value}")


@dataclass
class MlflowStore:
    """The campaign's `mlflow server` and what its store holds."""

    uri: str
    process: Any
    run_ids: frozenset[str]


@dataclass
class Campaign:
    cluster: PostgresCluster
    mlflow: MlflowStore
    root: Path


def _mlflow(root: Path) -> MlflowStore:
    """Start the server on an empty store (it makes the schema), then write the runs straight into it."""
    process, uri = start_mlflow_server(root)
    try:
        run_ids = mlflow_store.fill(root / "mlflow.db", root / "artifacts", runs=RUNS, model_versions=MODEL_VERSIONS)
    except BaseException:
        stop(process)
        raise
    return MlflowStore(uri=uri, process=process, run_ids=frozenset(run_ids))


def _migrated_cluster(root: Path) -> PostgresCluster:
    """A private cluster with the two roles and a template database migrated as a release job does it."""
    cluster = PostgresCluster()
    try:
        cluster.create()
        cluster.create_database(TEMPLATE)
        env = app_environment(
            database_url=cluster.url(APP, TEMPLATE),
            redis_url="",
            var_dir=root / "migrate-var",
            DATABASE_MIGRATE_URL=cluster.url(OWNER, TEMPLATE),
        )
        done = manage(env, "migrate", "--noinput", "--database", "owner")
        if done.returncode != 0:
            pytest.fail(f"migrate failed: {done.stdout}{done.stderr}")
    except BaseException:
        cluster.stop()
        cluster.remove()
        raise
    return cluster


@pytest.fixture(scope="session")
def campaign() -> Iterator[Campaign]:
    """The cluster and the MLflow server, started side by side (each takes many seconds on a busy machine)."""
    root = Path(tempfile.mkdtemp(prefix="lineage-faults-"))
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            mlflow = pool.submit(_mlflow, root / "mlflow")
            try:
                cluster = _migrated_cluster(root)
            except BaseException:
                # Let the server finish starting, then stop it, so nothing outlives the session.
                stop(mlflow.result().process)
                raise
            try:
                store = mlflow.result()
            except BaseException:
                cluster.stop()
                cluster.remove()
                raise
        try:
            yield Campaign(cluster=cluster, mlflow=store, root=root)
        finally:
            stop(store.process)
            cluster.stop()
            cluster.remove()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database(campaign: Campaign) -> Iterator[str]:
    """A database of this test's own, a copy of the migrated template."""
    name = f"faults_{uuid.uuid4().hex[:8]}"
    campaign.cluster.create_database(name, template=TEMPLATE)
    yield name
    campaign.cluster.ensure_started()
    campaign.cluster.drop_database(name)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
