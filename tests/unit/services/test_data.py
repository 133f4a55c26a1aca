"""Dataset versions through the service: a second digest for one version, quarantine, and lifting it."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from releases import services
from releases.errors import InvalidInput, PermissionRefused, RuleViolation
from releases.models import DatasetVersion
from tests.factories import SYSTEM
from tests.unit.conftest import last_event


def test_second_digest_for_a_version_flags_it_as_mutated(world):
    version = world.dataset("churn-train:17")
    for run_id, digest in (("r1", "abc123"), ("r2", "abc123"), ("r3", "def456")):
        services.record_run(
            world.server,
            services.RunData(run_id=run_id, datasets=[services.DatasetRef("churn-train:17", digest=digest)]),
            by=SYSTEM,
        )
    version.refresh_from_db()
    assert version.mutated
    assert version.mutation_detail == "seen with digests abc123, def456"
    assert last_event("dataset_version.mutation_detected").new == {"digests": ["abc123", "def456"]}


# Quarantine ------------------------------------------------------------------------------------------


def test_quarantine_changes_status_and_records_reason_and_invalidations(world, ci_account, lead, lead2):
    release = world.full_release(42, by=ci_account, approver=lead2, dataset="churn-train:18")
    version = DatasetVersion.objects.by_key("churn-train:18").get()
    impact = services.quarantine_dataset_version(version, by=lead, reason="partner changed label mapping")
    version.refresh_from_db()
    assert version.status == "quarantined"
    assert version.status_reason == "partner changed label mapping"
    assert [r.name for r in impact.releases] == [release.name]
    event = last_event("dataset_version.quarantined")
    assert (event.actor, event.object_key, event.reason) == ("lead", "churn-train:18", "partner changed label mapping")
    assert last_event("release.approval_invalidated").object_key == "churn-v42"
    with pytest.raises(RuleViolation, match="already quarantined"):
        services.quarantine_dataset_version(version, by=lead, reason="again")


def test_quarantine_needs_a_reason_and_an_ml_lead(world, oncall, lead):
    version = world.dataset("churn-train:18")
    with pytest.raises(InvalidInput, match="a reason is required"):
        services.quarantine_dataset_version(version, by=lead, reason="  ")
    with pytest.raises(PermissionRefused, match="oncall may not quarantine a dataset version"):
        services.quarantine_dataset_version(version, by=oncall, reason="x")
    version.refresh_from_db()
    assert version.status == "active"
    assert not AuditEvent.objects.filter(action="dataset_version.quarantined").exists()


def test_refused_quarantine_is_audited(world, oncall, lead):
    version = world.dataset("churn-train:18")
    with pytest.raises(PermissionRefused):
        services.quarantine_dataset_version(version, by=oncall, reason="x")
    services.quarantine_dataset_version(version, by=lead, reason="bad labels")
    with pytest.raises(RuleViolation, match="already quarantined: bad labels"):
        services.quarantine_dataset_version(version, by=lead, reason="again")
    refusals = list(AuditEvent.objects.filter(action="dataset_version.quarantine_refused").order_by("seq"))
    assert [(e.actor, e.object_key, e.new["rule"]) for e in refusals] == [
        ("oncall", "churn-train:18", "role"),
        ("lead", "churn-train:18", "already_quarantined"),
    ]
    assert refusals[0].reason == "oncall may not quarantine a dataset version: it needs the role ml-leads"
    assert AuditEvent.objects.filter(action="dataset_version.quarantined").count() == 1


def test_lift_quarantine_makes_the_version_active_and_names_releases_to_sign_again(world, ci_account, lead, lead2):
    world.full_release(42, by=ci_account, approver=lead2, dataset="churn-train:18")
    version = DatasetVersion.objects.by_key("churn-train:18").get()
    services.quarantine_dataset_version(version, by=lead, reason="partner changed label mapping")
    quarantined_at = DatasetVersion.objects.get(pk=version.pk).quarantined_at

    to_sign = services.lift_quarantine(version, by=lead2, reason="partner fixed the mapping; re-checked")

    assert [r.name for r in to_sign] == ["churn-v42"]
    version.refresh_from_db()
    assert version.status == "active"
    assert version.status_reason == "partner fixed the mapping; re-checked"
    assert version.quarantined_at == quarantined_at
    assert version.quarantine_lifted_at is not None
    assert version.quarantine_lifted_at == version.status_changed_at
    assert version.quarantine_lifted
    event = last_event("dataset_version.quarantine_lifted")
    assert (event.actor, event.object_key, event.reason) == (
        "lead2",
        "churn-train:18",
        "partner fixed the mapping; re-checked",
    )
    assert event.old == {"status": "quarantined", "reason": "partner changed label mapping"}
    assert event.new == {"status": "active", "to_sign_again": ["churn-v42"]}
    with pytest.raises(RuleViolation, match="churn-train:18 is not quarantined"):
        services.lift_quarantine(version, by=lead, reason="again")
    assert AuditEvent.objects.filter(action="dataset_version.quarantine_lifted").count() == 1
    assert last_event("dataset_version.quarantine_lift_refused").new == {"rule": "not_quarantined"}


def test_lift_quarantine_by_a_non_lead_is_refused_and_audited(world, oncall, lead):
    version = world.dataset("churn-train:18")
    services.quarantine_dataset_version(version, by=lead, reason="bad labels")

    with pytest.raises(PermissionRefused, match="oncall may not lift a quarantine: it needs the role ml-leads"):
        services.lift_quarantine(version, by=oncall, reason="looks fine to me")

    version.refresh_from_db()
    assert (version.status, version.status_reason, version.quarantine_lifted_at) == ("quarantined", "bad labels", None)
    assert not AuditEvent.objects.filter(action="dataset_version.quarantine_lifted").exists()
    event = last_event("dataset_version.quarantine_lift_refused")
    assert (event.actor, event.object_key, event.new) == ("oncall", "churn-train:18", {"rule": "role"})
    assert event.reason == "oncall may not lift a quarantine: it needs the role ml-leads"


def test_lift_quarantine_needs_a_reason(world, lead):
    version = world.dataset("churn-train:18")
    services.quarantine_dataset_version(version, by=lead, reason="bad labels")

    with pytest.raises(InvalidInput, match="a reason is required to lift a quarantine"):
        services.lift_quarantine(version, by=lead, reason=" ")

    version.refresh_from_db()
    assert version.status == "quarantined"
    assert last_event("dataset_version.quarantine_lift_refused").new == {"rule": "invalid"}


def test_quarantining_again_after_a_lift_starts_a_new_quarantine(world, lead):
    version = world.dataset("churn-train:18")
    services.quarantine_dataset_version(version, by=lead, reason="bad labels")
    services.lift_quarantine(version, by=lead, reason="fixed")
    first = DatasetVersion.objects.get(pk=version.pk).quarantined_at

    services.quarantine_dataset_version(version, by=lead, reason="bad again")

    version.refresh_from_db()
    assert version.status == "quarantined"
    assert version.quarantined_at > first
    assert version.quarantine_lifted_at is None
    assert AuditEvent.objects.filter(action="dataset_version.quarantined").count() == 2
