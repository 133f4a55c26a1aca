"""What the team's training jobs leave in MLflow, written with the MLflow client.

Runs with params, metrics, the DESIGN.md tags and dataset inputs built with ``mlflow.data`` from the
CSV files; a small model artifact per run; registered model versions. The store is a SQLite file
with artifacts on disk beside it: no server, no network. Each training is logged when the story's
clock reaches it; everything is looked up before it is logged, so a second build adds nothing.
Serving aliases are not set here: deploying through the product moves them (write-back).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sqlite3
import tempfile
import warnings
from contextlib import closing
from pathlib import Path
from typing import Any

from django.conf import settings

from releases.demo.story import EVAL_DATASET, TRAINING_MINUTES, ModelRelease
from releases.demo.workspace import DataFile, git
from releases.errors import InvalidInput


def open_store(root: Path) -> str:
    """The MLflow store under ``root`` (made on first use); returns its tracking URI."""
    db = root / "mlflow.db"
    _empty_store(db)
    return f"sqlite:///{db.resolve()}"


def log_training(
    uri: str, item: ModelRelease, *, started: datetime.datetime, root: Path, repo: Path, files: dict[str, DataFile]
) -> None:
    """Log ``item``'s training run (started at ``started``) and register its model version."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    artifacts = (root / "mlartifacts").resolve()
    run_id = _run(client, item, started=started, artifacts=artifacts, repo=repo, files=files)
    _model_version(client, item, run_id=run_id, uri=uri)


def _empty_store(db: Path) -> None:
    """Start the store from a copy of an empty one, made once per MLflow version.

    MLflow builds its SQLite schema with some seventy migrations and hundreds of commits: seconds each
    time a demo world is built (every browser test builds one), most of it waiting for the disk. So
    MLflow builds it in memory-backed scratch space (/dev/shm, where there is one), and the result
    is copied out. The copy is switched to SQLite's write-ahead log, a mode kept in the file: each
    commit of the story then syncs one file instead of a journal and the database (churn-model/40
    alone takes 78, the numbers MLflow uses up before it). The store and what MLflow reads from it
    are the same.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    if db.exists():
        return
    template = Path(settings.VAR_DIR) / "cache" / f"mlflow-{mlflow.__version__}-empty.sqlite3"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        shm = Path("/dev/shm")  # noqa: S108 - only as the parent of a private mkdtemp directory
        with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None) as tmp:
            scratch = Path(tmp) / "mlflow.db"
            MlflowClient(tracking_uri=f"sqlite:///{scratch}").search_experiments()
            with closing(sqlite3.connect(scratch)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
            partial = template.with_name(f"{template.name}.{os.getpid()}.tmp")
            shutil.copyfile(scratch, partial)
        os.replace(partial, template)
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, db)


def _experiment(client: Any, name: str, artifacts: Path) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    # An explicit artifact location: the store's default is ./mlruns under whatever directory this runs in.
    return str(client.create_experiment(name, artifact_location=(artifacts / name).as_uri()))


def _run(
    client: Any,
    item: ModelRelease,
    *,
    started: datetime.datetime,
    artifacts: Path,
    repo: Path,
    files: dict[str, DataFile],
) -> str:
    from mlflow.entities import Metric, Param

    experiment_id = _experiment(client, item.model, artifacts)
    for run in client.search_runs([experiment_id], f"attributes.run_name = '{item.name}'"):
        if run.info.status == "FINISHED":
            return str(run.info.run_id)
        # A build stopped half-way through this run: log it again from the start.
        client.delete_run(run.info.run_id)
    commit = git(repo, "rev-parse", f"{item.git_tag or 'HEAD'}^{{commit}}")
    start_ms = int(started.timestamp() * 1000)
    end_ms = start_ms + TRAINING_MINUTES * 60 * 1000
    tags = {"mlflow.user": item.user, "mlflow.source.name": f"{item.model}.py", "git_commit": commit[:7]}
    if item.dataset_key:
        tags["dataset_version"] = item.dataset_key
    run = client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=item.name)
    run_id = str(run.info.run_id)
    params = {
        "feature_view": item.feature_view,
        "learning_rate": "0.05",
        "max_depth": str(item.max_depth),
    }
    metrics = {"auc": item.auc, "precision_at_10": round(item.auc - 0.21, 3)}
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, end_ms, 0) for key, value in metrics.items()],
        params=[Param(key, value) for key, value in params.items()],
    )
    if item.dataset_key:
        evaluation = files[f"{EVAL_DATASET[0]}:{EVAL_DATASET[1]}"]
        _log_inputs(client, run_id, train=files[item.dataset_key], evaluation=evaluation)
    model = {"kind": "logistic-regression", "feature_view": item.feature_view, "params": params, "metrics": metrics}
    client.log_text(run_id, json.dumps(model, indent=2, sort_keys=True), "model/model.json")
    client.set_terminated(run_id, "FINISHED", end_time=end_ms)
    return run_id


def _log_inputs(client: Any, run_id: str, *, train: DataFile, evaluation: DataFile) -> None:
    """The training set named like the dataset_version tag declares it; the evaluation set names its version."""
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for file, name, context in ((train, train.name, "training"), (evaluation, evaluation.key, "evaluation")):
        with warnings.catch_warnings():
            # MLflow warns that a file URI could be several kinds of source, and (when it infers the
            # schema) that integer columns cannot hold missing values: neither matters for a demo file.
            warnings.simplefilter("ignore", UserWarning)
            dataset = from_pandas(
                pd.read_csv(file.path), source=file.path.resolve().as_uri(), name=name, targets="label"
            )
            entity = Dataset(**dataset.to_dict())
        inputs.append(DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    client.log_inputs(run_id, datasets=inputs)


def _model_version(client: Any, item: ModelRelease, *, run_id: str, uri: str) -> bool:
    """Register the run's model as version ``item.number``; True when it was registered now.

    MLflow numbers versions itself and never reuses a number, even a deleted one. The story's
    churn-model/40 had 39 predecessors, so the numbers below it are used up by versions
    registered and deleted at once (search and the sync never see deleted versions).
    """
    name = item.registered_model
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        if int(version.version) == item.number:
            return False
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    while True:
        version = client.create_model_version(name, source, run_id=run_id)
        number = int(version.version)
        if number == item.number:
            return True
        client.delete_model_version(name, version.version)
        if number > item.number:
            raise InvalidInput(
                f"{name} in {uri} is already past version {item.number}; remove the demo folder and build again"
            )
