"""The CLI: each command does its job through the services, and bad input exits 2 with one line."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent, Checkpoint
from releases import lineage
from releases.models import ApiToken, DatasetVersion, Deployment, Endpoint, Release, WebhookSubscription
from releases.models.access import hash_token
from tests.conftest import PASSWORD
from tests.unit.conftest import MEANING, api, gate_refusals, pending_release, refusals


def run(*args: str, stdin: str = "") -> str:
    out = io.StringIO()
    if stdin:
        import sys

        old, sys.stdin = sys.stdin, io.StringIO(stdin)
        try:
            call_command(*args, stdout=out)
        finally:
            sys.stdin = old
    else:
        call_command(*args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as error:
        run(*args)
    assert error.value.returncode == 2
    message = str(error.value)
    assert "\n" not in message
    return message


def test_register_dataset_hashes_a_file(world, tmp_path: Path, lead):
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    out = run("register_dataset", "churn-train", "--version", "17", "--path", str(data), "--as", "lead")
    version = DatasetVersion.objects.by_key("churn-train:17").get()
    assert version.content_hash == "sha256:" + hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert version.size_bytes == 8
    assert version.uri == data.resolve().as_uri()
    assert out.startswith("churn-train:17 registered (sha256:")
    assert AuditEvent.objects.filter(action="dataset_version.registered", actor="lead").exists()
    again = run("register_dataset", "churn-train", "--version", "17", "--path", str(data), "--as", "lead")
    assert "already registered with the same content" in again


def test_register_dataset_bad_input(world, tmp_path: Path, lead):
    data = tmp_path / "train.csv"
    data.write_text("x")
    run("register_dataset", "churn-train", "--version", "17", "--path", str(data), "--as", "lead")
    data.write_text("changed in place")
    assert refused(
        "register_dataset", "churn-train", "--version", "17", "--path", str(data), "--as", "lead"
    ).startswith("churn-train:17 is already registered with sha256:")
    assert refused("register_dataset", "churn-train", "--version", "18", "--as", "lead") == (
        "give --path FILE, or both --uri URI and --hash sha256:HEX"
    )
    assert refused("register_dataset", "churn-train", "--version", "18", "--path", "/no/such", "--as", "lead") == (
        "/no/such is not a readable file"
    )
    assert "content hash 'sha256:xyz' is not valid" in refused(
        "register_dataset", "churn-train", "--version", "18", "--uri", "s3://x", "--hash", "sha256:xyz", "--as", "lead"
    )
    assert refused("register_dataset", "churn-train", "--version", "18", "--uri", "s3://x", "--as", "ghost").startswith(
        "no active user named 'ghost'"
    )


def test_create_and_approve_release_commands(world, ci_account, lead):
    world.dataset("churn-train:17")
    mv = world.model_version("churn-model/42", commit=world.commit("c"), datasets=("churn-train:17",))
    out = run(
        "create_release",
        "churn-v42",
        "--model-version",
        mv.key,
        "--validation-report",
        "s3://r",
        "--submit",
        "--as",
        "ci",
    )
    assert out == "churn-v42 created (pending)\n"
    out = run(
        "approve_release",
        "churn-v42",
        "--as",
        "lead",
        "--meaning",
        "Approved for production",
        "--digest",
        lineage.trace("churn-v42").digest,
        "--password-stdin",
        stdin="correct horse battery staple\n",
    )
    assert out == "churn-v42 signed by Lena Lead (Approved for production); now Approved\n"
    assert Release.objects.get().state == "approved"
    assert AuditEvent.objects.filter(action="release.approved", actor="lead").count() == 1


def test_create_and_approve_release_bad_input(world, ci_account, lead):
    mv = world.model_version("churn-model/42")
    assert refused("create_release", "final-final-v2", "--model-version", mv.key, "--as", "ci").startswith(
        "release name 'final-final-v2' is ambiguous"
    )
    assert refused("create_release", "churn-v42", "--model-version", "churn-model/99", "--as", "ci").startswith(
        "model version 'churn-model/99' is not registered"
    )
    assert (
        refused("approve_release", "churn-v99", "--as", "lead", "--meaning", "Reviewed", "--password-stdin")
        == "no release named 'churn-v99'"
    )
    run("create_release", "churn-v42", "--model-version", mv.key, "--submit", "--as", "ci")
    # Unattended signing must name the chain the signer reviewed.
    assert refused("approve_release", "churn-v42", "--as", "lead", "--meaning", "Reviewed", "--password-stdin") == (
        "with --password-stdin, pass the lineage digest you reviewed with --digest"
    )
    with pytest.raises(CommandError) as error:
        run(
            "approve_release",
            "churn-v42",
            "--as",
            "lead",
            "--meaning",
            "Reviewed",
            "--digest",
            lineage.trace("churn-v42").digest,
            "--password-stdin",
            stdin="x\n",
        )
    assert error.value.returncode == 2
    assert "incomplete chain" in str(error.value)


def test_deployment_rollback_and_quarantine_commands(world, ci_account, lead, oncall, release_manager):
    endpoint = world.endpoint()
    world.deploy(endpoint, world.full_release(41, by=ci_account, approver=lead), by=release_manager, hours_ago=3)
    world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    out = run("record_deployment", "churn-scoring", "churn-v42", "--as", "relman")
    assert out.startswith("churn-v42 live on churn-scoring since ")
    out = run("quarantine_dataset", "churn-train:18", "--reason", "label mapping changed", "--as", "lead")
    assert "releases: churn-v42" in out
    assert "live on: churn-scoring" in out
    out = run("rollback", "churn-scoring", "--reason", "AUC alert", "--as", "oncall")
    assert out == "churn-scoring rolled back to churn-v41\n"
    latest = Deployment.objects.order_by("-deployed_at", "-id").first()
    assert (latest.kind, latest.source, latest.actor) == ("rollback", "cli", "oncall")


def test_record_deployment_command_backfills_history_and_refuses_backdating(world, ci_account, lead, release_manager):
    world.endpoint()
    world.full_release(42, by=ci_account, approver=lead)
    then = "2020-01-01T09:30:00+00:00"

    assert refused("record_deployment", "churn-scoring", "churn-v42", "--at", then, "--as", "relman").startswith(
        "churn-v42 was created at "
    )
    assert refused("record_deployment", "churn-scoring", "churn-v42", "--at", "yesterday", "--as", "relman") == (
        "--at 'yesterday' is not a time with a UTC offset, e.g. 2026-11-20T14:05:00+00:00"
    )
    assert not Deployment.objects.exists()

    out = run(
        "record_deployment",
        "churn-scoring",
        "churn-v42",
        "--at",
        then,
        "--backfill",
        "--reason",
        "old tool",
        "--as",
        "relman",
    )

    assert out == "churn-v42 live on churn-scoring since 2020-01-01 09:30:00 UTC\n"
    event = AuditEvent.objects.get(action="deployment.backfilled")
    assert (event.actor, event.reason, event.new["source"]) == ("relman", "old tool", "cli")


def test_lift_quarantine_command(world, ci_account, lead):
    world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    run("quarantine_dataset", "churn-train:18", "--reason", "label mapping changed", "--as", "lead")

    out = run("lift_quarantine", "churn-train:18", "--reason", "partner restored the mapping", "--as", "lead")

    assert out == "churn-train:18 quarantine lifted\n  to sign again: churn-v42\n"
    version = DatasetVersion.objects.by_key("churn-train:18").get()
    assert (version.status, version.status_reason) == ("active", "partner restored the mapping")
    event = AuditEvent.objects.get(action="dataset_version.quarantine_lifted")
    assert (event.actor, event.object_key, event.reason) == ("lead", "churn-train:18", "partner restored the mapping")


def test_lift_quarantine_command_bad_input(world, lead, oncall):
    assert refused("lift_quarantine", "garbage", "--reason", "x", "--as", "lead").startswith(
        "no dataset version 'garbage' (expected NAME:VERSION"
    )
    assert refused("lift_quarantine", "churn-train:18", "--reason", "x", "--as", "nobody") == (
        "no active user named 'nobody'"
    )
    world.dataset("churn-train:18")
    assert refused("lift_quarantine", "churn-train:18", "--reason", "x", "--as", "lead") == (
        "churn-train:18 is not quarantined (it is active)"
    )
    run("quarantine_dataset", "churn-train:18", "--reason", "bad labels", "--as", "lead")
    assert refused("lift_quarantine", "churn-train:18", "--reason", " ", "--as", "lead") == (
        "a reason is required to lift a quarantine"
    )
    assert refused("lift_quarantine", "churn-train:18", "--reason", "fine", "--as", "oncall") == (
        "oncall may not lift a quarantine: it needs the role ml-leads"
    )
    assert DatasetVersion.objects.by_key("churn-train:18").get().is_quarantined
    refusals = AuditEvent.objects.filter(action="dataset_version.quarantine_lift_refused").order_by("seq")
    assert [(e.actor, e.new["rule"]) for e in refusals] == [
        ("lead", "not_quarantined"),
        ("lead", "invalid"),
        ("oncall", "role"),
    ]


def test_deployment_rollback_and_quarantine_bad_input(world, ci_account, lead, oncall, release_manager):
    endpoint = world.endpoint()
    draft = world.release("churn-v42", world.model_version("churn-model/42"), by=ci_account)
    assert refused("record_deployment", "nowhere", "churn-v42", "--as", "relman") == "no endpoint named 'nowhere'"
    assert refused("record_deployment", "churn-scoring", "churn-v1", "--as", "relman") == "no release named 'churn-v1'"
    assert refused("record_deployment", "churn-scoring", draft.name, "--as", "relman").startswith(
        "churn-v42 is draft, not approved"
    )
    assert refused("rollback", "churn-scoring", "--reason", "x", "--as", "oncall").startswith(
        "churn-scoring has no rollback target"
    )
    assert refused("rollback", "nowhere", "--reason", "x", "--as", "oncall") == "no endpoint named 'nowhere'"
    assert refused("quarantine_dataset", "garbage", "--reason", "x", "--as", "lead").startswith(
        "no dataset version 'garbage'"
    )
    world.dataset("churn-train:18")
    assert refused("quarantine_dataset", "churn-train:18", "--reason", "x", "--as", "oncall").startswith(
        "oncall may not quarantine a dataset version"
    )
    assert not endpoint.deployments.exists()


# Signing ---------------------------------------------------------------------------------------------


def approve_command(name: str, user: str, password: str) -> str:
    out, old = io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(password + "\n")
    try:
        digest = lineage.trace(name).digest
        call_command(
            "approve_release",
            name,
            "--as",
            user,
            "--meaning",
            MEANING,
            "--digest",
            digest,
            "--password-stdin",
            stdout=out,
        )
    finally:
        sys.stdin = old
    return out.getvalue()


@pytest.mark.parametrize(
    ("creator", "user", "password", "rule"),
    [
        pytest.param("relman", "lead", "wrong", "wrong_password", id="password"),
        pytest.param("lead", "lead", PASSWORD, "four_eyes", id="self"),
        pytest.param("relman", "oncall", PASSWORD, "not_ml_lead", id="not-lead"),
    ],
)
def test_command_refusal_exits_2_and_is_audited(world, release_manager, lead, oncall, creator, user, password, rule):
    pending_release(world, User.objects.get(username=creator))

    with pytest.raises(CommandError) as refused:
        approve_command("churn-v42", user, password)

    assert refused.value.returncode == 2
    assert "\n" not in str(refused.value)
    assert [e.new["rule"] for e in refusals("churn-v42")] == [rule]


# Promotion gate and rollback -------------------------------------------------------------------------


def test_command_gate_exits_2_and_is_audited(world, release_manager):
    pending_release(world, release_manager)
    world.endpoint("churn-scoring")

    with pytest.raises(CommandError) as refused:
        call_command("record_deployment", "churn-scoring", "churn-v42", "--as", "relman")

    assert refused.value.returncode == 2
    assert "not approved" in str(refused.value)
    assert not Deployment.objects.exists()
    assert len(gate_refusals("churn-scoring")) == 1


def test_command_rollback_without_target_exits_2(world, release_manager, lead, oncall):
    release = world.full_release(42, by=release_manager, approver=lead)
    world.deploy(world.endpoint(), release, by=release_manager)

    with pytest.raises(CommandError) as refused:
        call_command("rollback", "churn-scoring", "--reason", "INC-1", "--as", "oncall")

    assert refused.value.returncode == 2
    assert "has no rollback target" in str(refused.value)


# Endpoints -------------------------------------------------------------------------------------------

DECLARE_CHURN_SCORING = (
    "add_endpoint",
    "churn-scoring",
    "--environment",
    "production",
    "--model",
    "churn-model",
    "--alias",
    "production",
)


def test_add_endpoint_command_creates_then_finds_the_endpoint(world, release_manager):
    world.model_version("churn-model/42")

    out = run(*DECLARE_CHURN_SCORING, "--description", "Retention scores", "--as", "relman")
    again = run(*DECLARE_CHURN_SCORING, "--as", "relman")

    assert out == "churn-scoring created (production, follows churn-model@production)\n"
    assert again == (
        "churn-scoring already declared with these values, unchanged (production, follows churn-model@production)\n"
    )
    endpoint = Endpoint.objects.select_related("registered_model").get()
    assert (endpoint.environment, endpoint.registered_model.name, endpoint.mlflow_alias, endpoint.description) == (
        "production",
        "churn-model",
        "production",
        "Retention scores",
    )
    [event] = AuditEvent.objects.filter(action="endpoint.created")
    assert (event.actor, event.object_key, event.new["mlflow_alias"]) == ("relman", "churn-scoring", "production")
    assert run("add_endpoint", "churn-shadow", "--environment", "staging", "--as", "relman") == (
        "churn-shadow created (staging, follows no MLflow alias)\n"
    )


@pytest.mark.parametrize(
    ("args", "message", "rule"),
    [
        pytest.param(
            ("--environment", "prod"),
            "environment must be one of production, staging, not 'prod'",
            "unknown_environment",
            id="environment",
        ),
        pytest.param(
            ("--model", "churn"),
            "registered model 'churn' is not known; sync the MLflow server it is registered on first",
            "unknown_model",
            id="unknown-model",
        ),
        pytest.param(
            ("--alias", "latest"),
            "MLflow would refuse the alias: 'latest' alias name (case insensitive) is reserved.",
            "mlflow_alias",
            id="alias",
        ),
        pytest.param(
            ("--alias", "champion", "--environment", "staging"),
            "endpoint churn-scoring already exists with environment 'production' (not 'staging'), "
            "MLflow alias 'production' (not 'champion'); declare a new endpoint name",
            "immutable_endpoint",
            id="conflict",
        ),
    ],
)
def test_add_endpoint_command_bad_values_exit_2_and_are_audited_once(world, release_manager, args, message, rule):
    world.model_version("churn-model/42")
    run(*DECLARE_CHURN_SCORING, "--as", "relman")
    other = "churn-scoring" if rule == "immutable_endpoint" else "churn-canary"

    # The later of two equal options wins (argparse), so each case changes one value of a good declaration.
    assert refused(*DECLARE_CHURN_SCORING[:1], other, *DECLARE_CHURN_SCORING[2:], *args, "--as", "relman") == message

    assert list(Endpoint.objects.values_list("name", "environment", "mlflow_alias")) == [
        ("churn-scoring", "production", "production")
    ]
    [event] = AuditEvent.objects.filter(action="endpoint.creation_refused")
    assert (event.actor, event.object_key, event.new["rule"], event.reason) == ("relman", other, rule, message)


def test_add_endpoint_command_refuses_a_person_without_the_role_and_an_unknown_user(world, oncall):
    assert refused(*DECLARE_CHURN_SCORING, "--as", "oncall") == (
        "oncall may not declare an endpoint: it needs the role release-managers or ml-leads"
    )
    assert refused(*DECLARE_CHURN_SCORING, "--as", "ghost") == "no active user named 'ghost'"
    assert not Endpoint.objects.exists()
    [event] = AuditEvent.objects.filter(action="endpoint.creation_refused")
    assert (event.actor, event.new["rule"]) == ("oncall", "role")


def test_add_endpoint_command_with_a_name_longer_than_any_column_exits_2_and_is_audited(world, release_manager):
    name = "churn-" + "x" * 294

    assert refused("add_endpoint", name, "--environment", "staging", "--as", "relman") == (
        "an endpoint name has at most 100 characters, not 300"
    )

    assert not Endpoint.objects.exists()
    [event] = AuditEvent.objects.filter(action="endpoint.creation_refused")
    # Cut to the audit column (255 characters), and marked so it never reads as a real endpoint's name.
    assert event.object_key == name[:254] + "…"


# API tokens and roles --------------------------------------------------------------------------------


def test_create_api_token_command_prints_the_token_once(ci_account):
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_token", "ci", "--scope", "read,deployments:write", stdout=out, stderr=err)

    raw = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert token.token_hash == hash_token(raw)
    assert token.scopes == ["deployments:write", "read"]
    assert "shown only once" in err.getvalue()
    assert api(raw).get("/api/endpoints/").status_code == 200


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(("nobody", "--scope", "read"), "no user named 'nobody'", id="user"),
        pytest.param(("ci", "--scope", "admin"), "scope admin is not valid", id="scope"),
        pytest.param(
            ("ci", "--scope", "read", "--expires-in-days", "0"), "must expire in 1 to 365 days, not 0", id="expiry"
        ),
    ],
)
def test_create_api_token_command_bad_input_exits_2(ci_account, args, words):
    with pytest.raises(CommandError) as refused:
        call_command("create_api_token", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert refused.value.returncode == 2
    assert words in str(refused.value)
    assert not ApiToken.objects.exists()


def test_add_webhook_command_adds_a_webhook_and_says_which_secret_it_reads(db, monkeypatch):
    monkeypatch.setenv("LINEAGE_WEBHOOK_SECRET_PAGER", "not printed")
    out = run(
        "add_webhook",
        "pager",
        "https://hooks.example.com/pager",
        "--event",
        "deployment.rolled_back,sync.failing",
        "--event",
        "audit.verification_failed",
        "--secret-env",
        "LINEAGE_WEBHOOK_SECRET_PAGER",
    )
    assert out.strip() == (
        "webhook pager added: https://hooks.example.com/pager, json, deployment.rolled_back, sync.failing, "
        "audit.verification_failed; signed with LINEAGE_WEBHOOK_SECRET_PAGER, set in the environment"
    )
    webhook = WebhookSubscription.objects.get()
    assert (webhook.events, webhook.secret_env, webhook.active) == (
        ["deployment.rolled_back", "sync.failing", "audit.verification_failed"],
        "LINEAGE_WEBHOOK_SECRET_PAGER",
        True,
    )
    event = AuditEvent.objects.get(action="webhook_subscription.added")
    assert (event.actor, event.object_key) == ("manage.py add_webhook", "pager")
    assert "not printed" not in out
    again = run("add_webhook", "chat", "https://hooks.slack.com/services/T/B/X", "--format", "slack")
    assert again.strip().endswith("slack, all events; unsigned")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("file:///etc/passwd", "only http:// and https:// addresses are accepted"),
        ("ftp://files.example.com/drop", "only http:// and https:// addresses are accepted"),
        ("javascript:alert(1)", "only http:// and https:// addresses are accepted"),
        ("https://bob:hunter2@hooks.example.com/x", "an address cannot carry a user name or password"),
    ],
)
def test_add_webhook_command_refuses_an_address_that_is_not_http_in_one_line(db, url, words):
    message = refused("add_webhook", "pager", url, "--secret-env", "LINEAGE_WEBHOOK_SECRET_PAGER")
    assert message.startswith("the webhook URL ")
    assert words in message
    assert "hunter2" not in message
    assert not WebhookSubscription.objects.exists()


def test_add_webhook_command_refuses_an_unknown_event_in_one_line(db):
    message = refused(
        "add_webhook", "pager", "https://h.example.com/", "--event", "release.deployed", "--format", "slack"
    )
    assert message.startswith("a webhook's events: unknown events 'release.deployed'; the events are ")


def test_grant_command_adds_a_role_and_audits_it(auditor):
    out = io.StringIO()
    call_command("grant", "auditor", "on-call", stdout=out)

    assert "auditor now has the role on-call" in out.getvalue()
    assert set(User.objects.get(pk=auditor.pk).groups.values_list("name", flat=True)) == {"auditors", "on-call"}
    event = AuditEvent.objects.get(action="role.granted", new__role="on-call")
    assert (event.object_key, event.actor) == ("auditor", "manage.py grant")
    assert (event.old, event.new) == ({"roles": ["auditors"]}, {"role": "on-call", "roles": ["auditors", "on-call"]})

    call_command("grant", "auditor", "on-call", "--revoke", stdout=out)
    assert list(User.objects.get(pk=auditor.pk).groups.values_list("name", flat=True)) == ["auditors"]
    revoked = AuditEvent.objects.get(action="role.revoked")
    assert (revoked.actor, revoked.old, revoked.new) == (
        "manage.py grant",
        {"roles": ["auditors", "on-call"]},
        {"role": "on-call", "roles": ["auditors"]},
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(("nobody", "ml-leads"), "no user named 'nobody'", id="user"),
        pytest.param(("auditor", "admins"), "unknown role 'admins'", id="role"),
    ],
)
def test_grant_command_bad_input_exits_2(auditor, args, words):
    with pytest.raises(CommandError) as refused:
        call_command("grant", *args, stdout=io.StringIO())
    assert refused.value.returncode == 2
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not AuditEvent.objects.filter(action="role.granted", actor="manage.py grant").exists()


# Evidence export -------------------------------------------------------------------------------------


def _nothing_recorded() -> bool:
    return not AuditEvent.objects.filter(action="evidence.exported").exists() and not Checkpoint.objects.exists()


@pytest.fixture
def exportable(world, ci_account, lead, auditor) -> None:
    world.full_release(42, by=ci_account, approver=lead)
    assert _nothing_recorded()


def test_export_evidence_refuses_an_unusable_out_before_recording_anything(exportable, tmp_path: Path):
    existing = tmp_path / "old.zip"
    existing.write_bytes(b"keep me")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    (tmp_path / "dir.zip").mkdir()

    def export(out: Path) -> str:
        return refused("export_evidence", "churn-v42", "--out", str(out), "--as", "auditor")

    assert export(tmp_path / "missing" / "b.zip") == f"{tmp_path / 'missing'} is not a directory"
    assert (
        export(tmp_path / "missing") == f"{tmp_path / 'missing'} is not a directory (give a directory or a .zip path)"
    )
    assert export(a_file / "b.zip") == f"{a_file} is not a directory"
    assert export(tmp_path / "dir.zip") == f"{tmp_path / 'dir.zip'} is a directory, not a file"
    assert export(existing) == f"{existing} already exists; use --force to replace it"
    assert existing.read_bytes() == b"keep me"
    assert _nothing_recorded()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.zip", "notes.txt", "old.zip"]


def test_export_evidence_to_an_unwritable_directory_is_one_line_and_records_nothing(exportable):
    read_only = Path("/sys")
    if os.access(read_only, os.W_OK) and not read_only.is_mount():
        pytest.skip("/sys is writable here")
    message = refused("export_evidence", "churn-v42", "--out", str(read_only), "--as", "auditor")
    assert message.startswith("cannot write to /sys: ")
    assert _nothing_recorded()


def test_export_evidence_replaces_an_existing_bundle_only_with_force(exportable, tmp_path: Path):
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(b"old")

    out = run("export_evidence", "churn-v42", "--out", str(bundle), "--force", "--as", "auditor")

    assert out.startswith(f"{bundle} (")
    assert zipfile.ZipFile(bundle).read("verify.py")
    assert AuditEvent.objects.filter(action="evidence.exported").count() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["bundle.zip"]


def test_add_mlflow_server_names_where_the_credential_is_read_and_shows_only_that(db):
    out = run("add_mlflow_server", "prod", "https://mlflow.example.com", "--token-env", "MLFLOW_PROD_TOKEN")
    assert "credential: token from $MLFLOW_PROD_TOKEN;" in out

    again = run(
        "add_mlflow_server",
        "prod",
        "https://mlflow.example.com",
        "--username",
        "svc-lineage",
        "--password-file",
        "/run/secrets/mlflow",
    )
    assert "credential: user svc-lineage, password from file /run/secrets/mlflow;" in again
    unchanged = run("add_mlflow_server", "prod", "https://mlflow.example.com")
    assert "credential: user svc-lineage, password from file /run/secrets/mlflow;" in unchanged
    removed = run("add_mlflow_server", "prod", "https://mlflow.example.com", "--no-credential")
    assert "credential: none;" in removed
    assert [
        e.new["credential"]
        for e in AuditEvent.objects.filter(action="tracking_server.credentials_changed").order_by("seq")
    ] == [
        "user svc-lineage, password from file /run/secrets/mlflow",
        "",
    ]


def test_add_git_repository_takes_an_ssh_key_with_its_known_hosts(db):
    out = run(
        "add_git_repository",
        "churn",
        "git@git.example.com:ml/churn.git",
        "--ssh-key-file",
        "/keys/churn",
        "--known-hosts-file",
        "/keys/known_hosts",
    )
    assert "credential: SSH key file /keys/churn, known hosts from /keys/known_hosts;" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("add_mlflow_server", "prod", "https://m.example.com", "--token-env", "1X"),
            "the environment variable name for token_env '1X' is not valid",
        ),
        (
            ("add_mlflow_server", "prod", "https://m.example.com", "--password-env", "P"),
            "a password needs the username it belongs to (--username)",
        ),
        (
            ("add_mlflow_server", "prod", "https://m.example.com", "--no-credential", "--token-env", "T"),
            "--no-credential removes the credential: give it alone",
        ),
        (
            ("add_git_repository", "churn", "https://g.example.com/c.git", "--token-file", "token.txt"),
            "the token file 'token.txt' is not valid: A credential file is named by its absolute path",
        ),
    ],
)
def test_a_bad_credential_option_exits_2_with_one_line(db, args, message):
    assert message in refused(*args)
