"""Releases through the service: the naming policy, submitting, signing (four-eyes, the signature, refusals that
name the rule, N approvals), rejecting and retiring.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import override_settings

from audit import signing
from audit.models import AuditEvent
from releases import lineage, services
from releases.errors import InvalidInput, PermissionRefused, RuleViolation
from releases.models import Approval, DatasetVersion, Release
from releases.roles import ML_LEADS
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, approve, reject
from tests.unit.conftest import MEANING, last_event, pending_release, refusals


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


def test_submit_freezes_the_digest(world, ci_account):
    release = world.release("churn-v42", world.model_version("churn-model/42"), by=ci_account)
    services.submit_release(release, by=ci_account)
    release.refresh_from_db()
    assert release.state == "pending"
    assert release.lineage_digest == lineage.trace("churn-v42").digest
    assert last_event("release.submitted").new["lineage_digest"] == release.lineage_digest


# Approving -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "rule", "words"),
    [
        pytest.param({"datasets": ()}, "incomplete_chain", "missing dataset version", id="no-dataset"),
        pytest.param({"with_commit": False}, "incomplete_chain", "missing git commit", id="no-commit"),
        pytest.param({"feature_view": ""}, "incomplete_chain", "missing feature pipeline version", id="no-features"),
        pytest.param({"report": ""}, "no_validation_report", "has no validation report", id="no-report"),
        pytest.param({"run_user": "lead"}, "four_eyes", "MLflow run author", id="run-author"),
    ],
)
def test_approval_refusal_names_the_rule(world, release_manager, lead, setup, rule, words):
    release = pending_release(world, release_manager, **setup)

    with pytest.raises(RuleViolation) as refused:
        approve(release, by=lead, password=PASSWORD, meaning=MEANING)

    assert refused.value.rule == rule
    assert words in refused.value.message
    release.refresh_from_db()
    assert release.state == Release.State.PENDING
    assert not Approval.objects.filter(release=release).exists()
    [event] = refusals(release.name)
    assert event.new == {"rule": rule}
    assert words in event.reason
    assert event.actor == "lead"


def test_approving_an_incomplete_chain_is_refused_naming_the_links(world, ci_account, lead):
    release = world.release("fraud-v8", world.model_version("fraud-model/8", feature_view=""), by=ci_account)
    services.submit_release(release, by=ci_account)
    with pytest.raises(RuleViolation, match="missing git commit, dataset version, feature pipeline version"):
        approve(release, by=lead, password=PASSWORD, meaning="Approved")
    assert last_event("release.approval_refused").new == {"rule": "incomplete_chain"}


def test_quarantined_dataset_refuses_approval(world, release_manager, lead):
    release = pending_release(world, release_manager)
    services.quarantine_dataset_version(world.dataset("churn-train:17"), by=lead, reason="label mapping changed")

    with pytest.raises(RuleViolation, match="churn-train:17, which is quarantined") as refused:
        approve(release, by=lead, password=PASSWORD, meaning=MEANING)

    assert refused.value.rule == "quarantined_data"
    assert [e.new["rule"] for e in refusals(release.name)] == ["quarantined_data"]


def test_mutated_dataset_refuses_approval(world, release_manager, lead):
    release = pending_release(world, release_manager)
    version = world.dataset("churn-train:17")
    services.observe_digest(version, digest="aaaa", source="mlflow", by=SYSTEM)
    services.observe_digest(version, digest="bbbb", source="mlflow", by=SYSTEM)

    with pytest.raises(RuleViolation, match="changed in place") as refused:
        approve(release, by=lead, password=PASSWORD, meaning=MEANING)

    assert refused.value.rule == "mutated_data"
    assert [e.new["rule"] for e in refusals(release.name)] == ["mutated_data"]


def test_moved_tag_refuses_approval(world, release_manager, lead):
    release = pending_release(world, release_manager, tag="model-churn-v42")
    services.record_tag(world.repo, name="model-churn-v42", sha=world.commit("hotfix").sha, by=SYSTEM)

    with pytest.raises(RuleViolation, match="tag model-churn-v42 moved") as refused:
        approve(release, by=lead, password=PASSWORD, meaning=MEANING)

    assert refused.value.rule == "moved_tag"
    assert [e.new["rule"] for e in refusals(release.name)] == ["moved_tag"]


def test_approving_your_own_release_is_refused_and_audited(world, lead):
    release = world.release("churn-v42", world.model_version("churn-model/42", commit=world.commit("c")), by=lead)
    services.submit_release(release, by=lead)
    with pytest.raises(RuleViolation, match="lead created churn-v42; another ML lead must approve it") as refused:
        approve(release, by=lead, password=PASSWORD, meaning="Approved for production")
    assert refused.value.rule == "four_eyes"
    release.refresh_from_db()
    assert release.state == "pending"
    assert not Approval.objects.exists()
    [event] = refusals(release.name)
    assert event.new == {"rule": "four_eyes"}
    assert event.actor == "lead"


def test_approval_by_someone_who_is_not_an_ml_lead_is_refused(world, release_manager, oncall):
    release = pending_release(world, release_manager)

    with pytest.raises(PermissionRefused, match="not an ML lead") as refused:
        approve(release, by=oncall, password=PASSWORD, meaning=MEANING)

    assert refused.value.rule == "not_ml_lead"
    [event] = refusals(release.name)
    assert (event.actor, event.new) == ("oncall", {"rule": "not_ml_lead"})


def test_wrong_password_records_no_signature(world, release_manager, lead):
    release = pending_release(world, release_manager)

    with pytest.raises(PermissionRefused, match="password does not match") as refused:
        approve(release, by=lead, password="guess", meaning=MEANING)

    assert refused.value.rule == "wrong_password"
    assert not Approval.objects.exists()
    assert [e.new for e in refusals(release.name)] == [{"rule": "wrong_password"}]


def test_signature_needs_a_meaning(world, release_manager, lead):
    release = pending_release(world, release_manager)

    with pytest.raises(InvalidInput, match="state what your signature means"):
        approve(release, by=lead, password=PASSWORD, meaning="  ")

    assert [e.new["rule"] for e in refusals(release.name)] == ["no_meaning"]


def test_draft_release_cannot_be_approved(world, release_manager, lead):
    world.dataset("churn-train:17")
    mv = world.model_version("churn-model/42", commit=world.commit("v42"), datasets=("churn-train:17",))
    release = world.release("churn-v42", mv, by=release_manager)

    with pytest.raises(RuleViolation, match="once submitted"):
        approve(release, by=lead, password=PASSWORD, meaning=MEANING)

    assert [e.new["rule"] for e in refusals("churn-v42")] == ["wrong_state"]


def test_chain_changed_since_reviewed_is_refused(world, release_manager, lead):
    release = pending_release(world, release_manager)

    with pytest.raises(RuleViolation, match="changed since you opened it") as refused:
        approve(release, by=lead, password=PASSWORD, meaning=MEANING, expected_digest="sha256:" + "0" * 64)

    assert refused.value.rule == "chain_changed"
    assert not Approval.objects.exists()
    assert [e.new["rule"] for e in refusals(release.name)] == ["chain_changed"]


def test_signing_twice_as_the_chain_stands_is_refused(world, release_manager, lead):
    release = pending_release(world, release_manager)
    approve(release, by=lead, password=PASSWORD, meaning=MEANING)

    with pytest.raises(RuleViolation, match="already signed") as refused:
        approve(release, by=lead, password=PASSWORD, meaning="Reviewed")

    assert refused.value.rule == "already_signed"
    assert Approval.objects.count() == 1


@override_settings(LINEAGE_REQUIRED_APPROVALS=2)
def test_required_approvals_need_distinct_leads(world, release_manager, lead, lead2):
    release = pending_release(world, release_manager)

    approve(release, by=lead, password=PASSWORD, meaning=MEANING)
    release.refresh_from_db()
    assert release.state == Release.State.PENDING
    assert not lineage.approval_state(lineage.trace(release.name)).is_valid

    approve(release, by=lead2, password=PASSWORD, meaning="Reviewed")
    release.refresh_from_db()
    assert release.state == Release.State.APPROVED
    assert [a.approver_name for a in lineage.approval_state(lineage.trace(release.name)).valid] == [
        "Lena Lead",
        "Omar Second",
    ]
    [changed] = AuditEvent.objects.filter(action="release.state_changed", object_key=release.name)
    assert changed.actor == "lead2"
    assert AuditEvent.objects.filter(action="release.approved", object_key=release.name).count() == 2


def test_a_release_with_every_signature_it_needs_takes_no_further_approval(world, release_manager, lead, lead2):
    release = pending_release(world, release_manager)
    approve(release, by=lead)

    with pytest.raises(RuleViolation) as refused:
        approve(release, by=lead2)

    assert (refused.value.rule, refused.value.status_code) == ("already_approved", 409)
    assert refused.value.message == "churn-v42 is already approved (signed by Lena Lead); it needs no further signature"
    assert list(Approval.objects.values_list("approver__username", flat=True)) == ["lead"]
    assert [e.new["rule"] for e in refusals(release.name)] == ["already_approved"]
    assert AuditEvent.objects.filter(action="release.state_changed", object_key=release.name).count() == 1


@override_settings(LINEAGE_REQUIRED_APPROVALS=2)
def test_with_two_signatures_required_the_third_lead_is_told_it_is_done(world, release_manager, lead, lead2):
    release = pending_release(world, release_manager)
    approve(release, by=lead)
    approve(release, by=lead2)
    third = User.objects.create_user("lead3", password=PASSWORD, first_name="Tia", last_name="Third")
    third.groups.add(Group.objects.get(name=ML_LEADS))

    with pytest.raises(RuleViolation, match=r"already approved \(signed by Lena Lead, Omar Second\)") as refused:
        approve(release, by=third)

    assert refused.value.rule == "already_approved"
    assert Approval.objects.filter(release=release).count() == 2


def test_an_approval_that_no_longer_counts_takes_signatures_again(world, release_manager, lead, lead2):
    release = pending_release(world, release_manager)
    approve(release, by=lead)
    services.quarantine_dataset_version(DatasetVersion.objects.by_key("churn-train:17").get(), by=lead, reason="leak")
    services.lift_quarantine(DatasetVersion.objects.by_key("churn-train:17").get(), by=lead, reason="false alarm")
    assert lineage.release_status(lineage.trace(release.name)).key == "invalidated"

    approve(release, by=lead2)

    assert lineage.release_status(lineage.trace(release.name)).key == "approved"


# Rejecting and retiring ------------------------------------------------------------------------------


def test_rejection_needs_a_comment(world, release_manager, lead):
    release = pending_release(world, release_manager)

    with pytest.raises(InvalidInput, match="needs a comment") as refused:
        reject(release, by=lead, password=PASSWORD, comment=" ")

    assert refused.value.rule == "comment_required"
    release.refresh_from_db()
    assert release.state == Release.State.PENDING


def test_rejection_is_signed_and_audited(world, release_manager, lead):
    release = pending_release(world, release_manager)

    reject(release, by=lead, password=PASSWORD, comment="AUC regressed on the eval set")

    release.refresh_from_db()
    assert release.state == Release.State.REJECTED
    rejection = Approval.objects.get(release=release)
    assert (rejection.decision, rejection.comment) == ("rejected", "AUC regressed on the eval set")
    event = AuditEvent.objects.get(action="release.rejected", object_key=release.name)
    assert event.reason == "AUC regressed on the eval set"


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


def test_approval_signs_the_lineage_digest_and_is_audited(world, release_manager, lead):
    release = pending_release(world, release_manager)
    digest = lineage.trace(release.name).digest

    approval = approve(release, by=lead, password=PASSWORD, meaning=MEANING, comment="looks good")

    release.refresh_from_db()
    approval = Approval.objects.get(pk=approval.pk)
    assert release.state == Release.State.APPROVED
    assert approval.approver_name == "Lena Lead"
    assert approval.signed_digest == digest
    assert lineage.trace(release.name).digest == digest, "signing does not change the digest it signed"
    assert approval.meaning == MEANING
    assert len(approval.signature) == 128
    assert signing.verify(approval.statement(), approval.signature)
    event = AuditEvent.objects.get(action="release.approved", object_key="churn-v42")
    assert event.actor == "lead"
    assert event.new["lineage_digest"] == digest
    assert event.new["signature"] == approval.signature
    assert event.reason == "looks good"
    [changed] = AuditEvent.objects.filter(action="release.state_changed", object_key="churn-v42")
    assert changed.new == {"state": "approved"}
