"""The demo world of DESIGN.md's story, built the way a team's work reaches the product.

The team's side is real: a git repository with release tags, CSV files, and an MLflow store (a
SQLite file under the demo folder) that training runs and registered model versions are logged to
with the MLflow client. The product learns commits, tags, runs, feature views and model versions
from the sync, as it would in production; people then act through the services: datasets
registered from the files, releases cut by CI and approved by a second person, endpoints and their
deployments, which move the MLflow aliases serving follows.

Each of those steps runs at its moment of the story (see clock.py), in the order of time: a
release is created, then approved, then deployed, and the audit log reads in the same order.
Running it twice changes nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from django.contrib.auth.models import User

from releases import lineage, services
from releases.demo.clock import StoryClock
from releases.demo.people import people
from releases.demo.story import (
    APPROVED,
    APPROVER,
    COMMIT_URL_TEMPLATE,
    COMMITTED,
    DATA_REGISTERED,
    DEMO,
    ENDPOINTS,
    EVAL_DATASET,
    MLFLOW_UI,
    RELEASE_CUT,
    RELEASES,
    REPOSITORY,
    SYNCED,
    TRACKING_SERVER,
    TRAINING_MINUTES,
    TRAINING_STARTED,
    WAITING,
    ModelRelease,
    hours,
)
from releases.demo.tracking import log_training, open_store
from releases.demo.workspace import DataFile, commit, data_files, git_repository
from releases.models import Deployment, Endpoint, RegisteredModel, Release, SyncState
from releases.sync import sources

Say = Callable[[str], None]


@dataclass
class _World:
    """What the steps share: the people, the team's files and the two synced sources."""

    root: Path
    password: str
    say: Say
    clock: StoryClock
    users: dict[str, User]
    repo: Path
    files: dict[str, DataFile]
    tracking_uri: str
    git_source: SyncState
    mlflow_source: SyncState


def build(*, password: str, root: Path, say: Say = print) -> None:
    """Build (or complete) the demo world under ``root``."""
    say("Building the story step by step (the first time takes a while: MLflow creates its database)...")
    clock = StoryClock()
    with clock.at(_before(RELEASES[0], COMMITTED) + hours(1)):
        users = people(password)
        repo = git_repository(root / "git")
        files = data_files(root)
        uri = open_store(root)
        git_source = services.add_git_repository(
            name=REPOSITORY, url=str(repo.resolve()), commit_url_template=COMMIT_URL_TEMPLATE, by=DEMO
        )
        mlflow_source = services.add_mlflow_server(name=TRACKING_SERVER, tracking_uri=uri, ui_url=MLFLOW_UI, by=DEMO)
    world = _World(root, password, say, clock, users, repo, files, uri, git_source, mlflow_source)
    steps = [(before, index, step) for index, (before, step) in enumerate(_steps(world))]
    for before, _, step in sorted(steps, key=lambda item: (-item[0], item[1])):
        with clock.at(before):
            step()
    # Approvals and deployments tagged the model versions and moved the aliases in MLflow; the
    # periodic sync would read that back, so do it now (and the sync page shows both sources fresh).
    _sync_all(world)
    _describe_models(world)
    say(f"Demo world ready: {Release.objects.count()} releases, {Deployment.objects.count()} deployments.")
    say(f"{WAITING.name} waits for an ML lead's signature: log in as {APPROVER} and open /approvals/.")
    say(f"MLflow UI on its store: .venv/bin/mlflow ui --backend-store-uri {world.tracking_uri} --port 5000")


def _before(item: ModelRelease, offset: datetime.timedelta) -> datetime.timedelta:
    """How long before the build a step of ``item`` happened: ``offset`` before its day."""
    return datetime.timedelta(days=item.days_ago) + offset


def _steps(world: _World) -> list[tuple[datetime.timedelta, Callable[[], None]]]:
    """Every step of the story with how long before the build it happened (in any order; the caller sorts)."""
    steps: list[tuple[datetime.timedelta, Callable[[], None]]] = []
    for item in RELEASES:
        training_started = world.clock.started - _before(item, TRAINING_STARTED)
        logged = TRAINING_STARTED - datetime.timedelta(minutes=TRAINING_MINUTES + 3)
        steps += [
            (_before(item, COMMITTED), partial(commit, world.repo, item)),
            (_before(item, DATA_REGISTERED), partial(_register_datasets, world, item)),
            (
                _before(item, logged),
                partial(
                    log_training,
                    world.tracking_uri,
                    item,
                    started=training_started,
                    root=world.root,
                    repo=world.repo,
                    files=world.files,
                ),
            ),
            (_before(item, SYNCED), partial(_sync_all, world)),
            (_before(item, RELEASE_CUT), partial(_cut_release, world, item)),
        ]
        if item.approve:
            steps.append((_before(item, APPROVED), partial(_approve, world, item)))
        for endpoint, ahead in item.endpoints:
            steps.append((_before(item, hours(ahead)), partial(_deploy, world, item, endpoint)))
    return steps


def _sync(state: SyncState, say: Say) -> None:
    result = sources.sync_state(state)
    say(f"Synced {state.kind} {state.source_name}: {result.summary()}")
    for warning in result.warnings:
        say(f"  warning: {warning}")


def _sync_all(world: _World) -> None:
    _sync(world.git_source, world.say)
    _sync(world.mlflow_source, world.say)


def _register_datasets(world: _World, item: ModelRelease) -> None:
    """The training set (and the shared evaluation set), registered before the run that uses them is synced."""
    if not item.dataset_key:
        return
    for key in (f"{EVAL_DATASET[0]}:{EVAL_DATASET[1]}", item.dataset_key):
        file = world.files[key]
        content_hash, size = services.hash_file(file.path)
        services.register_dataset_version(
            name=file.name,
            version=file.version,
            uri=file.path.resolve().as_uri(),
            content_hash=content_hash,
            size_bytes=size,
            by=DEMO,
        )


def _cut_release(world: _World, item: ModelRelease) -> None:
    """CI cuts the release from the synced model version and submits it for approval."""
    services.create_release(
        name=item.name,
        model_version=f"{item.registered_model}/{item.number}",
        git_tag=item.git_tag,
        validation_report_uri=f"s3://ml-reports/{item.model}/v{item.number}/validation.html",
        submit=True,
        by=world.users["ci"],
    )


def _approve(world: _World, item: ModelRelease) -> None:
    release = Release.objects.get(name=item.name)
    if release.state == Release.State.PENDING:
        # The lead reviewed the chain as it stands: the signature covers that digest.
        services.sign_release(
            release,
            by=world.users[APPROVER],
            decision="approve",
            password=world.password,
            meaning="Approved for production",
            comment="Metrics reviewed.",
            expected_digest=lineage.trace(release.name).digest,
        )


def _describe_models(world: _World) -> None:
    """The lead keeps the inventory: the churn model is described; the fraud model is not yet, as it shows."""
    model = RegisteredModel.objects.filter(name=RELEASES[0].registered_model).first()
    if model is not None and not model.owner:
        services.describe_model(
            model,
            owner="Retention analytics (Lena Lead)",
            purpose="Scores each customer's risk of leaving, weekly, for the retention team's outreach.",
            by=world.users[APPROVER],
        )


def _deploy(world: _World, item: ModelRelease, name: str) -> None:
    spec = ENDPOINTS[name]
    endpoint = services.create_endpoint(
        name=spec.name,
        environment=spec.environment,
        registered_model=spec.registered_model,
        mlflow_alias=spec.mlflow_alias,
        by=DEMO,
    )
    release = Release.objects.get(name=item.name)
    if Deployment.objects.filter(endpoint=endpoint, release=release).exists():
        return
    services.record_deployment(
        endpoint,
        release,
        by=world.users["ci"],
        source=Deployment.Source.API,
        reason="Scheduled release" if spec.environment == Endpoint.Environment.PRODUCTION else "",
    )
