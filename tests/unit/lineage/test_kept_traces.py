"""Status traces kept between requests (``KEPT``): taken again only while every row they were built from is
the row read now, so whatever changes a chain, through whatever door, shows at once, and shows the same as a
release's own trace.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from releases import lineage, services
from releases.lineage.trace import KEPT, KeptTraces, Trace
from releases.models import DatasetVersion, ExperimentRun, Release
from tests.factories import SYSTEM, approve


def as_shown(trace: Trace) -> dict[str, Any]:
    """Everything a board row or the API's endpoint list shows of a release's trace."""
    status = lineage.release_status(trace)
    return {
        "status": (status.key, status.detail),
        "digest": trace.digest,
        "links": [(link.key, link.state, link.identifiers, link.warnings) for link in trace.links],
        "completeness": trace.completeness,
        "deployed_to": trace.deployed_to,
    }


def shown(releases: list[Release]) -> dict[str, dict[str, Any]]:
    """The status traces of ``releases`` as shown, each checked against the release's own trace
    (``lineage.trace``, which keeps nothing)."""
    traces = lineage.status_traces(release.pk for release in releases)
    found = {trace.release.name: as_shown(trace) for trace in traces.values()}
    assert found == {name: as_shown(lineage.trace(name)) for name in found}
    return found


@pytest.fixture(autouse=True)
def nothing_kept():
    KEPT.forget()
    yield
    KEPT.forget()


def test_a_trace_read_again_unchanged_is_the_one_kept_in_the_same_four_queries(story, django_assert_num_queries):
    releases = [story["v40"], story["v41"], story["v42"]]
    with django_assert_num_queries(4):
        first = lineage.status_traces(release.pk for release in releases)
    assert len(KEPT) == 3
    with django_assert_num_queries(4):
        again = lineage.status_traces(release.pk for release in releases)
    assert all(again[pk] is first[pk] for pk in first)
    # A release asked for alone is taken from the same kept traces.
    with django_assert_num_queries(4):
        assert lineage.status_traces([story["v41"].pk])[story["v41"].pk] is first[story["v41"].pk]


def test_every_change_to_a_chain_shows_at_once_whatever_door_it_came_through(
    story, world, lead, lead2, release_manager
):
    releases = [story["v40"], story["v41"], story["v42"]]
    before = shown(releases)
    assert before["churn-v42"]["status"][0] == "approved"
    v42_data = DatasetVersion.objects.get(dataset__name="churn-train", version=18)

    # Quarantined: the chain carries the quarantine, the approval no longer counts.
    services.quarantine_dataset_version(v42_data, by=lead, reason="label leak")
    quarantined = shown(releases)
    assert quarantined["churn-v42"]["status"][0] == "invalidated"
    assert quarantined["churn-v42"]["digest"] != before["churn-v42"]["digest"]
    assert quarantined["churn-v41"] == before["churn-v41"]

    # Lifted, then signed again by a lead who had not signed it.
    services.lift_quarantine(v42_data, by=lead, reason="false alarm")
    assert shown(releases)["churn-v42"]["status"][0] == "invalidated"
    approve(story["v42"], by=lead2)
    assert shown(releases)["churn-v42"]["status"] == ("approved", "Signed by Omar Second.")

    # Changed in place by a statement no service, signal or model method sees.
    DatasetVersion.objects.filter(pk=v42_data.pk).update(mutated=True, mutation_detail="rewritten by a backfill")
    mutated = shown(releases)
    assert mutated["churn-v42"]["status"][0] == "invalidated"
    assert any("rewritten by a backfill" in w for _, _, _, warnings in mutated["churn-v42"]["links"] for w in warnings)

    # The run's params rewritten the same way: a new digest.
    run = ExperimentRun.objects.get(pk=story["v41"].model_version.run_id)
    ExperimentRun.objects.filter(pk=run.pk).update(params={**run.params, "max_depth": "9"})
    assert shown(releases)["churn-v41"]["digest"] != before["churn-v41"]["digest"]

    # Deployed to a second endpoint; then retired.
    world.deploy(world.endpoint("churn-shadow", "staging"), story["v40"], by=release_manager)
    assert shown(releases)["churn-v40"]["deployed_to"] == ("churn-shadow", "churn-scoring")
    services.retire_release(story["v40"], by=release_manager, reason="superseded")
    assert shown(releases)["churn-v40"]["status"][0] == "retired"


def test_a_change_rolled_back_is_not_shown_after_it(story, lead):
    releases = [story["v42"]]
    before = shown(releases)

    def reject_for_a_moment() -> None:
        with transaction.atomic():
            Release.objects.filter(pk=story["v42"].pk).update(
                state=Release.State.REJECTED, state_reason="for a moment", state_changed_at=timezone.now()
            )
            # Read, and kept, inside the transaction that is then rolled back.
            assert shown(releases)["churn-v42"]["status"][0] == "rejected"
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        reject_for_a_moment()
    assert shown(releases) == before


def test_releases_of_one_run_get_traces_of_their_own(world, ci_account, release_manager):
    world.dataset("churn-train:17")
    model_version = world.model_version("churn-model/7", datasets=("churn-train:17",))
    first = world.release("churn-v7", model_version, by=ci_account)
    services.retire_release(first, by=release_manager, reason="cut again")
    second = world.release("churn-v8", model_version, by=ci_account)
    traces = lineage.status_traces([first.pk, second.pk])
    assert traces[first.pk].release.name == "churn-v7"
    assert traces[second.pk].release.name == "churn-v8"
    assert traces[first.pk].run is not traces[second.pk].run
    # Each trace's inputs point at its own release's run, not at rows another trace holds.
    for trace in traces.values():
        assert all(item.run is trace.run for item in trace.dataset_inputs)
        assert [item.dataset_version.key for item in trace.dataset_inputs] == ["churn-train:17"]
    services.submit_release(second, by=ci_account)
    shown([first, second])


def test_kept_traces_are_bounded_and_the_least_recently_read_goes_first(story):
    kept = KeptTraces(size=2)
    traces = lineage.status_traces([story["v40"].pk, story["v41"].pk, story["v42"].pk])
    read = {pk: KEPT.get("default", pk) for pk in traces}
    v40, v41, v42 = story["v40"].pk, story["v41"].pk, story["v42"].pk
    kept.keep("default", v40, *read[v40])
    kept.keep("default", v41, *read[v41])
    assert kept.get("default", v40) is not None  # read: now the most recent
    kept.keep("default", v42, *read[v42])
    assert len(kept) == 2
    assert kept.get("default", v41) is None
    assert kept.get("default", v40) is not None
    assert kept.get("default", v42) is not None
    # Kept per database.
    assert kept.get("other", v40) is None


def test_a_changed_setting_builds_every_trace_again(story, settings):
    first = lineage.status_traces([story["v42"].pk])
    settings.LINEAGE_REQUIRED_APPROVALS = 2
    assert len(KEPT) == 0
    again = lineage.status_traces([story["v42"].pk])
    assert again[story["v42"].pk] is not first[story["v42"].pk]
    assert lineage.release_status(again[story["v42"].pk]).key == "invalidated"


def test_what_a_sync_writes_shows_on_the_next_read(story):
    run = ExperimentRun.objects.get(pk=story["v42"].model_version.run_id)
    before = shown([story["v42"]])
    services.record_run(
        run.server,
        services.RunData(
            run_id=run.run_id,
            experiment_id=run.experiment_id,
            experiment_name=run.experiment_name,
            name=run.name,
            status=run.status,
            user=run.user,
            start_time=run.start_time,
            params={**run.params, "learning_rate": "0.1"},
            metrics=run.metrics,
            commit_sha=run.commit_sha,
            feature_view=run.params.get("feature_view", ""),
            datasets=[services.DatasetRef(key="churn-train:18")],
        ),
        by=SYSTEM,
    )
    after = shown([story["v42"]])
    assert after["churn-v42"]["digest"] != before["churn-v42"]["digest"]
    assert after["churn-v42"]["status"][0] == "invalidated"
