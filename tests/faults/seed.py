"""The rows a fault test starts from, written through the services in a process of their own.

``python -m tests.faults.seed SCENARIO ...`` runs with the environment the test gives it (the
campaign's own database, Redis and var directory, production settings) and prints what the test needs
as one JSON object. The tests themselves never open a Django connection to a database they crash.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import django

SYSTEM = "fault-campaign"
LEAD, MANAGER = "lead", "relman"
PASSWORD = "correct horse battery staple"


def _person(username: str, role: str) -> Any:
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    return user


def source(args: argparse.Namespace) -> dict[str, Any]:
    """An MLflow server to sync, and the dataset version its runs declare (so each run gets an input)."""
    from audit.log import SystemActor
    from releases import services
    from tests import mlflow_store

    actor = SystemActor(SYSTEM)
    name, _, version = mlflow_store.DATASET.partition(":")
    services.register_dataset_version(
        name=name, version=int(version), uri="s3://data/churn-train/17", content_hash="sha256:" + "0" * 64, by=actor
    )
    state = services.add_mlflow_server(name=args.name, tracking_uri=args.tracking_uri, by=actor)
    return {"state": state.pk}


def staging_deploy(args: argparse.Namespace) -> dict[str, Any]:
    """Deploy a synced model version to a staging endpoint that follows an MLflow alias: a write-back is owed."""
    from releases import services
    from releases.models import Deployment, WriteBack
    from releases.roles import RELEASE_MANAGERS

    manager = _person(MANAGER, RELEASE_MANAGERS)
    release, _ = services.create_release(name=args.release, model_version=args.model_version, by=manager)
    model = args.model_version.partition("/")[0]
    endpoint = services.create_endpoint(
        name="churn-staging", environment="staging", registered_model=model, mlflow_alias=args.alias, by=manager
    )
    services.record_deployment(endpoint, release, by=manager, source=Deployment.Source.API)
    write_back = WriteBack.objects.get(kind=WriteBack.Kind.SET_ALIAS, key=args.alias)
    return {"write_back": write_back.pk}


def pending_release(args: argparse.Namespace) -> dict[str, Any]:
    """A release with a complete chain, submitted for approval, and an ML lead who may sign it."""
    from releases import services
    from releases.roles import ML_LEADS, RELEASE_MANAGERS
    from tests.factories import World

    lead = _person(LEAD, ML_LEADS)
    manager = _person(MANAGER, RELEASE_MANAGERS)
    world = World.create()
    world.dataset("churn-train:17")
    commit = world.commit("churn v42")
    version = world.model_version("churn-model/42", commit=commit, datasets=("churn-train:17",))
    release, _ = services.create_release(
        name=args.release,
        model_version=version.key,
        validation_report_uri="s3://reports/churn-v42.html",
        submit=True,
        by=manager,
    )
    return {"release": release.name, "username": lead.username, "password": PASSWORD}


SCENARIOS = {"source": source, "staging-deploy": staging_deploy, "pending-release": pending_release}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.seed")
    commands = parser.add_subparsers(dest="scenario", required=True)
    add = commands.add_parser("source")
    add.add_argument("name")
    add.add_argument("tracking_uri")
    deploy = commands.add_parser("staging-deploy")
    deploy.add_argument("--release", required=True)
    deploy.add_argument("--model-version", required=True)
    deploy.add_argument("--alias", required=True)
    pending = commands.add_parser("pending-release")
    pending.add_argument("--release", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lineage_site.settings")
    django.setup()
    print(json.dumps(SCENARIOS[args.scenario](args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
