"""Endpoints and deployments through the service: the promotion gate (also once an approval stops counting),
one event for a deployment reported twice, rolling back.
"""

from __future__ import annotations

import datetime
from datetime import UTC
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from releases import lineage, services
from releases.errors import Conflict, InvalidInput, PermissionRefused, RuleViolation
from releases.models import DatasetVersion, Deployment, Endpoint, EndpointModel, WriteBack
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, approve
from tests.unit.conftest import client_for, gate_refusals, last_event


def test_endpoint_is_created_and_audited(world):
    endpoint = services.create_endpoint(name="churn-scoring", environment="production", by=SYSTEM)
    endpoint.refresh_from_db()
    assert endpoint.is_production
    assert last_event("endpoint.created").object_key == "churn-scoring"


def test_endpoint_with_unknown_environment_is_refused(world):
    with pytest.raises(InvalidInput, match="environment must be one of production, staging"):
        services.create_endpoint(name="x", environment="prod", by=SYSTEM)


def test_declaring_an_endpoint_again_without_its_description_finds_it_and_writes_nothing(world):
    world.model_version("churn-model/42")
    declaration = {"name": "churn-scoring", "environment": "production", "registered_model": "churn-model"}
    first, created = services.declare_endpoint(**declaration, mlflow_alias="prod", description="Scores", by=SYSTEM)
    events = AuditEvent.objects.count()

    again, created_again = services.declare_endpoint(**declaration, mlflow_alias="prod", by=SYSTEM)

    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert AuditEvent.objects.count() == events
    again.refresh_from_db()
    assert again.description == "Scores"
    with pytest.raises(Conflict, match="already exists with MLflow alias 'prod' \\(not none\\), another description"):
        services.declare_endpoint(**declaration, description="Other", by=SYSTEM)


# Recording a deployment and the promotion gate -------------------------------------------------------


def test_deployment_is_recorded_and_audited(world, ci_account, lead, release_manager):
    release = world.full_release(42, by=ci_account, approver=lead)
    deployment = world.deploy(world.endpoint(), release, by=release_manager)
    deployment.refresh_from_db()
    assert (deployment.kind, deployment.actor, deployment.source) == ("deploy", "relman", "api")
    event = last_event("deployment.recorded")
    assert event.object_key == "churn-scoring"
    assert event.new["release"] == "churn-v42"


def test_reporting_the_same_deployment_twice_records_one_event(world, release_manager, lead):
    release = world.full_release(42, by=release_manager, approver=lead)
    endpoint = world.endpoint()

    first = services.record_deployment(endpoint, release, by=release_manager, source=Deployment.Source.API)
    again = services.record_deployment(endpoint, release, by=release_manager, source=Deployment.Source.API)

    assert first.pk == again.pk
    assert Deployment.objects.count() == 1
    assert AuditEvent.objects.filter(action="deployment.recorded").count() == 1


def test_unapproved_release_cannot_go_to_production_but_can_go_to_staging(world, ci_account, release_manager):
    release = world.release("churn-v42", world.model_version("churn-model/42"), by=ci_account)
    with pytest.raises(RuleViolation, match="churn-v42 is draft, not approved"):
        world.deploy(world.endpoint(), release, by=release_manager)
    assert last_event("deployment.refused").new["rule"] == "promotion_gate"
    world.deploy(world.endpoint("churn-staging", "staging"), release, by=release_manager)
    assert Deployment.objects.get().endpoint.name == "churn-staging"


def test_quarantine_after_approval_invalidates_it_end_to_end(world, release_manager, lead, lead2):
    release = world.full_release(42, by=release_manager, approver=lead2)
    production, staging = world.endpoint("churn-scoring"), world.endpoint("churn-shadow", "staging")
    client = client_for(release_manager)

    services.quarantine_dataset_version(world.dataset("churn-train:17"), by=lead, reason="partner label mapping")

    state = lineage.approval_state(lineage.trace(release.name))
    assert state.invalidated
    html = client.get(reverse("releases:release", args=[release.name])).content.decode()
    assert "Approval invalidated" in html
    assert "dataset churn-train:17 status changed from active to quarantined" in html
    with pytest.raises(RuleViolation, match="approval is no longer valid") as refused:
        services.record_deployment(production, release, by=release_manager, source=Deployment.Source.API)
    assert refused.value.rule == "promotion_gate"
    assert not Deployment.objects.filter(endpoint=production).exists()
    [event] = gate_refusals("churn-scoring")
    assert event.new["rule"] == "promotion_gate"
    assert "dataset churn-train:17 status changed" in event.reason
    services.record_deployment(staging, release, by=release_manager, source=Deployment.Source.API)
    assert Deployment.objects.filter(endpoint=staging, release=release).count() == 1


def test_lifted_quarantine_leaves_the_approval_invalid_until_signed_again(world, release_manager, lead, lead2):
    release = world.full_release(42, by=release_manager, approver=lead2)
    production = world.endpoint("churn-scoring")
    version = DatasetVersion.objects.by_key("churn-train:17").get()
    signed_before = lineage.trace(release.name).digest
    services.quarantine_dataset_version(version, by=lead, reason="partner label mapping")
    assert lineage.approval_state(lineage.trace(release.name)).invalidated

    services.lift_quarantine(version, by=lead, reason="partner fixed the mapping")

    version.refresh_from_db()
    assert version.status == "active"
    trace = lineage.trace(release.name)
    assert trace.digest != signed_before
    state = lineage.approval_state(trace)
    assert state.invalidated
    lifted = f"{version.quarantine_lifted_at:%Y-%m-%d %H:%M} UTC"
    quarantined = f"{version.quarantined_at:%Y-%m-%d %H:%M} UTC"
    explanation = f"dataset churn-train:17 was quarantined {quarantined} (lifted {lifted}); it must be signed again"
    assert state.stale[0][1] == [explanation]
    html = client_for(release_manager).get(reverse("releases:release", args=[release.name])).content.decode()
    assert "Approval invalidated" in html
    assert explanation in html
    with pytest.raises(RuleViolation, match="approval is no longer valid") as refused:
        services.record_deployment(production, release, by=release_manager, source=Deployment.Source.API)
    assert explanation in refused.value.message
    assert not Deployment.objects.exists()

    approval = approve(release, by=lead, password=PASSWORD, meaning="Approved for production")

    trace = lineage.trace(release.name)
    assert approval.signed_digest == trace.digest
    assert lineage.approval_state(trace).is_valid
    assert AuditEvent.objects.filter(action="release.approved", object_key=release.name).count() == 2
    deployment = services.record_deployment(production, release, by=release_manager, source=Deployment.Source.API)
    deployment.refresh_from_db()
    assert deployment.release_id == release.pk
    assert AuditEvent.objects.get(action="deployment.recorded").new["release"] == release.name


# Rolling back ----------------------------------------------------------------------------------------


def test_roll_back_restores_the_target_and_records_the_reason(world, ci_account, lead, oncall, release_manager):
    endpoint = world.endpoint()
    v41 = world.full_release(41, by=ci_account, approver=lead)
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    world.deploy(endpoint, v41, by=release_manager, hours_ago=5)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=1)
    deployment = services.roll_back(endpoint, by=oncall, reason="AUC alert", source=Deployment.Source.UI)
    assert (deployment.release.name, deployment.kind, deployment.reason) == ("churn-v41", "rollback", "AUC alert")
    [status] = lineage.endpoint_statuses(Endpoint.objects.filter(pk=endpoint.pk), deployment.deployed_at)
    assert status.live.release == v41
    assert last_event("deployment.rolled_back").reason == "AUC alert"


def test_each_deployment_keeps_where_its_model_went_once(world, ci_account, lead, oncall, release_manager):
    production, staging = world.endpoint(), world.endpoint("churn-staging", "staging")
    v41 = world.full_release(41, by=ci_account, approver=lead)
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    world.deploy(production, v41, by=release_manager, hours_ago=5)
    world.deploy(production, v42, by=release_manager, hours_ago=1)
    services.roll_back(production, by=oncall, reason="AUC alert", source=Deployment.Source.UI)
    assert list(EndpointModel.objects.values_list("registered_model__name", "endpoint__name")) == [
        ("churn-model", "churn-scoring")
    ]

    world.deploy(staging, v42, by=release_manager)

    went = EndpointModel.objects.order_by("endpoint__name").values_list("registered_model__name", "endpoint__name")
    assert list(went) == [("churn-model", "churn-scoring"), ("churn-model", "churn-staging")]


# When a deployment happened -----------------------------------------------------------------------


def _following(world):
    """An endpoint whose serving follows the MLflow alias churn-model@champion."""
    return services.create_endpoint(
        name="churn-follow",
        environment="production",
        registered_model="churn-model",
        mlflow_alias="champion",
        by=SYSTEM,
    )


def test_deployment_dated_before_its_release_existed_is_refused(world, ci_account, lead, release_manager):
    release = world.full_release(42, by=ci_account, approver=lead)
    endpoint = world.endpoint("churn-shadow", "staging")

    with pytest.raises(RuleViolation, match="before it existed"):
        services.record_deployment(
            endpoint,
            release,
            by=release_manager,
            source=Deployment.Source.API,
            at=datetime.datetime(2020, 1, 1, tzinfo=UTC),
        )

    assert not Deployment.objects.exists()
    event = last_event("deployment.refused")
    assert (event.actor, event.new["rule"], event.new["release"]) == ("relman", "before_release", "churn-v42")


def test_production_deployment_dated_before_the_approval_is_refused(world, ci_account, lead, release_manager):
    release = world.full_release(42, by=ci_account, approver=lead)
    assert release.created_at < release.state_changed_at
    production, staging = world.endpoint(), world.endpoint("churn-shadow", "staging")
    between = release.created_at

    with pytest.raises(RuleViolation, match="before that"):
        services.record_deployment(production, release, by=release_manager, source="api", at=between)

    assert last_event("deployment.refused").new["rule"] == "before_approval"
    assert not production.deployments.exists()
    # Staging took it before anyone signed.
    services.record_deployment(staging, release, by=release_manager, source="api", at=between)
    assert staging.deployments.get().deployed_at == between


def test_deployment_dated_in_the_future_is_refused(world, ci_account, lead, release_manager):
    release = world.full_release(42, by=ci_account, approver=lead)
    endpoint = world.endpoint()

    with pytest.raises(InvalidInput, match="in the future"):
        services.record_deployment(
            endpoint, release, by=release_manager, source="api", at=timezone.now() + datetime.timedelta(hours=1)
        )

    assert not Deployment.objects.exists()
    assert last_event("deployment.refused").new["rule"] == "future_deployment"


@pytest.mark.parametrize("late", [datetime.timedelta(minutes=3), datetime.timedelta(minutes=40)])
def test_a_deployment_reported_late_still_moves_the_alias_when_it_is_live(
    world, ci_account, lead, release_manager, late
):
    release = world.full_release(42, by=ci_account, approver=lead)
    endpoint = _following(world)
    went_live = release.state_changed_at + datetime.timedelta(seconds=1)

    # The report reaches us ``late`` after the release went live.
    with mock.patch("django.utils.timezone.now", return_value=went_live + late):
        deployment = services.record_deployment(endpoint, release, by=release_manager, source="api", at=went_live)

    assert deployment.deployed_at == went_live
    move = WriteBack.objects.get(kind=WriteBack.Kind.SET_ALIAS)
    assert (move.model_name, move.version, move.key) == ("churn-model", 42, "champion")


def test_a_backfill_records_history_with_its_reason_and_moves_no_alias(world, ci_account, lead, release_manager):
    release = world.full_release(42, by=ci_account, approver=lead)
    endpoint = _following(world)
    then = datetime.datetime(2020, 3, 1, 12, tzinfo=UTC)

    deployment = services.record_deployment(
        endpoint, release, by=release_manager, source="api", at=then, backfill=True, reason="imported from the old tool"
    )

    deployment.refresh_from_db()
    assert (deployment.deployed_at, deployment.reason) == (then, "imported from the old tool")
    event = last_event("deployment.backfilled")
    assert (event.actor, event.reason, event.new["deployed_at"]) == (
        "relman",
        "imported from the old tool",
        then.isoformat(),
    )
    assert not AuditEvent.objects.filter(action="deployment.recorded").exists()
    assert not WriteBack.objects.filter(kind=WriteBack.Kind.SET_ALIAS).exists()


def test_a_backfill_needs_a_reason_a_time_and_the_role(world, ci_account, lead, release_manager, oncall):
    release = world.full_release(42, by=ci_account, approver=lead)
    endpoint = world.endpoint()
    then = datetime.datetime(2020, 3, 1, 12, tzinfo=UTC)

    with pytest.raises(InvalidInput, match="reason"):
        services.record_deployment(endpoint, release, by=release_manager, source="api", at=then, backfill=True)
    with pytest.raises(InvalidInput, match="needs the time"):
        services.record_deployment(endpoint, release, by=release_manager, source="api", backfill=True, reason="old")
    with pytest.raises(PermissionRefused, match="oncall may not backfill a deployment"):
        services.record_deployment(endpoint, release, by=oncall, source="api", at=then, backfill=True, reason="old")

    assert not Deployment.objects.exists()
    refused = AuditEvent.objects.filter(action="deployment.refused").order_by("seq")
    assert [(e.new["rule"], e.new["backfill"]) for e in refused] == [
        ("invalid", True),
        ("backfill_needs_time", True),
        ("role", True),
    ]
