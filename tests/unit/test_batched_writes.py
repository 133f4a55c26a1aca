"""Batched writes used by the sync: appended audit events, pages of runs, large commit batches."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
from dataclasses import asdict

import pytest
from django.core.management import call_command
from django.db import transaction

from audit import log, vocabulary
from audit.models import AuditEvent
from releases import services
from releases.errors import Conflict, InvalidInput
from releases.models import Commit, DatasetVersion, ExperimentRun, ModelVersion, RunDatasetInput
from releases.sync import mapping
from tests.factories import SYSTEM, World, sha_of

# Actions only these tests write; registered like every action the product records.
vocabulary.register("test.single", "An event written by the audit log tests.")
vocabulary.register("test.batch", "An event written by the audit log tests.")
vocabulary.register("test.odd", "An event written by the audit log tests.")


@pytest.fixture
def world(db):
    return World.create()


def _audit_verify() -> str:
    """The verdict line of audit_verify (the lines after it are about checkpoints)."""
    out = io.StringIO()
    call_command("audit_verify", stdout=out, stderr=io.StringIO())
    return out.getvalue().splitlines(keepends=True)[0]


@pytest.mark.django_db
def test_record_many_continues_the_chain_and_audit_verify_passes():
    with transaction.atomic():
        first = log.record("test.single", actor=SYSTEM, object_type="thing", object_key="0")
        batch = log.record_many(
            [log.PendingEvent("test.batch", "thing", str(i), new={"i": i}, reason="r") for i in range(1, 4)],
            actor=SYSTEM,
        )
        after = log.record("test.single", actor=SYSTEM, object_type="thing", object_key="4")
    stored = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
    assert [e.object_key for e in stored] == ["0", "1", "2", "3", "4"]
    assert stored[1].prev_hash == first.hash
    assert [e.prev_hash for e in stored[2:]] == [e.hash for e in stored[1:4]]
    assert after.prev_hash == batch[-1].hash
    assert all(e.compute_hash() == e.hash for e in stored)
    assert (stored[2].actor, stored[2].new, stored[2].reason) == ("test-setup", {"i": 2}, "r")
    assert _audit_verify() == "audit log intact: 5 events verified\n"


@pytest.mark.django_db
def test_record_many_stores_values_exactly_as_hashed():
    odd = {"note": "café\tline\nnext \\ end", "when": datetime.datetime(2025, 1, 2, tzinfo=datetime.UTC), "n": None}
    with transaction.atomic():
        [event] = log.record_many([log.PendingEvent("test.odd", "thing", "k", old=odd, reason="ünïcode")], actor=SYSTEM)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.old == {"note": "café\tline\nnext \\ end", "when": "2025-01-02T00:00:00Z", "n": None}
    assert stored.new is None
    assert stored.reason == "ünïcode"
    assert stored.compute_hash() == stored.hash == event.hash
    assert _audit_verify() == "audit log intact: 1 events verified\n"


@pytest.mark.django_db(transaction=True)
def test_record_many_must_run_inside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        log.record_many([log.PendingEvent("test.batch", "t", "k")], actor=SYSTEM)


def _runs(world: World) -> list[services.RunData]:
    commit = world.commit("train")
    world.dataset("churn-train:17")
    return [
        services.RunData(
            run_id=f"r{i}",
            name=f"churn-{i}",
            commit_sha=commit.sha[:8] if i % 2 else "f" * 40,
            feature_view="customer_features_v5" if i != 2 else "not a view",
            params={"lr": "0.1"},
            metrics={"auc": 0.8 + i / 100},
            datasets=[
                services.DatasetRef("churn-train:17", digest="abc123" if i != 3 else "def456"),
                services.DatasetRef("churn-train:99"),
            ],
        )
        for i in range(5)
    ]


def _snapshot(server_pk: int) -> list[tuple[object, ...]]:
    return [
        (
            run.run_id,
            run.name,
            run.commit_id,
            run.commit_sha,
            run.feature_pipeline_version_id,
            run.metrics,
            run.warnings,
            sorted((i.dataset_version.key, i.context, i.digest) for i in run.dataset_inputs.all()),
        )
        for run in ExperimentRun.objects.filter(server_id=server_pk).order_by("run_id")
    ]


def _run_events() -> list[tuple[str, str, object]]:
    return [
        (e.action, e.object_key, e.new)
        for e in AuditEvent.objects.filter(action__startswith="run.").order_by("object_key", "seq")
    ]


def test_a_page_of_runs_gives_the_same_rows_and_events_as_one_by_one(world):
    datas = _runs(world)
    assert services.record_runs(world.server, datas, by=SYSTEM) == ["created"] * 5
    batched, batched_events = _snapshot(world.server.pk), _run_events()
    version = DatasetVersion.objects.by_key("churn-train:17").get()
    assert version.mutated

    other = services.add_mlflow_server(name="one-by-one", tracking_uri="http://127.0.0.1:5001", by=SYSTEM).server
    assert [services.record_run(other, data, by=SYSTEM) for data in datas] == ["created"] * 5
    single = _snapshot(other.pk)
    assert single == batched
    assert batched[1][2] is not None  # a unique prefix resolves
    assert batched[0][2] is None  # an unknown sha is kept, unresolved
    assert batched[2][6] == [
        "feature view 'not a view' is not of the form <pipeline>_v<N>",
        "dataset version 'churn-train:99' is not registered",
    ]
    single_events = [(a, k.replace("one-by-one:", "mlflow:"), n) for a, k, n in _run_events() if "one-by-one" in k]
    assert single_events == batched_events
    assert [(a, k) for a, k, _ in batched_events] == [("run.created", f"mlflow:r{i}") for i in range(5)]
    assert _audit_verify().startswith("audit log intact")


def test_a_second_pass_over_the_same_page_writes_nothing(world):
    datas = _runs(world)
    services.record_runs(world.server, datas, by=SYSTEM)
    events, inputs = AuditEvent.objects.count(), list(RunDatasetInput.objects.values_list("pk", flat=True))
    assert services.record_runs(world.server, datas, by=SYSTEM) == ["unchanged"] * 5
    assert AuditEvent.objects.count() == events
    assert list(RunDatasetInput.objects.values_list("pk", flat=True)) == inputs


def test_a_changed_run_in_a_page_is_updated_with_one_event(world):
    datas = _runs(world)
    services.record_runs(world.server, datas, by=SYSTEM)
    datas[1].metrics["auc"] = 0.99
    datas[4].datasets.pop(0)
    assert services.record_runs(world.server, datas, by=SYSTEM) == [
        "unchanged",
        "updated",
        "unchanged",
        "unchanged",
        "updated",
    ]
    assert ExperimentRun.objects.get(run_id="r1").metrics == {"auc": 0.99}
    assert not RunDatasetInput.objects.filter(run__run_id="r4").exists()
    updates = AuditEvent.objects.filter(action="run.updated").order_by("seq")
    assert [e.object_key for e in updates] == ["mlflow:r1", "mlflow:r4"]


def test_commits_in_a_batch_are_inserted_once_and_counted_without_recounting(world):
    when = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    batch = [
        services.CommitData(
            sha=sha_of(f"batch {i}"),
            author_name="Dana\tDev",
            author_email="dana@example.com",
            authored_at=when,
            committed_at=when,
            message=f"change {i}\n\nwith a \\ backslash",
            parents=(sha_of(f"batch {i - 1}"),),
        )
        for i in range(10)
    ]
    existing = Commit.objects.filter(repository=world.repo).count()
    assert services.record_commits(world.repo, batch[:4]) == 4
    assert services.record_commits(world.repo, batch + batch[:2]) == 6
    assert services.record_commits(world.repo, batch) == 0
    assert Commit.objects.filter(repository=world.repo).count() == existing + 10
    stored = Commit.objects.get(sha=batch[7].sha)
    assert (stored.author_name, stored.message, stored.parents) == (
        "Dana\tDev",
        "change 7\n\nwith a \\ backslash",
        [sha_of("batch 6")],
    )
    assert stored.committed_at == when


def test_commits_resolve_in_bulk_as_one_by_one(world):
    commit = world.commit("resolve me")
    shas = [commit.sha, commit.sha[:7].upper(), "0" * 40, "abc", "zz" * 20, commit.sha + "0"]
    assert services.resolve_commits(shas) == {sha: services.resolve_commit(sha) for sha in shas}
    assert services.resolve_commits([commit.sha[:9]])[commit.sha[:9]] == commit


def test_model_versions_in_a_page_are_registered_with_an_event_each(world):
    services.record_run(world.server, services.RunData(run_id="r1"), by=SYSTEM)
    page = [
        services.ModelVersionData(name="churn-model", version=1, source_run_id="r1", artifact_uri="runs:/r1/model"),
        services.ModelVersionData(name="churn-model", version=2, artifact_uri="s3://m/2", aliases=("production",)),
        services.ModelVersionData(name="", version=3),
        services.ModelVersionData(name="churn-model", version=1, source_run_id="r1", artifact_uri="runs:/r1/model"),
    ]
    outcomes = services.register_model_versions(world.server, page, by=SYSTEM)
    assert outcomes[:2] == ["created", "created"]
    assert isinstance(outcomes[2], InvalidInput)
    assert outcomes[3] == "unchanged"
    first = ModelVersion.objects.by_key("churn-model/1").get()
    assert (first.run.run_id, first.artifact_uri) == ("r1", "runs:/r1/model")
    assert ModelVersion.objects.by_key("churn-model/2").get().aliases == ["production"]
    events = AuditEvent.objects.filter(action="model_version.registered").order_by("seq")
    assert [(e.object_key, e.new["run_id"]) for e in events] == [("churn-model/1", "r1"), ("churn-model/2", "")]

    moved = [page[0], services.ModelVersionData(name="churn-model", version=2, artifact_uri="s3://other/2")]
    again = services.register_model_versions(world.server, moved, by=SYSTEM)
    assert again[0] == "unchanged"
    assert isinstance(again[1], Conflict)
    assert ModelVersion.objects.count() == 2
    assert _audit_verify().startswith("audit log intact")


def test_run_fingerprint_is_the_digest_of_the_whole_run_data():
    data = services.RunData(
        run_id="r1",
        start_time=datetime.datetime(2025, 1, 2, tzinfo=datetime.UTC),
        params={"feature_view": "customer_features_v5"},
        metrics={"auc": 0.862},
        datasets=[services.DatasetRef("churn-train:17", digest="abc123"), services.DatasetRef("churn-eval:3", "eval")],
        warnings=["tag dataset_version='garbage' is not name:version (e.g. churn-train:17)"],
    )
    # Digests stored by earlier syncs stay valid: a run that did not change is not written again.
    expected = hashlib.sha256(json.dumps(asdict(data), sort_keys=True, default=str).encode()).hexdigest()
    assert mapping.fingerprint(data) == expected
