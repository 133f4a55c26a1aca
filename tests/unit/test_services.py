"""Every service: the state it leaves in the database and the audit event it writes."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from releases import lineage, services
from releases.errors import InvalidInput, PermissionRefused, RuleViolation
from releases.models import Approval, DatasetVersion, Deployment, Endpoint, Release
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, World, approve, reject


@pytest.fixture
def world(db):
    return World.create()


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


def test_sources_and_endpoints_are_audited(world):
    assert last_event("git_repository.added").object_key == "churn"
    assert last_event("tracking_server.added").new == {"tracking_uri": "http://127.0.0.1:5000"}
    endpoint = services.create_endpoint(name="churn-scoring", environment="production", by=SYSTEM)
    endpoint.refresh_from_db()
    assert endpoint.is_production
    assert last_event("endpoint.created").object_key == "churn-scoring"


def test_endpoint_with_unknown_environment_is_refused(world):
    with pytest.raises(InvalidInput, match="environment must be one of production, staging"):
        services.create_endpoint(name="x", environment="prod", by=SYSTEM)


def test_tag_move_is_flagged_and_audited_not_rewritten(world):
    first, second = world.commit("one"), world.commit("two")
    world.tag("model-churn-v42", first)
    tag, outcome = services.record_tag(world.repo, name="model-churn-v42", sha=second.sha, by=SYSTEM)
    assert outcome == "moved"
    tag.refresh_from_db()
    assert tag.commit_id == first.pk
    assert tag.moved_to_sha == second.sha
    event = last_event("git_tag.moved")
    assert event.old["sha"] == first.sha
    assert event.new["moved_to"] == second.sha
    assert services.record_tag(world.repo, name="model-churn-v42", sha=second.sha, by=SYSTEM)[1] == "unchanged"


def test_run_records_links_and_warns_about_malformed_references(world):
    commit = world.commit("c")
    world.dataset("churn-train:17")
    data = services.RunData(
        run_id="r1",
        name="churn-v42",
        commit_sha=commit.sha[:7],
        feature_view="not a view",
        datasets=[services.DatasetRef("churn-train:17"), services.DatasetRef("garbage")],
    )
    assert services.record_run(world.server, data, by=SYSTEM) == "created"
    run = world.server.runs.get(run_id="r1")
    assert run.commit_id == commit.pk
    assert run.commit_sha == commit.sha
    assert [i.dataset_version.key for i in run.dataset_inputs.all()] == ["churn-train:17"]
    assert run.warnings == [
        "feature view 'not a view' is not of the form <pipeline>_v<N>",
        "dataset version 'garbage' is not registered",
    ]
    assert last_event("run.created").object_key == "mlflow:r1"
    assert services.record_run(world.server, data, by=SYSTEM) == "unchanged"
    assert AuditEvent.objects.filter(action__startswith="run.").count() == 1


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


def test_submit_freezes_the_digest(world, ci_account):
    release = world.release("churn-v42", world.model_version("churn-model/42"), by=ci_account)
    services.submit_release(release, by=ci_account)
    release.refresh_from_db()
    assert release.state == "pending"
    assert release.lineage_digest == lineage.trace("churn-v42").digest
    assert last_event("release.submitted").new["lineage_digest"] == release.lineage_digest


def test_approval_is_signed_and_audited(world, ci_account, lead):
    release = world.full_release(42, by=ci_account, approver=lead)
    approval = Approval.objects.get(release=release)
    assert approval.approver_name == "Lena Lead"
    assert approval.signed_digest == lineage.trace("churn-v42").digest
    assert len(approval.signature) == 128
    assert release.state == "approved"
    event = last_event("release.approved")
    assert event.actor == "lead"
    assert event.new["signature"] == approval.signature
    assert last_event("release.state_changed").new == {"state": "approved"}


def test_approving_your_own_release_is_refused_and_audited(world, lead):
    release = world.release("churn-v42", world.model_version("churn-model/42", commit=world.commit("c")), by=lead)
    services.submit_release(release, by=lead)
    with pytest.raises(RuleViolation, match="lead created churn-v42; another ML lead must approve it"):
        approve(release, by=lead, password=PASSWORD, meaning="Approved for production")
    release.refresh_from_db()
    assert release.state == "pending"
    assert not Approval.objects.exists()
    event = last_event("release.approval_refused")
    assert event.new == {"rule": "four_eyes"}
    assert event.actor == "lead"


def test_approving_an_incomplete_chain_is_refused_naming_the_links(world, ci_account, lead):
    release = world.release("fraud-v8", world.model_version("fraud-model/8", feature_view=""), by=ci_account)
    services.submit_release(release, by=ci_account)
    with pytest.raises(RuleViolation, match="missing git commit, dataset version, feature pipeline version"):
        approve(release, by=lead, password=PASSWORD, meaning="Approved")
    assert last_event("release.approval_refused").new == {"rule": "incomplete_chain"}


def test_wrong_password_is_refused_and_audited(world, ci_account, lead):
    world.dataset("churn-train:17")
    mv = world.model_version("churn-model/42", commit=world.commit("c"), datasets=("churn-train:17",))
    release = world.release("churn-v42", mv, by=ci_account)
    services.submit_release(release, by=ci_account)
    with pytest.raises(PermissionRefused, match="password does not match"):
        approve(release, by=lead, password="wrong", meaning="Approved for production")
    assert last_event("release.approval_refused").new == {"rule": "wrong_password"}
    assert not Approval.objects.exists()


def test_reject_needs_a_comment_and_is_audited(world, ci_account, lead):
    release = world.release("churn-v42", world.model_version("churn-model/42"), by=ci_account)
    services.submit_release(release, by=ci_account)
    with pytest.raises(InvalidInput, match="a rejection needs a comment"):
        reject(release, by=lead, password=PASSWORD, comment="")
    reject(release, by=lead, password=PASSWORD, comment="AUC regressed on the holdout set")
    release.refresh_from_db()
    assert release.state == "rejected"
    assert last_event("release.rejected").reason == "AUC regressed on the holdout set"


def test_retire_is_audited(world, ci_account, release_manager):
    release = world.release("churn-v42", world.model_version("churn-model/42"), by=ci_account)
    services.retire_release(release, by=release_manager, reason="superseded by churn-v43")
    release.refresh_from_db()
    assert release.state == "retired"
    assert last_event("release.retired").reason == "superseded by churn-v43"


def test_deployment_is_recorded_and_audited(world, ci_account, lead, release_manager):
    release = world.full_release(42, by=ci_account, approver=lead)
    deployment = world.deploy(world.endpoint(), release, by=release_manager)
    deployment.refresh_from_db()
    assert (deployment.kind, deployment.actor, deployment.source) == ("deploy", "relman", "api")
    event = last_event("deployment.recorded")
    assert event.object_key == "churn-scoring"
    assert event.new["release"] == "churn-v42"


def test_unapproved_release_cannot_go_to_production_but_can_go_to_staging(world, ci_account, release_manager):
    release = world.release("churn-v42", world.model_version("churn-model/42"), by=ci_account)
    with pytest.raises(RuleViolation, match="churn-v42 is draft, not approved"):
        world.deploy(world.endpoint(), release, by=release_manager)
    assert last_event("deployment.refused").new["rule"] == "promotion_gate"
    world.deploy(world.endpoint("churn-staging", "staging"), release, by=release_manager)
    assert Deployment.objects.get().endpoint.name == "churn-staging"


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


def test_roll_back_without_a_target_is_refused_with_the_reason(world, ci_account, lead, oncall, release_manager):
    endpoint = world.endpoint()
    world.deploy(endpoint, world.full_release(42, by=ci_account, approver=lead), by=release_manager)
    with pytest.raises(RuleViolation, match="churn-scoring has no rollback target: No earlier release"):
        services.roll_back(endpoint, by=oncall, reason="alert", source=Deployment.Source.UI)
    assert Deployment.objects.count() == 1


def test_naming_policy(world, ci_account):
    mv = world.model_version("churn-model/42")
    for bad, message in (
        ("final-final-v2", "ambiguous"),
        ("churn_42", "does not follow the naming policy; use churn-v<N>"),
        ("fraud-v42", "names model 'fraud' but releases churn-model"),
        ("churn-v42-latest", "does not follow"),
    ):
        with pytest.raises(InvalidInput, match=message):
            services.create_release(name=bad, model_version=mv.key, by=ci_account)
    assert not Release.objects.exists()
    other = world.model_version("churn-model/43")
    for good, version in (("churn-v42", mv), ("churn-model-v43", other)):
        services.create_release(name=good, model_version=version.key, by=ci_account)
    assert Release.objects.count() == 2


def test_naming_policy_pattern_is_a_setting(world, ci_account, settings):
    settings.LINEAGE_RELEASE_NAME_PATTERN = r"^rel-(?P<number>\d+)$"
    mv = world.model_version("churn-model/42")
    services.create_release(name="rel-42", model_version=mv.key, by=ci_account)
    with pytest.raises(InvalidInput):
        services.create_release(name="churn-v42", model_version=mv.key, by=ci_account)
