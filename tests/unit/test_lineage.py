"""Lineage reads: live-at, rollback target, impact, completeness, digest."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from releases import lineage, services
from releases.models import Endpoint
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, World, approve


def status_of(endpoint, when=None):
    """What the pages and the rollback service read: the endpoint's live deployment and rollback target."""
    [status] = lineage.endpoint_statuses(Endpoint.objects.filter(pk=endpoint.pk), when)
    return status


@pytest.fixture
def world(db):
    return World.create()


@pytest.fixture
def story(world, ci_account, lead, release_manager):
    """churn-v40, v41, v42 deployed in turn to churn-scoring; v42 trained on churn-train:18."""
    v40 = world.full_release(40, by=ci_account, approver=lead, dataset="churn-train:16")
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    endpoint = world.endpoint()
    world.deploy(endpoint, v40, by=release_manager, hours_ago=72)
    world.deploy(endpoint, v41, by=release_manager, hours_ago=48)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=24)
    return {"v40": v40, "v41": v41, "v42": v42, "endpoint": endpoint}


def test_live_at_several_moments(story):
    endpoint = story["endpoint"]
    now = timezone.now()
    assert status_of(endpoint, now - datetime.timedelta(hours=100)).live is None
    assert status_of(endpoint, now - datetime.timedelta(hours=60)).live.release.name == "churn-v40"
    assert status_of(endpoint, now - datetime.timedelta(hours=48)).live.release.name == "churn-v41"
    assert status_of(endpoint, now - datetime.timedelta(hours=30)).live.release.name == "churn-v41"
    assert status_of(endpoint, now).live.release.name == "churn-v42"


def test_live_board_status_at_a_past_moment(story):
    [status] = lineage.endpoint_statuses(when=timezone.now() - datetime.timedelta(hours=36))
    assert status.live.release.name == "churn-v41"
    assert status.rollback_target.name == "churn-v40"


def test_rollback_target_is_the_previous_approved_release(story):
    assert status_of(story["endpoint"]).rollback_target.name == "churn-v41"


def test_rollback_target_skips_a_release_trained_on_quarantined_data(story, lead):
    version = services.register_dataset_version(
        name="churn-train", version=17, uri="s3://data/churn-train/17.parquet", content_hash=_hash(17), by=SYSTEM
    )[0]
    services.quarantine_dataset_version(version, by=lead, reason="label mapping changed upstream")
    assert status_of(story["endpoint"]).rollback_target.name == "churn-v40"


def test_rollback_target_after_a_lifted_quarantine_needs_a_new_signature(story, lead, lead2):
    version = story["v41"].model_version.run.dataset_inputs.get().dataset_version
    services.quarantine_dataset_version(version, by=lead2, reason="label mapping changed upstream")
    services.lift_quarantine(version, by=lead2, reason="mapping restored")
    assert status_of(story["endpoint"]).rollback_target.name == "churn-v40", "its approval no longer counts"

    approve(story["v41"], by=lead2, password=PASSWORD, meaning="Approved for production")

    assert lineage.approval_state(lineage.trace("churn-v41")).is_valid
    assert status_of(story["endpoint"]).rollback_target.name == "churn-v41", "a lifted version is safe again"


def test_rollback_target_after_a_lift_counts_the_required_signers(story, lead, lead2, settings):
    settings.LINEAGE_REQUIRED_APPROVALS = 2
    version = story["v41"].model_version.run.dataset_inputs.get().dataset_version
    services.quarantine_dataset_version(version, by=lead2, reason="label mapping changed upstream")
    services.lift_quarantine(version, by=lead2, reason="mapping restored")
    approve(story["v41"], by=lead2, password=PASSWORD, meaning="Approved for production")
    assert status_of(story["endpoint"]).rollback_target.name == "churn-v40", "one signature of the two required"

    approve(story["v41"], by=lead, password=PASSWORD, meaning="Approved for production")

    assert status_of(story["endpoint"]).rollback_target.name == "churn-v41"


def test_rollback_plan_names_the_target_and_the_facts_that_make_it_safe(story, lead):
    plan = lineage.rollback_plan("churn-scoring")
    assert plan.target.name == "churn-v41"
    assert [(a.approver.username, a.meaning) for a in plan.approvals] == [("lead", "Approved for production")]
    assert [(d.key, d.status) for d in plan.datasets] == [("churn-train:17", "active")]
    [period] = plan.periods
    deployments = {d.release.name: d for d in story["endpoint"].deployments.select_related("release")}
    assert (period.start, period.end) == (deployments["churn-v41"].deployed_at, deployments["churn-v42"].deployed_at)
    assert plan.alias is None
    assert not plan.alias_stays, "the endpoint follows no alias"


def test_rollback_plan_joins_a_redeployment_into_one_period(story, world, lead, release_manager):
    endpoint = story["endpoint"]
    rollback = services.roll_back(endpoint, by=lead, reason="INC-1", source="cli")
    redeploy = services.record_deployment(endpoint, story["v41"], by=release_manager, source="api")
    later = services.record_deployment(endpoint, story["v42"], by=release_manager, source="api")

    plan = lineage.rollback_plan("churn-scoring")

    assert plan.target.name == "churn-v41"
    assert redeploy.pk != rollback.pk
    newest, oldest = plan.periods
    assert (newest.start, newest.end, newest.kind, newest.actor) == (
        rollback.deployed_at,
        later.deployed_at,
        "rollback",
        "lead",
    )
    assert (
        oldest.end
        == endpoint.deployments.get(
            release=story["v42"], kind="deploy", deployed_at__lt=rollback.deployed_at
        ).deployed_at
    )


def test_rollback_plan_without_a_target(world):
    world.endpoint()
    plan = lineage.rollback_plan("churn-scoring")
    assert plan.target is None
    assert (plan.approvals, plan.datasets, plan.periods, plan.alias) == ([], [], [], None)
    with pytest.raises(Endpoint.DoesNotExist):
        lineage.rollback_plan("nowhere")


def test_moved_alias_follows_the_endpoints_own_model_only(story, world):
    follows = services.create_endpoint(
        name="churn-live", environment="production", registered_model="churn-model", mlflow_alias="prod", by=SYSTEM
    )
    other = world.model_version("other-model/1")
    version = story["v41"].model_version
    assert lineage.moved_alias(follows, version) == "prod"
    assert lineage.moved_alias(follows, other) == ""
    assert lineage.moved_alias(story["endpoint"], version) == "", "the endpoint follows no alias"


def test_rollback_target_skips_retired_and_unapproved_releases(story, world, ci_account, release_manager, lead):
    services.retire_release(story["v41"], by=release_manager, reason="superseded")
    assert status_of(story["endpoint"]).rollback_target.name == "churn-v40"
    staging = world.endpoint("churn-staging", "staging")
    draft = world.release("churn-v43", world.model_version("churn-model/43"), by=ci_account)
    world.deploy(staging, draft, by=release_manager, hours_ago=10)
    world.deploy(staging, story["v42"], by=release_manager, hours_ago=5)
    target = status_of(staging).rollback_target
    assert target is None, "an unapproved draft is never a rollback target"
    [status] = [s for s in lineage.endpoint_statuses() if s.endpoint.name == "churn-staging"]
    assert "approved" in status.rollback_blocker


def test_rollback_target_is_none_when_nothing_is_live(world):
    endpoint = world.endpoint()
    assert status_of(endpoint).rollback_target is None
    [status] = lineage.endpoint_statuses()
    assert status.rollback_blocker == "Nothing is live on this endpoint."


def test_impact_of_a_dataset_version_reaches_every_downstream_link(story, world):
    staging = world.endpoint("churn-staging", "staging")
    version = story["v42"].model_version.run.dataset_inputs.get().dataset_version
    impact = lineage.impact_of_dataset_version(version)
    assert [r.name for r in impact.runs] == ["churn-model-42"]
    assert [m.key for m in impact.model_versions] == ["churn-model/42"]
    assert [r.name for r in impact.releases] == ["churn-v42"]
    assert [e.name for e in impact.live_endpoints] == ["churn-scoring"]
    assert [e.name for e in impact.endpoints_ever] == ["churn-scoring"]
    assert staging not in impact.endpoints_ever


def test_impact_of_an_older_dataset_lists_endpoints_ever_but_not_live(story):
    version = story["v40"].model_version.run.dataset_inputs.get().dataset_version
    impact = lineage.impact_of_dataset_version(version)
    assert [r.name for r in impact.releases] == ["churn-v40"]
    assert impact.live_endpoints == []
    assert [e.name for e in impact.endpoints_ever] == ["churn-scoring"]


def test_impact_of_a_commit_and_of_a_run(story):
    run = story["v41"].model_version.run
    commit_impact = lineage.impact_of_commit(run.commit)
    assert [r.name for r in commit_impact.releases] == ["churn-v41"]
    run_impact = lineage.impact_of_run(run)
    assert [m.key for m in run_impact.model_versions] == ["churn-model/41"]
    assert run_impact.live_endpoints == []


def test_impact_runs_in_a_fixed_number_of_queries(story, django_assert_num_queries):
    version = story["v42"].model_version.run.dataset_inputs.get().dataset_version
    # runs, model versions, releases, deployments, live endpoints
    with django_assert_num_queries(5):
        impact = lineage.impact_of_dataset_version(version)
    assert [r.name for r in impact.releases] == ["churn-v42"]


def test_completeness_explains_each_missing_link(world, ci_account):
    mv = world.model_version("fraud-model/8", feature_view="")
    world.release("fraud-v8", mv, by=ci_account)
    trace = lineage.trace("fraud-v8")
    missing = {link.key: link.explanation for link in trace.links if not link.present}
    assert missing == {
        "code": "No Git commit: nobody can rebuild this model or tell which code change caused a regression.",
        "data": "No dataset version: a data bug and a code bug look the same.",
        "features": "No feature pipeline version: training/serving skew cannot be traced to a feature change.",
        "deployment": "Deployment comes after approval.",
    }
    # A draft is not expected to be deployed yet: five links are expected, and deployment is "not yet".
    assert trace.completeness == (2, 5)
    assert [link.key for link in trace.gaps] == ["code", "data", "features"]
    assert [(link.key, link.state) for link in trace.upcoming] == [("deployment", "pending")]
    assert [link.key for link in trace.missing_for_approval] == ["code", "data", "features"]


def test_complete_trace_and_digest_changes_when_data_is_quarantined(story, lead):
    trace = lineage.trace("churn-v42")
    assert trace.completeness == (6, 6)
    before = trace.digest
    assert before.startswith("sha256:")
    assert lineage.approval_state(trace).is_valid
    version = trace.dataset_versions[0]
    services.quarantine_dataset_version(version, by=lead, reason="bad labels")
    after = lineage.trace("churn-v42")
    assert after.digest != before
    state = lineage.approval_state(after)
    assert not state.is_valid
    assert state.invalidated
    assert state.stale[0][1] == ["dataset churn-train:18 status changed from active to quarantined"]
    assert after.links[1].state == "warning"


def test_unresolved_commit_is_a_warning_not_a_link_lost(world, ci_account):
    mv = world.model_version("churn-model/42")
    run = mv.run
    services.record_run(
        world.server, services.RunData(run_id=run.run_id, name=run.name, commit_sha="8d4f2c1"), by=SYSTEM
    )
    world.release("churn-v42", mv, by=ci_account)
    trace = lineage.trace("churn-v42")
    code = trace.links[0]
    assert code.present
    assert code.warnings == ["Commit 8d4f2c1 is not in any synced repository."]


def test_previous_release_of_the_same_model(story):
    assert lineage.previous_release(story["v42"]).name == "churn-v41"
    assert lineage.previous_release(story["v40"]) is None


def _hash(version: int) -> str:
    from tests.factories import content_hash

    return content_hash(f"churn-train:{version}")


def test_compare_lists_the_newest_commits_between_two_releases(world, ci_account):
    from tests.factories import sha_of

    shas = [sha_of(f"linear {i}") for i in range(120)]
    services.record_commits(
        world.repo,
        [
            services.CommitData(
                sha=sha,
                message=f"change {i}",
                committed_at=world.tick(),
                parents=(shas[i - 1],) if i else (),
            )
            for i, sha in enumerate(shas)
        ],
    )
    for number, sha in ((41, shas[0]), (42, shas[-1])):
        mv = world.model_version(f"churn-model/{number}")
        services.create_release(name=f"churn-v{number}", model_version=mv.key, commit=sha, by=ci_account)
    comparison = lineage.compare("churn-v41", "churn-v42")
    assert len(comparison.commits) == lineage.COMMITS_SHOWN
    assert comparison.commits[0].sha == shas[-1]
    assert comparison.commits_note == f"Showing the newest {lineage.COMMITS_SHOWN} of 119 commits."
