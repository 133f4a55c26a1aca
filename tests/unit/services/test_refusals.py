"""A refused write is evidence: each refusal a service raises leaves exactly one audit event, and nothing else."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from releases import services
from releases.errors import Conflict, InvalidInput, NotFound, PermissionRefused, RuleViolation
from releases.models import DatasetVersion, Deployment, Endpoint, Release
from tests.factories import reject
from tests.unit.conftest import pending_release


def refused(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_conflicting_dataset_registration_is_refused_and_audited(world, ci_account):
    world.dataset("churn-train:17")
    with pytest.raises(Conflict, match="already registered with sha256:"):
        services.register_dataset_version(
            name="churn-train", version=17, uri="s3://other", content_hash="sha256:" + "e" * 64, by=ci_account
        )
    [event] = refused("dataset_version.registration_refused")
    assert (event.object_type, event.object_key, event.actor) == ("dataset_version", "churn-train:17", "ci")
    assert event.new == {"rule": "immutable_version"}
    assert "register a new version" in event.reason
    assert DatasetVersion.objects.get().uri != "s3://other"


def test_dataset_registration_by_a_role_that_may_not_is_audited(world, auditor):
    with pytest.raises(PermissionRefused):
        services.register_dataset_version(
            name="churn-train", version=30, uri="s3://x", content_hash="sha256:" + "a" * 64, by=auditor
        )
    [event] = refused("dataset_version.registration_refused")
    assert (event.actor, event.new["rule"]) == ("auditor", "role")
    assert not DatasetVersion.objects.filter(version=30).exists()


def test_rejection_refusals_are_audited(world, release_manager, auditor, lead):
    release = pending_release(world, release_manager)
    with pytest.raises(PermissionRefused):
        reject(release, by=auditor, comment="no")
    with pytest.raises(InvalidInput, match="needs a comment"):
        reject(release, by=lead, comment="  ")
    assert [e.new["rule"] for e in refused("release.approval_refused")] == ["not_ml_lead", "comment_required"]
    release.refresh_from_db()
    assert release.state == Release.State.PENDING


def test_second_release_of_one_model_version_is_refused_and_audited(world, ci_account, release_manager):
    mv = world.model_version("churn-model/42")
    world.release("churn-v42", mv, by=ci_account)
    with pytest.raises(Conflict, match=r"already released as churn-v42 \(draft\)"):
        services.create_release(name="churn-v43", model_version=mv.key, by=release_manager)
    [event] = refused("release.creation_refused")
    assert (event.object_key, event.new) == ("churn-v43", {"rule": "one_release_per_version", "model_version": mv.key})
    assert not Release.objects.filter(name="churn-v43").exists()


def test_second_release_is_allowed_once_the_first_is_retired(world, ci_account, release_manager):
    mv = world.model_version("churn-model/42")
    first = world.release("churn-v42", mv, by=ci_account)
    services.retire_release(first, by=release_manager, reason="validation report was wrong")
    second, created = services.create_release(name="churn-v43", model_version=mv.key, by=release_manager)
    assert created
    assert second.model_version == mv


def test_a_refusal_passing_through_two_services_is_recorded_once(world, ci_account, lead, oncall, release_manager):
    # The rollback target is refused by the promotion gate inside roll_back: one event, by the first to see it.
    endpoint = world.endpoint()
    v41 = world.full_release(41, by=ci_account, approver=lead)
    world.deploy(endpoint, v41, by=release_manager, hours_ago=3)
    with pytest.raises(RuleViolation, match="churn-scoring has no rollback target: No earlier release"):
        services.roll_back(endpoint, by=oncall, reason="alert", source=Deployment.Source.UI)
    events = refused("deployment.rollback_refused")
    assert [e.new["rule"] for e in events] == ["no_rollback_target"]
    assert not refused("deployment.refused")
    assert Deployment.objects.filter(endpoint=endpoint).count() == 1


def test_creating_a_conflicting_endpoint_is_refused_and_audited(world, release_manager):
    world.endpoint("churn-scoring", "production")
    with pytest.raises(Conflict, match=r"already exists with environment 'production' \(not 'staging'\)"):
        services.create_endpoint(name="churn-scoring", environment="staging", by=release_manager)
    [event] = refused("endpoint.creation_refused")
    assert event.object_key == "churn-scoring"
    assert Endpoint.objects.get().environment == "production"


def test_a_refused_name_longer_than_the_audit_column_is_recorded_cut_and_marked(world, release_manager):
    name = "churn-v" + "4" * 300
    with pytest.raises(NotFound):
        services.create_release(name=name, model_version="churn-model/99", by=release_manager)
    [event] = refused("release.creation_refused")
    assert event.object_key == name[:254] + "…"
    assert not Release.objects.exists()
