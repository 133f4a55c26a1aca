"""The demo world of DESIGN.md's story, built the way a team's work reaches the product.

The team's side is real: a git repository with release tags, CSV files, and an MLflow store (a
SQLite file under the demo folder) that training runs and registered model versions are logged to
with the MLflow client. The product learns commits, tags, runs, feature views and model versions
from the sync, as it would in production; people then act through the services: datasets
registered from the files, releases created by CI and approved by a second person, endpoints and
their deployments. Approvals write back to MLflow, and a last sync reads that back.
churn-v42 ends up live on churn-scoring, trained on churn-train:18; fraud-v8 lacks its dataset link.
Running it twice changes nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.utils import timezone

from releases import lineage, services
from releases.demo.story import (
    CHURN,
    COMMIT_URL_TEMPLATE,
    DEMO,
    FRAUD,
    MLFLOW_UI,
    PEOPLE,
    REPOSITORY,
    TRACKING_SERVER,
    ModelRelease,
)
from releases.demo.tracking import log_training
from releases.demo.workspace import DataFile, data_files, git_repository
from releases.models import Deployment, Release, SyncState
from releases.roles import RELEASE_MANAGERS
from releases.sync import sources

__all__ = ["PEOPLE", "build"]


def build(*, password: str, root: Path, say: Callable[[str], None] = print) -> None:
    """Build (or complete) the demo world under ``root``."""
    users = _people(password)
    repo_dir = git_repository(root / "git")
    git_source = services.add_git_repository(
        name=REPOSITORY, url=str(repo_dir.resolve()), commit_url_template=COMMIT_URL_TEMPLATE, by=DEMO
    )
    _sync(git_source, say)
    files = data_files(root)
    # Registered before the runs are synced, so the sync resolves the versions the runs name.
    _register_datasets(files)
    say("Logging training runs to MLflow (the first time takes a while: MLflow creates its database)...")
    uri = log_training(root, repo_dir, files)
    mlflow_source = services.add_mlflow_server(name=TRACKING_SERVER, tracking_uri=uri, ui_url=MLFLOW_UI, by=DEMO)
    _sync(mlflow_source, say)
    for item in CHURN:
        _release(item, users, password=password)
    _release(FRAUD, users, password=password)
    _deployments(users)
    # Approvals tagged the model versions in MLflow; the periodic sync would read that back, so do it now.
    _sync(mlflow_source, say)
    say(f"Demo world ready: {Release.objects.count()} releases, {Deployment.objects.count()} deployments.")
    say(f"MLflow UI on its store: .venv/bin/mlflow ui --backend-store-uri {uri} --port 5000")


def _sync(state: SyncState, say: Callable[[str], None]) -> None:
    result = sources.sync_state(state)
    say(f"Synced {state.kind} {state.source_name}: {result.summary()}")
    for warning in result.warnings:
        say(f"  warning: {warning}")


def _people(password: str) -> dict[str, User]:
    users = {}
    for username, first, last, roles, superuser in PEOPLE:
        user, _ = User.objects.get_or_create(
            username=username, defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com"}
        )
        user.set_password(password)
        user.is_staff = True
        user.is_superuser = superuser
        user.save()
        user.groups.add(*(Group.objects.get_or_create(name=role)[0] for role in roles))
        users[username] = user
    ci, _ = User.objects.get_or_create(username="ci", defaults={"first_name": "CI", "last_name": "pipeline"})
    ci.set_unusable_password()
    ci.save()
    ci.groups.add(Group.objects.get_or_create(name=RELEASE_MANAGERS)[0])
    users["ci"] = ci
    return users


def _register_datasets(files: dict[str, DataFile]) -> None:
    for file in files.values():
        content_hash, size = services.hash_file(file.path)
        services.register_dataset_version(
            name=file.name,
            version=file.version,
            uri=file.path.resolve().as_uri(),
            content_hash=content_hash,
            size_bytes=size,
            by=DEMO,
        )


def _release(item: ModelRelease, users: dict[str, User], *, password: str) -> None:
    """CI cuts the release from the synced model version and submits it; a lead approves the churn ones."""
    release, _ = services.create_release(
        name=item.name,
        model_version=f"{item.registered_model}/{item.number}",
        git_tag=item.git_tag,
        validation_report_uri=f"s3://ml-reports/{item.model}/v{item.number}/validation.html",
        submit=True,
        by=users["ci"],
    )
    # fraud-v8 stays pending: with no dataset link it cannot be approved.
    if release.state == Release.State.PENDING and item.dataset is not None:
        services.sign_release(
            release,
            by=users["lead"],
            decision="approve",
            password=password,
            meaning="Approved for production",
            comment="Metrics reviewed.",
            expected_digest=lineage.trace(release.name).digest,
        )


def _deployments(users: dict[str, User]) -> None:
    production = services.create_endpoint(
        name="churn-scoring",
        environment="production",
        registered_model="churn-model",
        mlflow_alias="production",
        by=DEMO,
    )
    staging = services.create_endpoint(
        name="churn-scoring-staging",
        environment="staging",
        registered_model="churn-model",
        mlflow_alias="staging",
        by=DEMO,
    )
    fraud = services.create_endpoint(
        name="fraud-scoring-staging", environment="staging", registered_model="fraud-model", by=DEMO
    )
    if Deployment.objects.filter(endpoint__in=[production, staging, fraud]).exists():
        return
    now = timezone.now()
    for item in CHURN:
        release = Release.objects.get(name=item.name)
        at = now - datetime.timedelta(days=item.days_ago)
        services.record_deployment(
            staging, release, by=users["ci"], source=Deployment.Source.API, at=at - datetime.timedelta(hours=6)
        )
        services.record_deployment(
            production, release, by=users["ci"], source=Deployment.Source.API, at=at, reason="Scheduled release"
        )
    services.record_deployment(
        fraud,
        Release.objects.get(name=FRAUD.name),
        by=users["ci"],
        source=Deployment.Source.API,
        at=now - datetime.timedelta(days=FRAUD.days_ago),
    )
