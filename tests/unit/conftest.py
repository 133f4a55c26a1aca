"""What several unit test files share: the world they build in, the stories they start from, small readers.

Stories are fixtures; the helpers are plain functions, imported from here.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEvent
from releases import lineage, services
from releases.models import ApiToken, Endpoint, Release
from tests.factories import SYSTEM, World

MEANING = "Approved for production"


@pytest.fixture
def world(db: object) -> World:
    return World.create()


def pending_release(
    world: World,
    by: User,
    *,
    number: int = 42,
    datasets: tuple[str, ...] = ("churn-train:17",),
    report: str = "s3://reports/v42.html",
    tag: str = "",
    feature_view: str = "customer_features_v5",
    run_user: str = "data-scientist",
    with_commit: bool = True,
) -> Release:
    """churn-v<number>, submitted and waiting for a signature; by default its chain is complete."""
    for key in datasets:
        world.dataset(key)
    commit = world.commit(f"churn v{number}") if with_commit else None
    if tag and commit is not None:
        world.tag(tag, commit)
    mv = world.model_version(
        f"churn-model/{number}", commit=commit, datasets=datasets, feature_view=feature_view, user=run_user
    )
    release = world.release(f"churn-v{number}", mv, by=by, report=report, tag=tag)
    return services.submit_release(release, by=by)


def refusals(name: str) -> list[AuditEvent]:
    """The signatures refused on release ``name``, oldest first."""
    return list(AuditEvent.objects.filter(action="release.approval_refused", object_key=name).order_by("seq"))


def gate_refusals(endpoint: str) -> list[AuditEvent]:
    """The deployments the promotion gate refused on ``endpoint``."""
    return list(AuditEvent.objects.filter(action="deployment.refused", object_key=endpoint))


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def status_of(endpoint: Endpoint, when: datetime.datetime | None = None) -> lineage.EndpointStatus:
    """What the pages and the rollback service read: the endpoint's live deployment and rollback target."""
    [status] = lineage.endpoint_statuses(Endpoint.objects.filter(pk=endpoint.pk), when)
    return status


def board_with(world: World, count: int, *, by: User, approver: User, deployer: User) -> None:
    """``count`` production endpoints, each with two releases deployed in turn."""
    for i in range(count):
        endpoint = world.endpoint(f"churn-scoring-{i}")
        older = world.full_release(100 + 2 * i, by=by, approver=approver)
        newer = world.full_release(101 + 2 * i, by=by, approver=approver)
        world.deploy(endpoint, older, by=deployer, hours_ago=10)
        world.deploy(endpoint, newer, by=deployer, hours_ago=1)


def token_for(user: User, *scopes: str) -> str:
    """A raw API token for ``user``, with every scope unless told which."""
    return services.create_api_token(user, name="ci-churn", scopes=scopes or ApiToken.Scope.values, by=SYSTEM)[1]


def api(raw: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


@pytest.fixture
def story(world: World, ci_account: User, lead: User, release_manager: User) -> dict[str, Any]:
    """churn-v40, v41, v42 deployed in turn to churn-scoring; v42 trained on churn-train:18."""
    v40 = world.full_release(40, by=ci_account, approver=lead, dataset="churn-train:16")
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    endpoint = world.endpoint()
    world.deploy(endpoint, v40, by=release_manager, hours_ago=72)
    world.deploy(endpoint, v41, by=release_manager, hours_ago=48)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=24)
    return {"v40": v40, "v41": v41, "v42": v42, "endpoint": endpoint}


@pytest.fixture
def deployed_world(ci_account: User, lead2: User, release_manager: User) -> World:
    """churn-v41 (on churn-train:17) then churn-v42 (on churn-train:18), approved by lead2, deployed in turn."""
    world = World.create()
    v41 = world.full_release(41, by=ci_account, approver=lead2, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead2, dataset="churn-train:18")
    endpoint = world.endpoint("churn-scoring")
    world.deploy(endpoint, v41, by=release_manager, hours_ago=48)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=3)
    return world


@pytest.fixture
def incident(world: World, release_manager: User, lead: User) -> Endpoint:
    """churn-v41 then churn-v42 live on churn-scoring; churn-v41 is the rollback target."""
    v41 = world.full_release(41, by=release_manager, approver=lead)
    v42 = world.full_release(42, by=release_manager, approver=lead, dataset="churn-train:18")
    endpoint = world.endpoint()
    world.deploy(endpoint, v41, by=release_manager, hours_ago=48)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=1)
    return endpoint
