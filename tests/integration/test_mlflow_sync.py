"""MLflow sync against a real `mlflow server` on loopback, with real git repositories."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User

from audit.log import SystemActor
from audit.models import AuditEvent
from releases import lineage, services
from releases.models import (
    DatasetDigest,
    DatasetVersion,
    Deployment,
    ExperimentRun,
    ModelVersion,
    Release,
    RunDatasetInput,
    SyncState,
    WriteBack,
)
from releases.sync import sources
from releases.sync.state import SourceBusy, SourceUnavailable, leased
from releases.tasks import apply_write_back, sync_source
from tests.conftest import PASSWORD
from tests.factories import approve, content_hash
from tests.integration.conftest import GitRepo
from tests.processes import free_port

pytestmark = pytest.mark.django_db

CLI = SystemActor("test")


def log_run(
    client: Any,
    experiment: str,
    *,
    name: str = "churn-v42",
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
) -> str:
    existing = client.get_experiment_by_name(experiment)
    experiment_id = existing.experiment_id if existing else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=name, tags=tags or {})
    for key, value in (params or {}).items():
        client.log_param(run.info.run_id, key, value)
    for key, value in (metrics or {}).items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def log_dataset(client: Any, run_id: str, *, name: str, digest: str, context: str = "training") -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(name=name, digest=digest, source_type="s3", source=f"s3://data/{name}.parquet")
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])])


def register(client: Any, model: str, run_id: str, **tags: str) -> int:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):  # already registered by an earlier call
        client.create_registered_model(model)
    version = client.create_model_version(model, source=f"runs:/{run_id}/model", run_id=run_id, tags=tags)
    return int(version.version)


def dataset(name: str, version: int = 17) -> DatasetVersion:
    created, _ = services.register_dataset_version(
        name=name,
        version=version,
        uri=f"s3://data/{name}/{version}.parquet",
        content_hash=content_hash(f"{name}:{version}"),
        by=CLI,
    )
    return created


@pytest.fixture
def git_state(git_repo: GitRepo) -> SyncState:
    return services.add_git_repository(name="churn", url=str(git_repo.path), by=CLI)


@pytest.fixture
def mlflow_state(mlflow_uri: str) -> SyncState:
    return services.add_mlflow_server(name="mlflow", tracking_uri=mlflow_uri, by=CLI)


def test_run_logged_with_design_tags_gives_a_complete_trace(
    git_repo: GitRepo, git_state: SyncState, mlflow_state: SyncState, mlflow_client: Any, uid: str
) -> None:
    sha = git_repo.commit("churn v42: label mapping v2")
    sources.sync_state(git_state)
    dataset(f"{uid}-train")
    run_id = log_run(
        mlflow_client,
        f"churn-{uid}",
        tags={"git_commit": sha[:7], "dataset_version": f"{uid}-train:17"},
        params={"feature_view": "customer_features_v5", "max_depth": "6"},
        metrics={"auc": 0.862},
    )
    version = register(mlflow_client, f"{uid}-model", run_id, release=f"{uid}-v1")

    result = sources.sync_state(mlflow_state)

    run = ExperimentRun.objects.select_related("commit", "feature_pipeline_version__pipeline").get(run_id=run_id)
    assert run.commit is not None
    assert run.commit.sha == sha
    assert run.feature_pipeline_version is not None
    assert run.feature_pipeline_version.key == "customer_features_v5"
    assert (run.name, run.experiment_name, run.metrics["auc"], run.params["max_depth"]) == (
        "churn-v42",
        f"churn-{uid}",
        0.862,
        "6",
    )
    assert [(i.dataset_version.key, i.context) for i in run.dataset_inputs.all()] == [(f"{uid}-train:17", "training")]
    model_version = ModelVersion.objects.get(registered_model__name=f"{uid}-model", version=version)
    assert model_version.run_id == run.pk
    release = Release.objects.get(name=f"{uid}-v1")
    assert (release.state, release.created_by, release.model_version_id) == ("draft", None, model_version.pk)
    trace = lineage.trace(release.name)
    assert trace.missing_for_approval == []
    # The tracking server outlives each test's database, so it also holds other tests' release tags: this
    # sync created every release now in the record, this test's among them.
    assert result.details["releases created"] == Release.objects.count()
    assert Release.objects.filter(name__startswith=uid).count() == 1
    assert AuditEvent.objects.get(action="run.created", object_key=f"mlflow:{run_id}").actor == "mlflow-sync:mlflow"
    assert AuditEvent.objects.filter(action="model_version.registered", object_key=f"{uid}-model/{version}").exists()
    assert AuditEvent.objects.get(action="release.created", object_key=release.name).actor == "mlflow-sync:mlflow"

    audit_before = AuditEvent.objects.count()
    again = sources.sync_state(mlflow_state)

    assert (again.created, again.updated) == (0, 0)
    assert AuditEvent.objects.count() == audit_before
    assert ExperimentRun.objects.filter(run_id=run_id).count() == 1

    mlflow_client.set_tag(run_id, "reviewed", "yes")
    mlflow_client.log_metric(run_id, "auc", 0.871)
    changed = sources.sync_state(mlflow_state)

    run.refresh_from_db()
    assert changed.details["runs updated"] == 1
    assert (run.tags["reviewed"], run.metrics["auc"]) == ("yes", 0.871)
    assert AuditEvent.objects.filter(action="run.updated", object_key=f"mlflow:{run_id}").count() == 1


TRAIN_SCRIPT = """
import sys
import mlflow
import pandas as pd

mlflow.set_experiment(sys.argv[1])
frame = pd.DataFrame({"tenure": [1, 5, 9], "churned": [0, 1, 0]})
data = mlflow.data.from_pandas(frame, source="s3://data/churn-train/17.parquet", name=sys.argv[2])
with mlflow.start_run(run_name="churn-v42") as run:
    mlflow.log_input(data, context="training")
    mlflow.log_param("feature_view", "customer_features_v5")
    mlflow.log_metric("auc", 0.862)
    print("RESULT", run.info.run_id, data.digest)
"""


def test_run_logged_the_standard_mlflow_way_inside_a_git_repository(
    git_repo: GitRepo, git_state: SyncState, mlflow_state: SyncState, mlflow_uri: str, uid: str
) -> None:
    head = git_repo.commit("training script", filename="train.py", content=textwrap.dedent(TRAIN_SCRIPT))
    done = subprocess.run(
        [sys.executable, "train.py", f"std-{uid}", f"{uid}-train:17"],
        cwd=git_repo.path,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "GIT_PYTHON_REFRESH": "quiet"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    [result] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    _, run_id, digest = result.split()
    dataset(f"{uid}-train")
    sources.sync_state(git_state)

    sources.sync_state(mlflow_state)

    run = ExperimentRun.objects.select_related("commit").get(run_id=run_id)
    assert run.tags["mlflow.source.git.commit"] == head
    assert run.commit is not None
    assert run.commit.sha == head
    [used] = RunDatasetInput.objects.filter(run=run).select_related("dataset_version__dataset")
    assert (used.dataset_version.key, used.context, used.digest) == (f"{uid}-train:17", "training", digest)
    assert DatasetDigest.objects.get(dataset_version=used.dataset_version).digest == digest
    assert run.warnings == []


def test_one_dataset_version_with_two_digests_is_flagged_mutated(
    mlflow_state: SyncState, mlflow_client: Any, uid: str
) -> None:
    version = dataset(f"{uid}-train")
    for digest in ("aaaa1111", "bbbb2222"):
        run_id = log_run(mlflow_client, f"mut-{uid}", tags={"dataset_version": f"{uid}-train:17"})
        log_dataset(mlflow_client, run_id, name=f"{uid}-train", digest=digest)

    sources.sync_state(mlflow_state)

    version.refresh_from_db()
    assert version.mutated
    assert "aaaa1111" in version.mutation_detail
    assert "bbbb2222" in version.mutation_detail
    event = AuditEvent.objects.get(action="dataset_version.mutation_detected", object_key=f"{uid}-train:17")
    assert sorted(event.new["digests"]) == ["aaaa1111", "bbbb2222"]


def test_malformed_values_become_warnings_on_the_run(mlflow_state: SyncState, mlflow_client: Any, uid: str) -> None:
    run_id = log_run(
        mlflow_client,
        f"bad-{uid}",
        tags={"dataset_version": "garbage", "git_commit": "not-a-sha"},
        params={"feature_view": "oops"},
    )

    result = sources.sync_state(mlflow_state)

    run = ExperimentRun.objects.get(run_id=run_id)
    assert result.created >= 1
    assert any("dataset_version='garbage' is not name:version" in w for w in run.warnings)
    assert any("git_commit='not-a-sha' is not a commit sha" in w for w in run.warnings)
    assert any("feature view 'oops'" in w for w in run.warnings)
    assert AuditEvent.objects.get(action="run.created", object_key=f"mlflow:{run_id}").new["warnings"] == run.warnings


def test_unknown_commit_is_kept_unresolved_and_resolves_after_the_git_sync(
    git_repo: GitRepo, git_state: SyncState, mlflow_state: SyncState, mlflow_client: Any, uid: str
) -> None:
    sha = git_repo.commit("not synced yet")
    run_id = log_run(mlflow_client, f"late-{uid}", tags={"git_commit": sha})

    sources.sync_state(mlflow_state)
    run = ExperimentRun.objects.get(run_id=run_id)
    assert (run.commit_sha, run.commit_id, run.commit_unresolved) == (sha, None, True)

    sources.sync_state(git_state)
    sources.sync_state(mlflow_state)

    run.refresh_from_db()
    assert run.commit is not None
    assert run.commit.sha == sha
    assert AuditEvent.objects.filter(action="run.updated", object_key=f"mlflow:{run_id}").count() == 1


def test_unreachable_server_shows_the_error_and_keeps_synced_rows(
    mlflow_state: SyncState, mlflow_client: Any, uid: str
) -> None:
    run_id = log_run(mlflow_client, f"down-{uid}")
    sources.sync_state(mlflow_state)
    down = services.add_mlflow_server(name="down", tracking_uri=f"http://127.0.0.1:{free_port()}", by=CLI)

    with pytest.raises(SourceUnavailable, match="is unreachable"):
        sources.sync_state(down)
    outcome = sync_source.delay(down.pk).get()

    down.refresh_from_db()
    assert down.last_error.endswith("is unreachable: connection refused")
    assert down.failures_in_a_row == 2
    assert outcome.startswith("failed: MLflow at http://127.0.0.1:")
    assert ExperimentRun.objects.filter(run_id=run_id).exists()


def test_a_source_being_synced_is_not_synced_twice(mlflow_state: SyncState, mlflow_client: Any, uid: str) -> None:
    log_run(mlflow_client, f"lock-{uid}")
    with leased(mlflow_state), pytest.raises(SourceBusy):
        sources.sync_state(mlflow_state)
    assert sync_source.delay(mlflow_state.pk).get() != "already running"
    assert ExperimentRun.objects.values("run_id").distinct().count() == ExperimentRun.objects.count()


def test_endpoint_following_an_alias_gets_a_deployment_when_it_moves_and_deploys_move_the_alias(
    mlflow_state: SyncState,
    mlflow_client: Any,
    uid: str,
    release_manager: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    model = f"{uid}-model"
    first = register(mlflow_client, model, log_run(mlflow_client, f"alias-{uid}"), release=f"{uid}-v1")
    second = register(mlflow_client, model, log_run(mlflow_client, f"alias-{uid}"), release=f"{uid}-v2")
    sources.sync_state(mlflow_state)
    endpoint = services.create_endpoint(
        name=f"{uid}-scoring", environment="staging", registered_model=model, mlflow_alias="staging", by=CLI
    )
    mlflow_client.set_registered_model_alias(model, "staging", str(first))

    sources.sync_state(mlflow_state)

    deployment = Deployment.objects.get(endpoint=endpoint)
    assert (deployment.release.name, deployment.source, deployment.actor) == (
        f"{uid}-v1",
        "mlflow-alias",
        "mlflow-sync:mlflow",
    )
    assert AuditEvent.objects.filter(action="deployment.recorded", object_key=endpoint.name).count() == 1
    assert not WriteBack.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        services.record_deployment(endpoint, Release.objects.get(name=f"{uid}-v2"), by=release_manager, source="api")

    write_back = WriteBack.objects.get()
    assert (write_back.status, write_back.kind, write_back.version) == ("done", "set-alias", second)
    assert mlflow_client.get_model_version_by_alias(model, "staging").version == str(second)
    assert AuditEvent.objects.filter(action="mlflow.write_back_applied").count() == 1
    sources.sync_state(mlflow_state)
    assert Deployment.objects.filter(endpoint=endpoint).count() == 2


def test_approval_tags_the_model_version_and_a_failed_write_back_is_retried(
    mlflow_state: SyncState,
    mlflow_client: Any,
    uid: str,
    release_manager: User,
    lead: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sources.sync_state(mlflow_state)
    server = mlflow_state.server
    assert server is not None
    # A version the product knows but MLflow does not (yet): the write-back fails and is kept.
    model = f"{uid}-model"
    services.register_dataset_version(
        name=f"{uid}-train", version=17, uri="s3://d/17", content_hash=content_hash(uid), by=CLI
    )
    services.record_commits(git_repo_model(), [services.CommitData(sha="a" * 40)])
    services.record_run(
        server,
        services.RunData(
            run_id=f"{uid}run",
            commit_sha="a" * 40,
            feature_view="customer_features_v5",
            datasets=[services.DatasetRef(key=f"{uid}-train:17")],
        ),
        by=CLI,
    )
    services.register_model_version(
        server, services.ModelVersionData(name=model, version=1, source_run_id=f"{uid}run"), by=CLI
    )
    release, _ = services.create_release(
        name=f"{uid}-v1", model_version=f"{model}/1", validation_report_uri="s3://r.html", by=release_manager
    )
    services.submit_release(release, by=release_manager)

    with django_capture_on_commit_callbacks(execute=True):
        approve(release, by=lead, password=PASSWORD, meaning="Approved for production")

    write_back = WriteBack.objects.get()
    assert (write_back.status, write_back.attempts, write_back.key, write_back.value) == (
        "failed",
        1,
        "release",
        f"{uid}-v1",
    )
    assert write_back.last_error
    assert AuditEvent.objects.filter(action="mlflow.write_back_failed").count() == 1

    run_id = log_run(mlflow_client, f"wb-{uid}")
    register(mlflow_client, model, run_id)
    assert apply_write_back.delay(write_back.pk).get() == "applied"

    write_back.refresh_from_db()
    assert (write_back.status, write_back.attempts) == ("done", 2)
    assert mlflow_client.get_model_version(model, "1").tags["release"] == f"{uid}-v1"


def served(state: SyncState, *, model_name: str = "", run_id: str = "") -> Any:
    """Sync ``state`` as a webhook delivery naming this model and run has it synced: kept, then served."""
    services.queue_sync_request(
        state,
        by=SystemActor(f"mlflow-webhook:{state.source_name}"),
        delivery_id=f"delivery-{uuid.uuid4()}",
        event="model_version.created",
        model_name=model_name,
        run_id=run_id,
    )
    return sources.sync_state(state, queued=True)


def git_repo_model() -> Any:
    return services.add_git_repository(name="code", url="/srv/git/code.git", by=CLI).repository


def test_a_second_server_with_the_same_model_names_touches_none_of_ours(
    mlflow_state: SyncState, mlflow_uri: str, mlflow_client: Any, uid: str
) -> None:
    run_id = log_run(mlflow_client, f"churn-{uid}")
    version = register(mlflow_client, f"{uid}-model", run_id)
    served(mlflow_state, model_name=f"{uid}-model", run_id=run_id)
    ours = ModelVersion.objects.select_related("run__server").get(registered_model__name=f"{uid}-model")
    assert ours.run is not None
    assert ours.run.server.name == "mlflow"
    # Another source that knows the same names and run ids: a copy of the server, or a second team's.
    mirror = services.add_mlflow_server(name="mirror", tracking_uri=mlflow_uri, by=CLI)

    for _ in range(2):
        result = served(mirror, model_name=f"{uid}-model", run_id=run_id)
        assert any(f"registered model {uid}-model belongs to the MLflow server mlflow" in w for w in result.warnings)

    assert ExperimentRun.objects.filter(run_id=run_id, server__name="mirror").exists()
    ours.refresh_from_db()
    assert (ours.run.server.name, ours.version) == ("mlflow", version)
    assert ModelVersion.objects.filter(registered_model__name=f"{uid}-model").count() == 1
    [conflict] = AuditEvent.objects.filter(action="model_version.source_conflict", object_key=f"{uid}-model")
    assert conflict.new == {"owner": "mlflow", "reported_by": "mirror"}
    assert not AuditEvent.objects.filter(action="model_version.updated", object_key=f"{uid}-model/{version}").exists()


def test_pending_runs_are_read_again_a_page_at_a_time_and_never_after_a_full_read(
    git_repo: GitRepo,
    git_state: SyncState,
    mlflow_state: SyncState,
    mlflow_client: Any,
    uid: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sync holds no set of every run it read (a million runs' ids): a full read re-reads no pending run,
    and a narrower sync streams the pending ones from the database in pages of PAGE."""
    from releases.sync import mlflow as mlflow_sync

    monkeypatch.setattr(mlflow_sync, "PAGE", 2)
    sha = git_repo.commit("not synced yet")
    runs = [log_run(mlflow_client, f"pending-{uid}", name=f"r{i}", tags={"git_commit": sha}) for i in range(5)]
    read_by_id: list[list[str]] = []
    by_id = mlflow_sync._Sync._sync_runs_by_id

    def spy(self: Any, run_ids: list[str]) -> None:
        read_by_id.append(list(run_ids))
        by_id(self, run_ids)

    monkeypatch.setattr(mlflow_sync._Sync, "_sync_runs_by_id", spy)
    sources.sync_state(mlflow_state, full=True)
    assert not [ids for ids in read_by_id if ids]

    sources.sync_state(git_state)
    read_by_id.clear()
    served(mlflow_state, run_id=runs[0])

    # The named run first, then every other pending one (the shared server's other runs among them).
    assert read_by_id[0] == [runs[0]]
    pages = [ids for ids in read_by_id[1:] if ids]
    assert max(len(ids) for ids in pages) <= 2
    read_again = [run for ids in pages for run in ids]
    assert set(runs[1:]) <= set(read_again)
    assert runs[0] not in read_again
    assert ExperimentRun.objects.filter(run_id__in=runs, commit__isnull=True).count() == 0
