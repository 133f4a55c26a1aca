"""Races on real PostgreSQL: exactly one row where one is meant, a clear answer to the loser, never a 500."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections, transaction
from django.test import Client

from audit.log import verify_chain
from audit.models import AuditEvent
from releases import lineage, services
from releases.errors import RuleViolation
from releases.models import (
    Approval,
    DatasetVersionEndpoint,
    Deployment,
    Endpoint,
    ExperimentRun,
    ModelVersionDataset,
    Release,
)
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, World, approve
from tests.unit.conftest import MEANING, pending_release

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each returns its result or the exception it raised."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        try:
            barrier.wait()
            return call()
        except Exception as exc:  # the loser's exception is the answer under test
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(run, call) for call in calls]]


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("required", [1, 2])
def test_two_leads_approving_at_once(postgres, settings, release_manager, lead, lead2, required):
    settings.LINEAGE_REQUIRED_APPROVALS = required
    release = pending_release(World.create(), release_manager)

    results = at_once(
        *[lambda who=who: approve(release, by=who, password=PASSWORD, meaning=MEANING) for who in (lead, lead2)]
    )

    # As many signatures as required; a lead past that number is told the release is already approved.
    assert sum(isinstance(r, Approval) for r in results) == required, results
    assert [r.rule for r in results if isinstance(r, RuleViolation)] == ["already_approved"] * (2 - required)
    release.refresh_from_db()
    assert release.state == Release.State.APPROVED
    assert Approval.objects.count() == required
    # One transition to approved, whichever signature completed it.
    assert AuditEvent.objects.filter(action="release.state_changed", object_key=release.name).count() == 1
    assert AuditEvent.objects.filter(action="release.approved").count() == required
    assert verify_chain().ok


def test_double_submitted_approval_form(postgres, release_manager, lead):
    release = pending_release(World.create(), release_manager)
    clients = [logged_in(lead), logged_in(lead)]
    # Both tabs show the same chain, so both forms carry its digest.
    digest = lineage.trace(release.name).digest
    form = {"decision": "approve", "meaning": MEANING, "password": PASSWORD, "comment": "", "digest": digest}

    responses = at_once(*[lambda c=c: c.post(f"/releases/{release.name}/sign/", form) for c in clients])

    assert sorted(r.status_code for r in responses) == [302, 409]
    [loser] = [r for r in responses if r.status_code == 409]
    assert "has already signed churn-v42" in loser.content.decode()
    assert Approval.objects.count() == 1
    assert AuditEvent.objects.filter(action="release.approved").count() == 1
    release.refresh_from_db()
    assert release.state == Release.State.APPROVED


def test_same_lead_approving_twice_in_the_service(postgres, release_manager, lead):
    release = pending_release(World.create(), release_manager)

    results = at_once(*[lambda: approve(release, by=lead, password=PASSWORD, meaning=MEANING) for _ in range(2)])

    assert sorted(type(r).__name__ for r in results) == ["Approval", "RuleViolation"]
    [refused] = [r for r in results if isinstance(r, RuleViolation)]
    assert refused.rule == "already_signed"
    assert Approval.objects.count() == 1


@pytest.fixture
def live_endpoint(postgres: None, release_manager: User, lead: User) -> World:
    """churn-v41 then churn-v42 on churn-scoring (production), both approved; churn-v43 approved, not deployed."""
    world = World.create()
    v41 = world.full_release(41, by=release_manager, approver=lead)
    v42 = world.full_release(42, by=release_manager, approver=lead, dataset="churn-train:18")
    world.full_release(43, by=release_manager, approver=lead, dataset="churn-train:19")
    endpoint = world.endpoint()
    world.deploy(endpoint, v41, by=release_manager, hours_ago=48)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=1)
    return world


def test_the_same_deployment_reported_twice_at_once(live_endpoint, release_manager):
    token = services.create_api_token(release_manager, name="ci", scopes=["deployments:write"], by=SYSTEM)[1]
    clients = [Client(HTTP_AUTHORIZATION=f"Bearer {token}") for _ in range(2)]
    body = {"endpoint": "churn-scoring", "release": "churn-v43", "reason": "pipeline 881"}

    responses = at_once(
        *[lambda c=c: c.post("/api/deployments/", body, content_type="application/json") for c in clients]
    )

    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json()["id"] == responses[1].json()["id"]
    assert Deployment.objects.filter(release__name="churn-v43").count() == 1
    assert AuditEvent.objects.filter(action="deployment.recorded", new__release="churn-v43").count() == 1


def test_two_releases_deployed_to_one_endpoint_at_once(live_endpoint, release_manager, lead):
    v44 = live_endpoint.full_release(44, by=release_manager, approver=lead, dataset="churn-train:20")
    endpoint = v44.deployments.model.objects.first().endpoint
    releases = [Release.objects.get(name="churn-v43"), v44]

    results = at_once(
        *[
            lambda r=r: services.record_deployment(endpoint, r, by=release_manager, source=Deployment.Source.API)
            for r in releases
        ]
    )

    assert all(isinstance(r, Deployment) for r in results), results
    recorded = list(Deployment.objects.filter(release__in=releases).order_by("deployed_at", "id"))
    assert len(recorded) == 2
    # Recorded one after the other under the endpoint lock: the later one is live, times never tie backwards.
    assert recorded[0].deployed_at <= recorded[1].deployed_at
    live = Deployment.objects.filter(endpoint=endpoint).order_by("-deployed_at", "-id").first()
    assert live == recorded[1]
    assert verify_chain().ok


def test_two_on_call_engineers_rolling_back_at_once(live_endpoint, oncall, lead):
    clients = [logged_in(oncall), logged_in(lead)]
    form = {"reason": "INC-311 AUC dropped", "target": "churn-v41"}

    responses = at_once(*[lambda c=c: c.post("/endpoints/churn-scoring/rollback/", form) for c in clients])

    assert sorted(r.status_code for r in responses) == [302, 409]
    [loser] = [r for r in responses if r.status_code == 409]
    assert "changed since you confirmed: live now is churn-v41 (rollback by" in loser.content.decode()
    assert Deployment.objects.filter(kind="rollback").count() == 1
    assert Deployment.objects.filter(endpoint__name="churn-scoring").order_by("-deployed_at", "-id")[
        0
    ].release.name == ("churn-v41")
    assert AuditEvent.objects.filter(action="deployment.rolled_back").count() == 1


def test_a_version_linked_while_its_runs_inputs_change_follows_the_new_inputs(postgres):
    """A model version registered while a sync changes its run's inputs waits for that sync, then links the
    dataset versions the run has after it, not the ones the sync was replacing."""
    world = World.create()
    old, new = world.dataset("churn-train:1"), world.dataset("churn-train:2")

    def run(*versions: str) -> services.RunData:
        return services.RunData(run_id="run-r", name="r", datasets=[services.DatasetRef(key=key) for key in versions])

    services.record_run(world.server, run("churn-train:1"), by=SYSTEM)
    inputs_written, registering = threading.Event(), threading.Event()

    def change_inputs() -> None:
        with transaction.atomic():
            services.record_run(world.server, run("churn-train:2"), by=SYSTEM)
            inputs_written.set()
            registering.wait(10)
            time.sleep(0.5)  # the registration below runs meanwhile, up to the run's lock

    def register() -> None:
        inputs_written.wait(10)
        registering.set()
        services.register_model_version(
            world.server,
            services.ModelVersionData(name="churn", version=1, source_run_id="run-r", artifact_uri="models:/r"),
            by=SYSTEM,
        )

    results = at_once(change_inputs, register)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert set(ModelVersionDataset.objects.values_list("dataset_version_id", flat=True)) == {new.pk}
    assert old.pk != new.pk


@pytest.mark.parametrize("first", ["deployment", "new inputs"])
def test_where_a_dataset_version_reached_holds_when_a_deployment_races_a_change_of_inputs(
    postgres, ci_account, release_manager, first
):
    """A release goes live while a sync changes its run's inputs: whichever transaction holds the run first,
    the other waits and then sees it, so the endpoint is reached by the new inputs and not by the old."""
    world = World.create()
    old, new = world.dataset("churn-train:1"), world.dataset("churn-train:2")
    version = world.model_version("churn-model/1", datasets=("churn-train:1",))
    release = world.release("churn-v1", version, by=ci_account)
    endpoint = world.endpoint("churn-staging", "staging")
    holding, other_started = threading.Event(), threading.Event()

    def hold(write: Callable[[], Any]) -> Callable[[], None]:
        def held() -> None:
            with transaction.atomic():
                write()
                holding.set()
                other_started.wait(10)
                time.sleep(0.5)  # the other transaction runs meanwhile, up to the lock this one holds

        return held

    def follow(write: Callable[[], Any]) -> Callable[[], None]:
        def after() -> None:
            holding.wait(10)
            other_started.set()
            write()

        return after

    def deploy() -> None:
        services.record_deployment(endpoint, release, by=release_manager, source=Deployment.Source.API)

    def change_inputs() -> None:
        services.record_run(
            world.server,
            services.RunData(run_id=version.run.run_id, name="r", datasets=[services.DatasetRef(key="churn-train:2")]),
            by=SYSTEM,
        )

    calls = (hold(deploy), follow(change_inputs)) if first == "deployment" else (hold(change_inputs), follow(deploy))
    results = at_once(*calls)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert set(DatasetVersionEndpoint.objects.values_list("dataset_version_id", "endpoint_id")) == {
        (new.pk, endpoint.pk)
    }
    assert old.pk != new.pk


def test_a_rollback_and_a_sync_changing_the_targets_inputs_wait_for_each_other_in_no_circle(live_endpoint, oncall):
    """The rollback locks the endpoint, then the target's run; the sync holds that run and adds rows naming the
    endpoint. With the endpoint locked FOR UPDATE those rows would wait for the rollback, which waits for the
    run: PostgreSQL would end one as a deadlock. Locked FOR NO KEY UPDATE, the sync goes on, then the rollback."""
    endpoint = Endpoint.objects.get(name="churn-scoring")
    run = Release.objects.get(name="churn-v41").model_version.run
    run_held = threading.Event()

    def sync() -> None:
        with transaction.atomic():
            ExperimentRun.objects.select_for_update().get(pk=run.pk)
            run_held.set()
            time.sleep(1.5)  # the rollback locks the endpoint meanwhile, then waits for this run
            services.record_run(
                live_endpoint.server,
                services.RunData(
                    run_id=run.run_id,
                    name=run.name,
                    params=run.params,
                    metrics=run.metrics,
                    datasets=[
                        services.DatasetRef(key="churn-train:17"),
                        services.DatasetRef(key="churn-train:19", context="evaluation"),
                    ],
                ),
                by=SYSTEM,
            )

    def roll_back() -> Deployment:
        run_held.wait(10)
        return services.roll_back(endpoint, by=oncall, reason="INC-312", source=Deployment.Source.UI)

    results = at_once(sync, roll_back)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert results[1].release.name == "churn-v41"
    reached = DatasetVersionEndpoint.objects.filter(endpoint=endpoint)
    assert {link.dataset_version.key for link in reached.select_related("dataset_version__dataset")} == {
        "churn-train:17",
        "churn-train:18",
        "churn-train:19",
    }
