"""The two-command setup: the demo world builds (twice), and production settings pass check --deploy."""

from __future__ import annotations

import datetime
import io
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import close_old_connections, connection
from django.utils import timezone

from audit.log import verify_chain
from audit.models import AuditEvent
from releases import lineage
from releases.demo.world import build
from releases.models import Deployment, ExperimentRun, GitTag, ModelVersion, Release, SyncState, WriteBack
from tests import clean_environment
from tests.conftest import unavailable
from tests.factories import approve

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_demo_builder_tells_the_story_and_runs_twice(tmp_path: Path, settings):
    # Transactional: the write-backs an approval queues run once its transaction commits, as in `make demo`.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LINEAGE_GIT_CACHE_DIR = tmp_path / "git-cache"
    out = io.StringIO()
    call_command("build_demo", "--root", str(tmp_path), stdout=out)
    assert "Password for all: lineage-demo" in out.getvalue()
    counts = (Release.objects.count(), Deployment.objects.count(), AuditEvent.objects.count())
    call_command("build_demo", "--root", str(tmp_path), stdout=io.StringIO())
    assert (Release.objects.count(), Deployment.objects.count(), AuditEvent.objects.count()) == counts

    statuses = {s.endpoint.name: s for s in lineage.endpoint_statuses()}
    production = statuses["churn-scoring"]
    assert production.endpoint.environment == "production"
    assert production.live.release.name == "churn-v42"
    assert production.rollback_target.name == "churn-v41"
    assert [v.key for v in production.live_trace.dataset_versions] == ["churn-eval:3", "churn-train:18"]
    assert production.live_trace.completeness == (6, 6)
    assert lineage.trace("churn-v41").dataset_versions[1].key == "churn-train:17"
    assert lineage.trace("churn-v42").feature_version.key == "customer_features_v5"
    assert lineage.trace("churn-v41").feature_version.key == "customer_features_v4"
    assert any(s.endpoint.environment == "staging" for s in statuses.values())
    fraud = lineage.trace("fraud-v8")
    assert [link.key for link in fraud.links if not link.present] == ["data"]
    tag = lineage.trace("churn-v42").release.git_tag
    assert tag.name == "model-churn-v42"
    assert (tmp_path / "git" / "churn-model" / ".git").is_dir()
    assert (tmp_path / "data" / "churn-train-18.csv").is_file()
    assert verify_chain().ok
    _assert_chain_came_from_the_sync_and_wrote_back(tmp_path)


def _assert_chain_came_from_the_sync_and_wrote_back(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    git_state = SyncState.objects.get(repository__name="churn-model")
    mlflow_state = SyncState.objects.get(server__name="mlflow")
    assert git_state.last_success_at is not None
    assert mlflow_state.last_success_at is not None
    assert (git_state.last_error, mlflow_state.last_error) == ("", "")
    uri = mlflow_state.server.tracking_uri
    assert uri == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"

    created_by = dict(
        AuditEvent.objects.filter(
            action__in=["run.created", "model_version.registered", "git_tag.created"]
        ).values_list("object_key", "actor")
    )
    mlflow_sync, git_sync = "mlflow-sync:mlflow", "git-sync:churn-model"
    runs = {run.name: run for run in ExperimentRun.objects.select_related("commit")}
    assert sorted(runs) == ["churn-v40", "churn-v41", "churn-v42", "churn-v43", "fraud-v8"]
    assert {created_by[f"mlflow:{run.run_id}"] for run in runs.values()} == {mlflow_sync}
    assert {created_by[f"churn-model/{n}"] for n in (40, 41, 42, 43)} == {mlflow_sync}
    assert created_by["fraud-model/8"] == mlflow_sync
    assert {created_by[f"churn-model:model-churn-v{n}"] for n in (40, 41, 42, 43)} == {git_sync}
    assert runs["churn-v42"].commit == GitTag.objects.get(name="model-churn-v42").commit
    assert runs["churn-v42"].warnings == []

    # The approvals' release tags reached MLflow, and the last sync read them back.
    assert set(WriteBack.objects.values_list("status", flat=True)) == {WriteBack.Status.DONE}
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    in_mlflow = client.get_model_version_by_alias("churn-model", "production")
    assert (str(in_mlflow.version), in_mlflow.tags["release"]) == ("42", "churn-v42")
    assert in_mlflow.run_id == runs["churn-v42"].run_id
    [dataset_input] = [
        i for i in client.get_run(in_mlflow.run_id).inputs.dataset_inputs if i.dataset.name == "churn-train"
    ]
    assert runs["churn-v42"].dataset_inputs.get(context="training").digest == dataset_input.dataset.digest
    v42 = ModelVersion.objects.get(registered_model__name="churn-model", version=42)
    assert (v42.aliases, v42.tags) == (["production", "staging"], {"release": "churn-v42"})


@pytest.mark.django_db(transaction=True)
def test_demo_story_happens_in_order_and_leaves_a_release_for_a_lead(tmp_path: Path, settings, client):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LINEAGE_GIT_CACHE_DIR = tmp_path / "git-cache"
    started = timezone.now()
    build(password="demo-password", root=tmp_path, say=lambda _line: None)

    # A release is created, then approved, then deployed; production only after its approval.
    releases = Release.objects.prefetch_related("approvals", "deployments__endpoint").order_by("created_at")
    assert [r.name for r in releases] == ["churn-v40", "churn-v41", "churn-v42", "fraud-v8", "churn-v43"]
    for release in releases:
        signed = [a.signed_at for a in release.approvals.all()]
        deployed = [d.deployed_at for d in release.deployments.all()]
        assert all(release.created_at <= moment for moment in signed + deployed), release.name
        if signed:
            assert min(signed) <= min(deployed), release.name
        production = [d.deployed_at for d in release.deployments.all() if d.endpoint.is_production]
        assert all(min(signed) <= moment for moment in production), release.name
        assert release.created_at < started  # the story happened before the build, not during it
    # Spread over three weeks as the story tells it, the newest production deployment a day and a half ago.
    production = Deployment.objects.filter(endpoint__name="churn-scoring").order_by("deployed_at")
    assert [d.release.name for d in production] == ["churn-v40", "churn-v41", "churn-v42"]
    assert started - production[0].deployed_at > datetime.timedelta(days=19)
    assert datetime.timedelta(days=1) < started - production[2].deployed_at < datetime.timedelta(days=2)

    # The audit log's order is the order of time (an auditor's checker flags times that go backwards).
    times = list(AuditEvent.objects.order_by("seq").values_list("at", flat=True))
    assert len(times) > 50
    assert times == sorted(times)
    assert verify_chain().ok
    # Commits were made, and runs trained, before the releases cut from them.
    v42 = lineage.trace("churn-v42")
    assert v42.commit.committed_at < v42.run.start_time < v42.release.created_at

    # churn-v43 waits for an ML lead's signature: complete chain, validation report, signable by a lead.
    lead = User.objects.get(username="lead")
    waiting = lineage.trace("churn-v43")
    assert waiting.release.state == Release.State.PENDING
    assert waiting.missing_for_approval == []
    assert waiting.release.validation_report_uri
    assert lineage.signing_refusal(waiting, lead) is None
    queue = lineage.approval_queue(lead)
    assert [trace.release.name for trace in queue.ready] == ["churn-v43"]
    # fraud-v8 waits too, but lacks its dataset link: listed apart, with that reason.
    assert [(trace.release.name, refusal.rule) for trace, refusal in queue.blocked] == [
        ("fraud-v8", "incomplete_chain")
    ]
    client.force_login(lead)
    page = client.get("/approvals/").content.decode()
    assert "churn-v43" in page
    approve(waiting.release, by=lead, password="demo-password")
    waiting.release.refresh_from_db()
    assert waiting.release.state == Release.State.APPROVED
    assert AuditEvent.objects.order_by("-seq").filter(action="release.approved").first().object_key == "churn-v43"


def test_production_settings_pass_check_deploy(tmp_path: Path):
    env = {
        # A production environment: none of the test run's own variables (the browser tests relax
        # Django's async guard for Playwright, which check --deploy rightly reports).
        **{
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "DATABASE_MIGRATE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
        },
        "DJANGO_SETTINGS_MODULE": "lineage_site.settings",
        "DEBUG": "0",
        "SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-" + "q9" * 10,
        "ALLOWED_HOSTS": "lineage.example.com",
        "LINEAGE_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lineage_site.settings",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "x",
        "LINEAGE_VAR_DIR": str(tmp_path),
    }
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_a_malformed_setting_stops_the_start_up(tmp_path: Path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lineage_site.settings",
        "DEBUG": "maybe",
        "LINEAGE_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DEBUG must be a boolean (1/0, true/false), not 'maybe'" in result.stderr


def test_the_callers_environment_does_not_change_a_result():
    # A shell that exported the demo password and a stricter approval rule runs the same tests green.
    env = {**os.environ, "DEMO_PASSWORD": "something-else", "LINEAGE_REQUIRED_APPROVALS": "5", "DEBUG": "0"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/unit/services/test_release.py::test_approval_signs_the_lineage_digest_and_is_audited",
        ],
        cwd=ROOT,
        env={k: v for k, v in env.items() if k not in {"DATABASE_URL", "DATABASE_MIGRATE_URL", "REDIS_URL"}},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    # With LINEAGE_REQUIRED_APPROVALS=5 seen, one signature would leave the release pending and fail it.
    assert "1 passed" in result.stdout


def test_product_variables_are_told_from_the_test_runs_own():
    environ = {
        "DEMO_PASSWORD": "x",
        "SECRET_KEY_FILE": "/run/secret",
        "LINEAGE_REQUIRED_APPROVALS": "2",
        "DEBUG": "0",
        "DATABASE_URL": "postgres://ci",
        "LINEAGE_REQUIRE_SERVICES": "1",
        "HOME": "/root",
    }
    assert clean_environment.product_variables(environ) == [
        "DEBUG",
        "DEMO_PASSWORD",
        "LINEAGE_REQUIRED_APPROVALS",
        "SECRET_KEY_FILE",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "LINEAGE_REQUIRED_APPROVALS must be at least 1, not 0"),
        ("-1", "LINEAGE_REQUIRED_APPROVALS must be a whole number (ASCII digits, at most 1000000000000), not '-1'"),
        ("--5", "LINEAGE_REQUIRED_APPROVALS must be a whole number (ASCII digits, at most 1000000000000), not '--5'"),
        ("²", "LINEAGE_REQUIRED_APPROVALS must be a whole number (ASCII digits, at most 1000000000000), not '²'"),
        ("1_0", "LINEAGE_REQUIRED_APPROVALS must be a whole number (ASCII digits, at most 1000000000000), not '1_0'"),
        ("9" * 40, "LINEAGE_REQUIRED_APPROVALS must be a whole number (ASCII digits, at most 1000000000000)"),
    ],
)
def test_four_eyes_cannot_be_configured_away(tmp_path: Path, value: str, message: str):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lineage_site.settings",
        "LINEAGE_REQUIRED_APPROVALS": value,
        "LINEAGE_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_a_connection_the_database_dropped_is_replaced_before_the_next_request_uses_it(transactional_db):
    """DB_CONN_HEALTH_CHECKS (on by default): after a database restart, a kept connection is not reused dead."""
    if connection.vendor != "postgresql":
        unavailable("needs PostgreSQL: set DATABASE_URL=postgres://...")
    assert User.objects.count() == 0  # the kept connection, open
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None, host=db["HOST"], port=db["PORT"] or None
    ) as other:
        # What a restart does to every open connection; the application's role may end its own sessions.
        other.execute("SELECT pg_terminate_backend(%s)", [pid])

    close_old_connections()  # what Django does as the next request starts

    assert User.objects.count() == 0
