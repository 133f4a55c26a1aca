"""Behaviours of the release rules that only a test can keep: each one here is a rule that a one-operator
change (a mutant) broke with every other test still green. Each acts through the services and reads back
the database and the audit events, so the next refactor cannot break the rule unseen.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from audit import log, merkle, vocabulary
from audit.models import AuditEvent
from releases import lineage, services
from releases.errors import Conflict, InvalidInput, NotFound, RuleViolation
from releases.models import (
    Approval,
    DatasetVersion,
    Deployment,
    ExperimentRun,
    GitRepository,
    GitTag,
    Release,
    WriteBack,
)
from releases.services import deployment
from tests.factories import SYSTEM, World, approve, reject, sha_of
from tests.unit.conftest import last_event, pending_release, refusals, status_of

vocabulary.register("test.rules_hold", "An event written by the rule tests.")


def _deployed_three(world: World, *, by: Any, approver: Any, deployer: Any) -> tuple[Any, list[Release]]:
    """churn-v41, v42, v43 approved and deployed on one production endpoint in that order."""
    endpoint = world.endpoint()
    releases = []
    for hours_ago, number in ((6, 41), (4, 42), (2, 43)):
        release = world.full_release(number, by=by, approver=approver, dataset=f"churn-train:{number}")
        world.deploy(endpoint, release, by=deployer, hours_ago=hours_ago)
        releases.append(release)
    return endpoint, releases


# 1. A stale rollback confirmation, with the target moved to an older release ------------------------


def test_a_rollback_confirmed_for_a_target_that_moved_to_an_older_release_is_refused(
    world, ci_account, lead, oncall, release_manager
):
    endpoint, (v41, v42, _) = _deployed_three(world, by=ci_account, approver=lead, deployer=release_manager)
    assert status_of(endpoint).rollback_target == v42
    # Someone else rolls back first: v42 is live and the target is now v41, not nothing.
    services.roll_back(endpoint, by=oncall, reason="latency alert", source=Deployment.Source.UI)
    assert status_of(endpoint).rollback_target == v41

    with pytest.raises(RuleViolation, match="the rollback target is no longer churn-v42") as refused:
        services.roll_back(
            endpoint, by=oncall, reason="AUC alert", source=Deployment.Source.UI, expected_target="churn-v42"
        )
    assert refused.value.rule == "rollback_target_changed"
    assert Deployment.objects.filter(kind=Deployment.Kind.ROLLBACK).count() == 1
    assert status_of(endpoint).live.release == v42
    assert last_event("deployment.rollback_refused").new["rule"] == "rollback_target_changed"


# 2. The production gate reads the state, not only the signatures ------------------------------------


def test_a_release_rejected_after_an_approval_is_refused_by_production(world, ci_account, lead, lead2, release_manager):
    release = pending_release(world, ci_account)
    approve(release, by=lead)
    reject(release, by=lead2, comment="the holdout set leaks training rows")
    trace = lineage.trace(release.name)
    assert lineage.approval_state(trace).is_valid  # the approving signature is still digest-valid
    with pytest.raises(RuleViolation, match="churn-v42 is rejected, not approved") as refused:
        world.deploy(world.endpoint(), release, by=release_manager)
    assert refused.value.rule == "promotion_gate"
    assert not Deployment.objects.exists()


def test_a_release_submitted_again_after_a_rejection_waits_for_a_new_signature(
    world, ci_account, lead, lead2, release_manager
):
    release = pending_release(world, ci_account)
    approve(release, by=lead)
    reject(release, by=lead2, comment="the holdout set leaks training rows")
    services.submit_release(release, by=ci_account)
    release.refresh_from_db()
    assert release.state == Release.State.PENDING
    assert lineage.release_status(lineage.trace(release.name)).key == "pending"
    with pytest.raises(RuleViolation, match="not approved"):
        world.deploy(world.endpoint(), release, by=release_manager)
    assert not Deployment.objects.exists()


# 3. Every field of the chain feeds the digest ------------------------------------------------------


def _rewrites(release: Release, world: World) -> dict[str, tuple[str, list[object]]]:
    run = release.model_version.run
    other_commit = world.commit("an unrelated change")
    other_features = world.model_version("churn-model/99", feature_view="customer_features_v9").run
    return {
        "run changed": ("UPDATE releases_experimentrun SET params = %s WHERE id = %s", ['{"max_depth": "7"}', run.pk]),
        "commit changed": ("UPDATE releases_release SET commit_id = %s WHERE id = %s", [other_commit.pk, release.pk]),
        "model version changed": (
            "UPDATE releases_modelversion SET artifact_uri = %s WHERE id = %s",
            ["models:/elsewhere", release.model_version_id],
        ),
        "feature pipeline version changed": (
            "UPDATE releases_experimentrun SET feature_pipeline_version_id = %s WHERE id = %s",
            [other_features.feature_pipeline_version_id, run.pk],
        ),
        "validation report uri changed": (
            "UPDATE releases_release SET validation_report_uri = %s WHERE id = %s",
            ["s3://reports/another.html", release.pk],
        ),
    }


@pytest.mark.parametrize(
    "change",
    [
        "run changed",
        "commit changed",
        "model version changed",
        "feature pipeline version changed",
        "validation report uri changed",
    ],
)
def test_every_link_of_the_chain_invalidates_the_approval_and_is_named(
    change, behind_the_apps_back, ci_account, lead, release_manager
):
    world = World.create()
    release = world.full_release(42, by=ci_account, approver=lead)
    signed = lineage.trace(release.name).digest
    assert lineage.approval_state(lineage.trace(release.name)).invalidated is False
    sql, params = _rewrites(release, world)[change]
    behind_the_apps_back(sql, params)

    trace = lineage.trace(release.name)
    assert trace.digest != signed
    state = lineage.approval_state(trace)
    assert not state.is_valid
    assert state.invalidated is True
    assert state.changes == [change]
    status = lineage.release_status(trace)
    assert status.key == "invalidated"
    assert change in status.detail
    with pytest.raises(RuleViolation, match="approval is no longer valid"):
        world.deploy(world.endpoint(), release, by=release_manager)


def test_the_run_is_in_the_digest_with_its_params(world, ci_account, lead):
    release = world.full_release(42, by=ci_account, approver=lead)
    chain = lineage.trace(release.name).chain()
    run = ExperimentRun.objects.get(pk=release.model_version.run_id)
    assert chain["run"] == {"run_id": run.run_id, "server": run.server.name, "params": run.params}


# 4. A signature that renews an approval keeps the release approved once ---------------------------
# (A signature beyond the required ones is refused: tests/unit/services/test_release.py.)


def test_a_signature_renewing_an_invalidated_approval_keeps_it_approved_once(
    world, ci_account, lead, lead2, release_manager, settings
):
    settings.LINEAGE_REQUIRED_APPROVALS = 1
    release = pending_release(world, ci_account)
    approve(release, by=lead)
    version = DatasetVersion.objects.by_key("churn-train:17").get()
    services.quarantine_dataset_version(version, by=lead, reason="label leak suspected")
    services.lift_quarantine(version, by=lead, reason="false alarm")
    assert lineage.release_status(lineage.trace(release.name)).key == "invalidated"

    approve(release, by=lead2, meaning="Reviewed")

    release.refresh_from_db()
    assert release.state == Release.State.APPROVED
    assert lineage.release_status(lineage.trace(release.name)).key == "approved"
    assert AuditEvent.objects.filter(action="release.state_changed", object_key=release.name).count() == 1
    assert AuditEvent.objects.filter(action="release.approved", object_key=release.name).count() == 2
    assert WriteBack.objects.filter(kind=WriteBack.Kind.SET_TAG, value=release.name).count() == 1
    world.deploy(world.endpoint(), release, by=release_manager)
    assert Deployment.objects.filter(release=release).count() == 1


# 5. A retired release is never deployed --------------------------------------------------------


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_a_retired_release_is_never_deployed(environment, world, ci_account, lead, release_manager):
    release = world.full_release(42, by=ci_account, approver=lead)
    services.retire_release(release, by=lead, reason="superseded by v43")
    endpoint = world.endpoint(f"churn-{environment}", environment=environment)
    with pytest.raises(RuleViolation, match="churn-v42 is retired; a retired release is never deployed") as refused:
        world.deploy(endpoint, release, by=release_manager)
    assert refused.value.rule == "retired"
    assert not Deployment.objects.exists()
    assert last_event("deployment.refused").new["rule"] == "retired"


def test_retiring_twice_is_refused_and_recorded(world, ci_account, lead):
    release = world.full_release(42, by=ci_account, approver=lead)
    services.retire_release(release, by=lead, reason="superseded by v43")
    with pytest.raises(RuleViolation, match="churn-v42 is already retired") as refused:
        services.retire_release(release, by=lead, reason="again")
    assert refused.value.rule == "already_retired"
    assert AuditEvent.objects.filter(action="release.retired").count() == 1
    assert last_event("release.retirement_refused").new["rule"] == "already_retired"


# 6. The hash chain over a long log, and a forged link ---------------------------------------------


def _events(count: int) -> None:
    with transaction.atomic():
        log.record_many(
            [log.PendingEvent("test.rules_hold", "thing", str(i), new={"i": i}) for i in range(count)], actor=SYSTEM
        )


def test_an_intact_log_longer_than_256_events_verifies(db):
    _events(300)
    result = log.verify_chain()
    assert result.ok, result
    assert AuditEvent.objects.count() == 300


def test_a_link_forged_with_a_high_sorting_prev_hash_is_named_at_the_forged_event(behind_the_apps_back):
    _events(300)
    forged = AuditEvent.objects.get(seq=280)
    forged.prev_hash = "f" * 64
    behind_the_apps_back(
        "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE seq = 280",
        [forged.prev_hash, forged.compute_hash()],
    )
    result = log.verify_chain()
    assert not result.ok
    assert result.broken_seq == 280


# 7. Signing twice as the chain stands is refused by the rule, and recorded ------------------------


def test_signing_twice_is_refused_by_the_rule_before_the_password(world, ci_account, lead, settings):
    settings.LINEAGE_REQUIRED_APPROVALS = 2
    release = pending_release(world, ci_account)
    approve(release, by=lead)
    trace = lineage.trace(release.name)
    refusal = lineage.signing_refusal(trace, lead)
    assert refusal is not None
    assert refusal.rule == "already_signed"
    assert [item.release for item, _ in lineage.approval_queue(lead).blocked] == [release]

    # The rule answers before the password is even checked: no failed sign-in is counted for it.
    with pytest.raises(RuleViolation, match="lead has already signed churn-v42 as it stands") as refused:
        approve(release, by=lead, password="not the password")
    assert refused.value.rule == "already_signed"
    assert Approval.objects.filter(release=release).count() == 1
    assert [event.new["rule"] for event in refusals(release.name)] == ["already_signed"]


# 8. Deployment times are covered with the deployment rules (tests/unit/services/test_deployment.py).


# 9. Git tags at release creation ---------------------------------------------------------------


def _second_repository_with_tag(name: str) -> GitRepository:
    other = services.add_git_repository(
        name="feature-store", url="https://git.example.com/feature-store.git", by=SYSTEM
    ).repository
    sha = sha_of("feature-store head")
    services.record_commits(other, [services.CommitData(sha=sha, author_name="Dev", message="head")])
    services.record_tag(other, name=name, sha=sha, by=SYSTEM)
    return other


def test_a_tag_of_the_same_name_in_two_repositories_is_ambiguous_without_a_run_commit(world, ci_account):
    world.tag("v42", world.commit("churn v42"))
    _second_repository_with_tag("v42")
    version = world.model_version("churn-model/42")  # the run names no commit: no repository to look in
    with pytest.raises(NotFound, match="git tag 'v42' is ambiguous"):
        services.create_release(name="churn-v42", model_version=version.key, git_tag="v42", by=ci_account)
    assert not Release.objects.exists()
    assert last_event("release.creation_refused").object_key == "churn-v42"


def test_a_tag_is_looked_up_in_the_repository_of_the_runs_commit(world, ci_account):
    commit = world.commit("churn v42")
    world.tag("v42", commit)
    _second_repository_with_tag("v42")
    version = world.model_version("churn-model/42", commit=commit)
    release, _ = services.create_release(name="churn-v42", model_version=version.key, git_tag="v42", by=ci_account)
    assert release.git_tag == GitTag.objects.get(name="v42", repository=commit.repository)
    assert release.commit == commit


def test_a_tag_that_is_not_synced_is_a_clear_refusal(world, ci_account):
    version = world.model_version("churn-model/42")
    with pytest.raises(NotFound, match="git tag 'v42' is not synced"):
        services.create_release(name="churn-v42", model_version=version.key, git_tag="v42", by=ci_account)
    assert not Release.objects.exists()


# 10. Merkle tree edges (RFC 6962) ---------------------------------------------------------------


def test_the_root_of_the_empty_tree_is_the_hash_of_the_empty_string():
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    assert merkle.tree_hash(0, merkle.memory_reader([])) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("index", [3, 4, 100, -1])
def test_an_inclusion_proof_at_or_past_the_tree_size_is_refused(index):
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(3)]
    with pytest.raises(ValueError, match=f"leaf {index} is not in a tree of size 3"):
        merkle.inclusion_proof(index, 3, merkle.memory_reader(leaves))


# 11. The release timeline and the experiment link ------------------------------------------------


def test_the_release_timeline_keeps_the_runs_events_and_run_warnings_stay_on_the_experiment_link(
    world, ci_account, lead
):
    release = world.full_release(42, by=ci_account, approver=lead)
    run = ExperimentRun.objects.get(pk=release.model_version.run_id)
    trace = lineage.trace(release.name)
    timeline = list(lineage.release_events(trace))
    assert ("run", run.audit_key, "run.created") in {(e.object_type, e.object_key, e.action) for e in timeline}

    ExperimentRun.objects.filter(pk=run.pk).update(warnings=["logged 3 dataset inputs without a digest"])
    links = {link.key: link for link in lineage.trace(release.name).links}
    assert links["experiment"].warnings == ["logged 3 dataset inputs without a digest"]
    assert all(not link.warnings for key, link in links.items() if key != "experiment")


def test_a_consistency_proof_from_the_empty_tree_is_empty():
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(5)]
    assert merkle.consistency_ranges(0, 5) == []
    assert merkle.consistency_proof(0, 5, merkle.memory_reader(leaves)) == []
    assert merkle.consistency_ranges(5, 5) == []


# Release tags from MLflow -------------------------------------------------------------------------


def test_a_release_tag_seen_again_changes_nothing_and_one_naming_another_version_is_refused(world, ci_account):
    world.model_version("churn-model/42")
    world.model_version("churn-model/43")
    assert services.release_from_tag("churn-v42", "churn-model/42", by=SYSTEM) == "created"
    assert services.release_from_tag("churn-v42", "churn-model/42", by=SYSTEM) == "unchanged"
    with pytest.raises(Conflict, match="churn-model/43 is tagged release=churn-v42, but churn-v42 is already"):
        services.release_from_tag("churn-v42", "churn-model/43", by=SYSTEM)
    assert Release.objects.get(name="churn-v42").model_version.key == "churn-model/42"
    assert AuditEvent.objects.filter(action="release.created", object_key="churn-v42").count() == 1


def test_an_alias_moved_back_to_an_older_version_records_its_release(world, ci_account, lead):
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    endpoint = services.create_endpoint(
        name="churn-live", environment="production", registered_model="churn-model", mlflow_alias="prod", by=SYSTEM
    )
    assert services.follow_alias(endpoint, v42.model_version, by=SYSTEM).release == v42
    assert services.follow_alias(endpoint, v42.model_version, by=SYSTEM) is None, "already live"

    moved_back = services.follow_alias(endpoint, v41.model_version, by=SYSTEM)

    assert moved_back is not None
    assert moved_back.release == v41
    assert status_of(endpoint).live.release == v41


def test_a_deployment_dated_at_the_edge_of_the_clock_skew_is_taken_and_past_it_refused(
    world, ci_account, lead, release_manager
):
    release = world.full_release(42, by=ci_account, approver=lead)
    endpoint = world.endpoint("churn-canary", "staging")
    with time_machine.travel(timezone.now(), tick=False):
        edge = timezone.now() + deployment.CLOCK_SKEW
        with pytest.raises(InvalidInput, match="cannot be recorded in the future"):
            services.record_deployment(
                endpoint, release, by=release_manager, source="api", at=edge + datetime.timedelta(microseconds=1)
            )
        taken = services.record_deployment(endpoint, release, by=release_manager, source="api", at=edge)
    assert taken.release == release


def test_declaring_an_endpoint_again_is_idempotent_and_another_environment_is_refused(db):
    first = services.create_endpoint(name="churn-scoring", environment="production", by=SYSTEM)
    again = services.create_endpoint(name="churn-scoring", environment="production", by=SYSTEM)
    assert again.pk == first.pk
    with pytest.raises(Conflict, match=r"churn-scoring already exists with environment 'production' \(not 'staging'\)"):
        services.create_endpoint(name="churn-scoring", environment="staging", by=SYSTEM)
    assert AuditEvent.objects.filter(action="endpoint.created").count() == 1


def test_a_rollback_confirmed_for_the_target_it_has_goes_through(world, ci_account, lead, oncall, release_manager):
    endpoint, (_, v42, _) = _deployed_three(world, by=ci_account, approver=lead, deployer=release_manager)
    confirmed = services.roll_back(
        endpoint, by=oncall, reason="AUC alert", source=Deployment.Source.UI, expected_target="churn-v42"
    )
    assert confirmed.release == v42
    assert status_of(endpoint).live.release == v42
