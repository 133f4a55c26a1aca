"""The trace: completeness and each missing link explained, the digest, warnings, the previous release, and
the release's own timeline.
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from audit.models import AuditEvent
from audit.vocabulary import object_ref
from releases import lineage, services
from releases.models import DatasetVersion, ExperimentRun, Release
from tests.factories import SYSTEM
from tests.unit.conftest import board_with


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


def test_previous_release_skips_other_models_and_breaks_ties_by_id(story, world, ci_account):
    # Another model's release cut between v41 and v42 in time is not v42's previous one.
    fraud = world.release("fraud-v1", world.model_version("fraud-model/1"), by=ci_account)
    Release.objects.filter(pk=fraud.pk).update(created_at=story["v42"].created_at - datetime.timedelta(seconds=1))
    # Two releases of the model cut at the same instant: the one recorded later counts as the newer.
    v43 = world.release("churn-v43", world.model_version("churn-model/43"), by=ci_account)
    v44 = world.release("churn-v44", world.model_version("churn-model/44"), by=ci_account)
    Release.objects.filter(pk__in=[v43.pk, v44.pk]).update(created_at=story["v42"].created_at)
    assert lineage.previous_release(story["v42"]).name == "churn-v41"
    v45 = world.release("churn-v45", world.model_version("churn-model/45"), by=ci_account)
    assert lineage.previous_release(v45).name == "churn-v44"
    assert lineage.previous_release(fraud) is None


def test_trace_timeline_keeps_only_this_releases_endpoint_events(world, ci_account, lead, release_manager):
    from releases import lineage

    board_with(world, 1, by=ci_account, approver=lead, deployer=release_manager)
    events = list(lineage.release_events(lineage.trace("churn-v101")))
    deployments = [e for e in events if e.action in ("deployment.recorded", "deployment.backfilled")]
    assert [e.new["release"] for e in deployments] == ["churn-v101"]
    assert {e.object_key for e in events} >= {"churn-v101", "churn-model/101", "churn-train:17", "churn-scoring-0"}
    assert [e.seq for e in events] == sorted(e.seq for e in events)


def test_a_timeline_holds_its_chains_events_its_endpoint_events_and_the_deployments_that_ended_it(
    world, ci_account, lead, release_manager
):
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    v43 = world.full_release(43, by=ci_account, approver=lead, dataset="churn-train:18")
    scoring, shadow = world.endpoint("churn-scoring"), world.endpoint("churn-shadow", "staging")
    world.deploy(scoring, v41, by=release_manager, hours_ago=50)
    world.deploy(scoring, v42, by=release_manager, hours_ago=40)
    world.deploy(scoring, v41, by=release_manager, hours_ago=30)  # ends v42's period on churn-scoring
    world.deploy(scoring, v43, by=release_manager, hours_ago=20)  # ends v41's, not v42's
    world.deploy(shadow, v42, by=release_manager, hours_ago=35)
    world.deploy(shadow, v43, by=release_manager, hours_ago=10)  # ends v42's period on churn-shadow
    services.quarantine_dataset_version(
        DatasetVersion.objects.get(dataset__name="churn-train", version=17), by=lead, reason="label leak"
    )

    for release, others in ((v42, {"churn-v41", "churn-v43"}), (v41, {"churn-v42", "churn-v43"})):
        trace = lineage.trace(release.name)
        timeline = list(lineage.release_events(trace))
        endings = {
            (period.endpoint, period.ended.release.name, period.ended.deployed_at.isoformat())
            for period in lineage.release_periods(release)
            if period.ended is not None
        }
        subjects = {
            ("release", release.name),
            ("model_version", trace.model_version.key),
            ("run", object_ref(trace.run)[1]),
            *(("dataset_version", version.key) for version in trace.dataset_versions),
        }
        # Every event of the log, told in or out by the rule of ``release_scope`` written out here.
        expected = [
            event.seq
            for event in AuditEvent.objects.order_by("seq")
            if (event.object_type, event.object_key) in subjects
            or (event.object_type == "endpoint" and (event.new or {}).get("release") == release.name)
            or (
                event.object_type == "endpoint"
                and (event.object_key, (event.new or {}).get("release"), (event.new or {}).get("deployed_at"))
                in endings
            )
        ]
        assert [event.seq for event in timeline] == expected
        # The release page's first page of it, read with its total in one prepared query, is the same list.
        newest = lineage.release_timeline(trace)
        assert [event.seq for event in newest.rows] == expected[::-1][: lineage.PAGE_SIZE]
        assert (newest.total, newest.start, newest.first, newest.last) == (
            len(expected),
            1,
            (expected[-1],),
            (expected[::-1][: lineage.PAGE_SIZE][-1],),
        )
        assert newest == lineage.keyset_page(lineage.release_events(trace), ("seq",))
        # The periods found from the trace's own deployments are those read from the database.
        assert lineage.release_periods(release, trace.deployments) == lineage.release_periods(release)
        named = {event.new["release"] for event in timeline if event.object_type == "endpoint"}
        assert release.name in named
        # The deployments that ended its periods are there; the rest of the endpoints' history is not.
        assert named - {release.name} == {ending[1] for ending in endings} < others | {release.name}
    assert len(lineage.release_periods(v42)) == 2

    def quarantines(name: str) -> list[AuditEvent]:
        return [e for e in lineage.release_events(lineage.trace(name)) if e.action == "dataset_version.quarantined"]

    assert len(quarantines("churn-v41")) == 1
    assert quarantines("churn-v42") == []


def test_the_timeline_of_a_release_never_deployed_and_without_a_run(world, ci_account):
    no_run, _ = services.register_model_version(
        world.server,
        services.ModelVersionData(name="churn-model", version=44, source_run_id="f" * 32, artifact_uri="models:/44"),
        by=SYSTEM,
    )
    world.release("churn-v44", no_run, by=ci_account)
    world.release("churn-v45", world.model_version("churn-model/45"), by=ci_account)
    events = list(lineage.release_events(lineage.trace("churn-v44")))
    assert {(e.object_type, e.object_key) for e in events} == {
        ("release", "churn-v44"),
        ("model_version", "churn-model/44"),
    }
    newest = lineage.release_timeline(lineage.trace("churn-v44"))
    assert [e.seq for e in newest.rows] == [e.seq for e in reversed(events)]
    assert newest.total == len(events)
    assert newest.is_whole
    assert lineage.release_periods(Release.objects.get(name="churn-v44"), []) == []


def test_an_unresolved_commit_is_named_by_its_first_twelve_characters(world, ci_account):
    sha = "0123456789abcdef0123456789abcdef01234567"
    mv = world.model_version("fraud-model/9")
    ExperimentRun.objects.filter(pk=mv.run_id).update(commit_sha=sha)
    world.release("fraud-v9", mv, by=ci_account)
    [warning] = lineage.trace("fraud-v9").warnings()["code"]
    assert warning == "Commit 0123456789ab is not in any synced repository."


def test_links_are_immutable_as_every_reader_of_a_cached_trace_shares_them(world, ci_account):
    world.release("fraud-v8", world.model_version("fraud-model/8"), by=ci_account)
    link = lineage.trace("fraud-v8").links[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        link.present = not link.present  # type: ignore[misc]


def test_one_release_trace_is_the_trace_of_the_list_query(story, world, ci_account, django_assert_num_queries):
    # Several dataset inputs, approvals and deployments, and a release without a run: what ``trace`` reads
    # for one release (its own compiled queries) is what a list's ``traced_releases`` rows give.
    world.dataset("churn-eval:3")
    mv = world.model_version("churn-model/43", datasets=("churn-train:18", "churn-eval:3"))
    world.release("churn-v43", mv, by=ci_account)
    no_run, _ = services.register_model_version(
        world.server,
        services.ModelVersionData(name="churn-model", version=44, source_run_id="f" * 32, artifact_uri="models:/44"),
        by=SYSTEM,
    )
    world.release("churn-v44", no_run, by=ci_account)
    for name in ("churn-v40", "churn-v42", "churn-v43", "churn-v44"):
        listed = lineage.Trace(lineage.traced_releases().get(name=name))
        assert listed.run is not None or name == "churn-v44"
        # The release with its chain, its run's dataset inputs (none without a run), approvals, deployments;
        # nothing more while every link is read and compared.
        with django_assert_num_queries(4 if listed.run is not None else 3):
            one = lineage.trace(name)
            assert one.chain() == listed.chain()
            assert one.digest == listed.digest
            assert one.links == listed.links
            assert one.warnings() == listed.warnings()
            assert [(i.pk, i.dataset_version.key, i.run.run_id) for i in one.dataset_inputs] == [
                (i.pk, i.dataset_version.key, i.run.run_id) for i in listed.dataset_inputs
            ]
            assert [(a.pk, a.approver.username, a.release.name) for a in one.approvals] == [
                (a.pk, a.approver.username, a.release.name) for a in listed.approvals
            ]
            assert [(d.pk, d.endpoint.name, d.release.name) for d in one.deployments] == [
                (d.pk, d.endpoint.name, d.release.name) for d in listed.deployments
            ]
            assert lineage.release_status(one) == lineage.release_status(listed)


def test_a_status_trace_names_where_the_release_went_without_its_deployment_rows(
    world, ci_account, lead, release_manager, django_assert_num_queries
):
    # The board reads the traces of the releases live on its endpoints: a release live on a fleet of
    # endpoints has a deployment row for each deployment there, which the board never shows.
    v41 = world.full_release(41, by=ci_account, approver=lead)
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    eu, us, ap = (world.endpoint(name, "staging") for name in ("eu-1", "us-2", "ap-3"))
    for hours_ago, endpoint, release in ((9, us, v41), (7, eu, v41), (6, eu, v42), (5, ap, v41), (3, eu, v41)):
        world.deploy(endpoint, release, by=release_manager, hours_ago=hours_ago)
    full = lineage.trace("churn-v41")

    with django_assert_num_queries(4):
        [status] = lineage.status_traces([v41.pk]).values()
        assert status.deployed_to == ("eu-1", "ap-3", "us-2"), "the most recent first"
        assert status.deployed_to == full.deployed_to
        assert status.links == full.links
        assert status.digest == full.digest
        assert lineage.release_status(status) == lineage.release_status(full)
    with pytest.raises(LookupError, match="read for a status"):
        status.deployments  # noqa: B018 - reading it is the test
