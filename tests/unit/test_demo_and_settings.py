"""The two-command setup: the demo world builds (twice), and production settings pass check --deploy."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from audit.log import verify_chain
from releases import lineage
from releases.models import Deployment, Release

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_demo_builder_tells_the_story_and_runs_twice(tmp_path: Path, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    out = io.StringIO()
    call_command("build_demo", "--root", str(tmp_path), stdout=out)
    assert "Password for all: lineage-demo" in out.getvalue()
    counts = (Release.objects.count(), Deployment.objects.count())
    call_command("build_demo", "--root", str(tmp_path), stdout=io.StringIO())
    assert (Release.objects.count(), Deployment.objects.count()) == counts

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


def test_production_settings_pass_check_deploy(tmp_path: Path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
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
    env = {**os.environ, "DEBUG": "0", "ALLOWED_HOSTS": "x", "LINEAGE_VAR_DIR": str(tmp_path)}
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_a_malformed_setting_stops_the_start_up(tmp_path: Path):
    env = {**os.environ, "DEBUG": "maybe", "LINEAGE_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DEBUG must be a boolean (1/0, true/false), not 'maybe'" in result.stderr
