"""What is live on an endpoint and its rollback target: at any moment, after quarantines and lifts; the rollback
plan; the alias an endpoint follows.
"""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.utils import timezone

from releases import lineage, services
from releases.lineage import live
from releases.models import Deployment, Endpoint, Release
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, approve, content_hash
from tests.unit.conftest import status_of


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


# Rollback target -------------------------------------------------------------------------------------


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


def _lifted_then_signed_by(story, signer):
    """churn-v41's input quarantined, lifted, then churn-v41 signed again by ``signer`` alone."""
    version = story["v41"].model_version.run.dataset_inputs.get().dataset_version
    services.quarantine_dataset_version(version, by=signer, reason="label mapping changed upstream")
    services.lift_quarantine(version, by=signer, reason="mapping restored")
    approve(story["v41"], by=signer, password=PASSWORD, meaning="Approved for production")


def test_rollback_target_after_a_lift_counts_the_required_signers(story, lead, lead2, settings):
    settings.LINEAGE_REQUIRED_APPROVALS = 2
    _lifted_then_signed_by(story, lead2)
    assert status_of(story["endpoint"]).rollback_target.name == "churn-v40", "one signature of the two required"

    approve(story["v41"], by=lead, password=PASSWORD, meaning="Approved for production")

    assert status_of(story["endpoint"]).rollback_target.name == "churn-v41"


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


# Rollback plan and the followed alias ----------------------------------------------------------------


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


def _hash(version: int) -> str:

    return content_hash(f"churn-train:{version}")


def test_rollback_plan_shows_the_ten_newest_periods_of_the_target(world, ci_account, lead, release_manager):
    endpoint = world.endpoint()
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    for turn in range(12):
        world.deploy(endpoint, v41, by=release_manager, hours_ago=48 - 2 * turn)
        world.deploy(endpoint, v42, by=release_manager, hours_ago=47 - 2 * turn)

    plan = lineage.rollback_plan("churn-scoring")

    assert plan.target == v41
    assert len(plan.periods) == live.LIVE_PERIODS_SHOWN == 10
    starts = [period.start for period in plan.periods]
    assert starts == sorted(starts, reverse=True)
    newest_deploy = endpoint.deployments.filter(release=v41).order_by("-deployed_at").first()
    assert starts[0] == newest_deploy.deployed_at


def test_rollback_plan_names_no_current_version_when_another_model_is_live(world, ci_account, lead, release_manager):
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    endpoint = services.create_endpoint(
        name="churn-live", environment="production", registered_model="churn-model", mlflow_alias="prod", by=SYSTEM
    )
    other_version = world.model_version("other-model/1", commit=world.commit("other"), datasets=("churn-train:17",))
    other = world.approved_release("other-v1", other_version, by=ci_account, approver=lead)
    world.deploy(endpoint, v41, by=release_manager, hours_ago=5)
    world.deploy(endpoint, other, by=release_manager, hours_ago=1)

    plan = lineage.rollback_plan("churn-live")

    assert plan.target == v41
    assert plan.alias == live.AliasMove(model="churn-model", alias="prod", version=41, current=None)


def test_rollback_target_skips_a_release_whose_data_was_quarantined_again_after_a_lift(story, lead, lead2):
    """Quarantined, lifted, quarantined again: unsafe now, and lifted without a new signature, both at once."""
    version = story["v41"].model_version.run.dataset_inputs.get().dataset_version
    services.quarantine_dataset_version(version, by=lead2, reason="label mapping changed upstream")
    services.lift_quarantine(version, by=lead2, reason="mapping restored")
    services.quarantine_dataset_version(version, by=lead2, reason="mapping broke again")
    assert status_of(story["endpoint"]).rollback_target.name == "churn-v40"


def test_the_alias_stays_when_the_target_is_another_models_release(world, ci_account, lead, release_manager):
    world.dataset("churn-train:17")
    other_version = world.model_version("other-model/1", commit=world.commit("other"), datasets=("churn-train:17",))
    other = world.approved_release("other-v1", other_version, by=ci_account, approver=lead)
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    endpoint = services.create_endpoint(
        name="churn-live", environment="production", registered_model="churn-model", mlflow_alias="prod", by=SYSTEM
    )
    world.deploy(endpoint, other, by=release_manager, hours_ago=5)
    world.deploy(endpoint, v41, by=release_manager, hours_ago=1)

    plan = lineage.rollback_plan("churn-live")

    assert plan.target == other
    assert plan.alias is None
    assert plan.alias_stays is True


def test_the_alias_moves_when_the_target_is_the_endpoints_own_model(world, ci_account, lead, release_manager):
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    endpoint = services.create_endpoint(
        name="churn-live", environment="production", registered_model="churn-model", mlflow_alias="prod", by=SYSTEM
    )
    world.deploy(endpoint, v41, by=release_manager, hours_ago=5)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=1)

    plan = lineage.rollback_plan("churn-live")

    assert plan.alias == live.AliasMove(model="churn-model", alias="prod", version=41, current=42)
    assert plan.alias_stays is False


def test_a_period_ends_when_an_older_release_follows_it(world, ci_account, lead, release_manager):
    """v41, then the older v40, then v41 again, then v42: two separate periods of v41, not one."""
    v40 = world.full_release(40, by=ci_account, approver=lead, dataset="churn-train:16")
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    endpoint = world.endpoint()
    for release, hours_ago in ((v41, 8), (v40, 6), (v41, 4), (v42, 2)):
        world.deploy(endpoint, release, by=release_manager, hours_ago=hours_ago)

    plan = lineage.rollback_plan("churn-scoring")

    assert plan.target == v41
    assert len(plan.periods) == 2


@pytest.fixture
def v41_then_v42(world, ci_account, lead, release_manager) -> Release:
    """churn-v41 (on churn-train:17) went live on churn-scoring, then churn-v42 (churn-train:18); returns v41."""
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    endpoint = world.endpoint()
    world.deploy(endpoint, v41, by=release_manager, hours_ago=5)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=1)
    return v41


def test_endpoint_statuses_hand_back_the_traced_live_release(v41_then_v42, django_assert_num_queries):
    with django_assert_num_queries(7):
        [status] = lineage.endpoint_statuses()
        # Read without a further query: the live deployment carries the release the trace was built from.
        assert status.live.release.name == "churn-v42"
        assert status.live.release.model_version.key == "churn-model/42"
        assert status.rollback_target.name == "churn-v41"


def test_endpoint_statuses_by_name_read_no_trace(v41_then_v42, django_assert_num_queries):
    # annotated endpoints, troubled dataset versions, live deployments with their releases and rollback targets
    with django_assert_num_queries(3):
        [status] = lineage.endpoint_statuses(traced=lineage.Traced.NOTHING)
        assert status.live.release.name == "churn-v42"
        assert status.rollback_target.name == "churn-v41"
        assert status.live_trace is None
        assert status.rollback_trace is None
    [traced] = lineage.endpoint_statuses(traced=lineage.Traced.LIVE_AND_ROLLBACK)
    assert traced.rollback_trace.release == traced.rollback_target == v41_then_v42
    assert traced.rollback_trace.dataset_versions[0].key == "churn-train:17"


def _ids_past_the_small_int_cache(table: str) -> None:
    """Make the next ids of ``table`` exceed 256, past CPython's cache of small ints: an ``is`` slipped in
    where ``==`` belongs then fails as it would on any real database."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT max(nextval(pg_get_serial_sequence(%s, 'id'))) FROM generate_series(1, 300)", [table]
            )
        else:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, 300)", [table])


def test_a_redeployment_joins_its_period_with_ids_past_the_small_int_cache(world, ci_account, lead, release_manager):
    _ids_past_the_small_int_cache("releases_release")
    v40 = world.full_release(40, by=ci_account, approver=lead, dataset="churn-train:16")
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    assert v40.pk > 256
    endpoint = world.endpoint()
    for release, hours_ago in ((v40, 72), (v41, 48), (v42, 24)):
        world.deploy(endpoint, release, by=release_manager, hours_ago=hours_ago)
    rollback = services.roll_back(endpoint, by=lead, reason="INC-1", source="cli")
    services.record_deployment(endpoint, v41, by=release_manager, source="api")
    later = services.record_deployment(endpoint, v42, by=release_manager, source="api")

    newest, _ = lineage.rollback_plan("churn-scoring").periods

    assert (newest.start, newest.end, newest.kind) == (rollback.deployed_at, later.deployed_at, "rollback")


def test_rollback_target_skips_a_release_whose_lifted_data_was_then_changed_in_place(story, lead2):
    """Lifted without a new signature and changed in place, both at once: either alone makes it unsafe."""
    version = story["v41"].model_version.run.dataset_inputs.get().dataset_version
    services.quarantine_dataset_version(version, by=lead2, reason="label mapping changed upstream")
    services.lift_quarantine(version, by=lead2, reason="mapping restored")
    services.observe_digest(version, digest="md5:first", source="warehouse", by=SYSTEM)
    services.observe_digest(version, digest="md5:second", source="warehouse", by=SYSTEM)
    version.refresh_from_db()
    assert version.mutated
    assert status_of(story["endpoint"]).rollback_target.name == "churn-v40"


def test_what_an_endpoint_keeps_as_live_now_is_its_newest_deployment(world, ci_account, lead, release_manager, oncall):
    v40, v41, v42 = (world.full_release(n, by=ci_account, approver=lead) for n in (40, 41, 42))
    endpoint = world.endpoint()

    def kept() -> tuple[Deployment | None, Release | None]:
        endpoint.refresh_from_db()
        return endpoint.live_deployment_now, endpoint.live_release_now

    def newest() -> tuple[Deployment | None, Release | None]:
        found = Deployment.objects.filter(endpoint=endpoint).live_at(timezone.now()).first()
        return found, found.release if found else None

    assert kept() == newest() == (None, None)
    world.deploy(endpoint, v41, by=release_manager)
    assert kept() == newest()
    assert kept()[1] == v41
    # History recorded later, older than what is live: what is live stays.
    world.deploy(endpoint, v40, by=release_manager, hours_ago=5)
    assert kept() == newest()
    assert kept()[1] == v41
    world.deploy(endpoint, v42, by=release_manager)
    assert kept()[1] == v42
    services.roll_back(endpoint, by=oncall, reason="latency", source=Deployment.Source.UI)
    assert kept() == newest()
    assert kept()[1] == v41
    # The statuses read it, and agree with what was live a moment ago read from the deployments.
    [now] = lineage.endpoint_statuses(Endpoint.objects.filter(pk=endpoint.pk))
    [then] = lineage.endpoint_statuses(Endpoint.objects.filter(pk=endpoint.pk), when=timezone.now())
    assert now.live == then.live == kept()[0]


def test_the_signers_a_lifted_input_needs_are_read_on_each_call_not_kept_in_the_prepared_query(
    story, lead, lead2, settings
):
    settings.LINEAGE_REQUIRED_APPROVALS = 1
    _lifted_then_signed_by(story, lead2)
    assert status_of(story["endpoint"]).rollback_target.name == "churn-v41", "one signature of the one required"

    settings.LINEAGE_REQUIRED_APPROVALS = 2

    assert status_of(story["endpoint"]).rollback_target.name == "churn-v40", "one signature of the two required"
