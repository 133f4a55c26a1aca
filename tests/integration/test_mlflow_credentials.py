"""MLflow servers that require a credential: a real `mlflow server --app-name basic-auth` on loopback.

Each source names where its credential is read (an environment variable, a file); the secret is read
at sync time and shown nowhere. A refused or missing credential is one line on /sync/ naming the source.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.log import SystemActor
from audit.models import AuditEvent
from releases import services
from releases.models import Endpoint, ExperimentRun, Release, SyncState, TrackingServer, WriteBack
from releases.models.credentials import MlflowCredentials
from releases.sync import sources
from releases.sync.mlflow import client_for
from releases.sync.state import SourceUnavailable
from tests.integration.conftest import AuthMlflow

pytestmark = pytest.mark.django_db

CLI = SystemActor("test")


def add(name: str, server: AuthMlflow, **credentials: str) -> SyncState:
    return services.add_mlflow_server(
        name=name, tracking_uri=server.uri, credentials=MlflowCredentials(**credentials), by=CLI
    )


def sync_page(user: User) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/sync/")
    assert response.status_code == 200
    return response.content.decode()


def shown_error(page: str, name: str) -> str:
    """The problem line /sync/ shows in the row of the source called ``name``."""
    row = page.split(f"<strong>{name}</strong>", 1)[1].split("</tr>", 1)[0]
    return html.unescape(row.split('role="alert">⚠ ', 1)[1].split("</div>", 1)[0])


def test_the_right_password_from_a_variable_syncs_and_the_page_names_only_the_variable(
    auth_mlflow: AuthMlflow, monkeypatch: pytest.MonkeyPatch, oncall: User, uid: str
) -> None:
    run_id = auth_mlflow.rest("admin").log_run(f"basic-{uid}")
    monkeypatch.setenv("MLFLOW_PROD_PASSWORD", auth_mlflow.users["admin"])
    state = add("prod", auth_mlflow, username="admin", password_env="MLFLOW_PROD_PASSWORD")

    sources.sync_state(state)

    assert ExperimentRun.objects.filter(server__name="prod", run_id=run_id).exists()
    state.refresh_from_db()
    assert (state.last_error, state.failures_in_a_row) == ("", 0)
    page = sync_page(oncall)
    assert "credential: user admin, password from $MLFLOW_PROD_PASSWORD" in page
    assert auth_mlflow.users["admin"] not in page
    event = AuditEvent.objects.get(action="tracking_server.added", object_key="prod")
    assert event.new == {
        "tracking_uri": auth_mlflow.uri,
        "credential": "user admin, password from $MLFLOW_PROD_PASSWORD",
    }


def test_a_token_from_a_file_syncs(auth_mlflow: AuthMlflow, tmp_path: Path, uid: str) -> None:
    run_id = auth_mlflow.rest("admin").log_run(f"token-{uid}")
    token_file = tmp_path / "mlflow-token"
    token_file.write_text(auth_mlflow.tokens["admin"] + "\n")  # as `echo` writes it
    state = add("prod", auth_mlflow, token_file=str(token_file))

    result = sources.sync_state(state)

    assert result.created >= 1
    assert ExperimentRun.objects.filter(server__name="prod", run_id=run_id).exists()


def test_a_wrong_password_is_one_line_on_the_sync_page_naming_the_source(
    auth_mlflow: AuthMlflow, monkeypatch: pytest.MonkeyPatch, oncall: User
) -> None:
    monkeypatch.setenv("MLFLOW_PROD_PASSWORD", "not-the-password")
    state = add("prod", auth_mlflow, username="admin", password_env="MLFLOW_PROD_PASSWORD")

    with pytest.raises(SourceUnavailable):
        sources.sync_state(state)

    expected = (
        "authentication failed for MLflow server prod: check its credential "
        "(user admin, password from $MLFLOW_PROD_PASSWORD)"
    )
    state.refresh_from_db()
    assert state.last_error == expected
    page = sync_page(oncall)
    assert shown_error(page, "prod") == expected
    assert "not-the-password" not in page
    assert "Traceback" not in page


def test_a_server_that_asks_for_a_credential_none_is_set_for_says_so(auth_mlflow: AuthMlflow, oncall: User) -> None:
    state = add("bare", auth_mlflow)

    with pytest.raises(SourceUnavailable):
        sources.sync_state(state)

    assert shown_error(sync_page(oncall), "bare") == (
        "authentication failed for MLflow server bare: check its credential (none is set)"
    )


def test_a_variable_that_is_not_set_or_a_file_that_is_missing_is_one_line_before_any_request(
    auth_mlflow: AuthMlflow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, oncall: User
) -> None:
    monkeypatch.delenv("MLFLOW_NOWHERE_TOKEN", raising=False)
    unset = add("unset", auth_mlflow, token_env="MLFLOW_NOWHERE_TOKEN")
    missing = add("missing", auth_mlflow, username="bob", password_file=str(tmp_path / "absent"))
    empty_file = tmp_path / "empty"
    empty_file.write_text("\n")
    empty = add("empty", auth_mlflow, token_file=str(empty_file))

    for state in (unset, missing, empty):
        with pytest.raises(SourceUnavailable):
            sources.sync_state(state)

    page = sync_page(oncall)
    assert shown_error(page, "unset") == (
        "MLflow server unset: its token comes from $MLFLOW_NOWHERE_TOKEN, which is not set on this worker"
    )
    assert (
        shown_error(page, "missing") == f"MLflow server missing: its password file {tmp_path / 'absent'} does not exist"
    )
    assert shown_error(page, "empty") == f"MLflow server empty: its token from file {empty_file} is empty"


def test_two_servers_with_different_credentials_sync_side_by_side_in_one_process(
    auth_mlflow: AuthMlflow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, uid: str
) -> None:
    """The same MLflow server registered twice: as the administrator (a password) and as bob (a token), who
    sees only his own experiment. Each source sees what its own user may, however the calls interleave."""
    admins_run = auth_mlflow.rest("admin").log_run(f"admins-{uid}")
    bobs_run = auth_mlflow.rest("bob").log_run(f"bobs-{uid}")
    monkeypatch.setenv("MLFLOW_ADMIN_PASSWORD", auth_mlflow.users["admin"])
    bob_token = tmp_path / "bob-token"
    bob_token.write_text(auth_mlflow.tokens["bob"])
    bob_token.chmod(0o600)
    as_admin = add("as-admin", auth_mlflow, username="admin", password_env="MLFLOW_ADMIN_PASSWORD")
    as_bob = add("as-bob", auth_mlflow, token_file=str(bob_token))

    # The clients of both sources at once, in threads of this process: no credential leaks into the other.
    servers = {"as-admin": as_admin.server, "as-bob": as_bob.server}
    seen: dict[str, set[bool]] = {"as-admin": set(), "as-bob": set()}

    def look(name: str) -> None:
        server = servers[name]
        assert server is not None
        client = client_for(server)
        for _ in range(10):
            names = {e.name for e in client.search_experiments(max_results=1000)}
            seen[name].add(f"admins-{uid}" in names)
            assert f"bobs-{uid}" in names

    threads = [threading.Thread(target=look, args=(name,)) for name in ("as-admin", "as-bob", "as-admin", "as-bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"as-admin": {True}, "as-bob": {False}}

    # And the syncs themselves, one after the other in the same worker.
    sources.sync_state(as_bob)
    sources.sync_state(as_admin)
    sources.sync_state(as_bob)

    by_server = set(
        ExperimentRun.objects.filter(run_id__in=[admins_run, bobs_run]).values_list("server__name", "run_id")
    )
    assert by_server == {("as-admin", admins_run), ("as-admin", bobs_run), ("as-bob", bobs_run)}


def test_write_backs_present_the_servers_credential_and_a_refusal_is_one_line(
    auth_mlflow: AuthMlflow,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    uid: str,
    release_manager: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    admin = auth_mlflow.rest("admin")
    model = f"{uid}-model"
    admin.call("POST", "registered-models/create", name=model)
    numbers = []
    for n in (1, 2):
        run_id = admin.log_run(f"wb-{uid}")
        version = admin.call("POST", "model-versions/create", name=model, source=f"runs:/{run_id}/model", run_id=run_id)
        numbers.append(version["model_version"]["version"])
        admin.call(
            "POST", "model-versions/set-tag", name=model, version=numbers[-1], key="release", value=f"{uid}-v{n}"
        )
    monkeypatch.setenv("MLFLOW_PROD_TOKEN", auth_mlflow.tokens["admin"])
    state = add("prod", auth_mlflow, token_env="MLFLOW_PROD_TOKEN")
    sources.sync_state(state)
    endpoint = services.create_endpoint(
        name=f"{uid}-scoring", environment="staging", registered_model=model, mlflow_alias="staging", by=CLI
    )

    with django_capture_on_commit_callbacks(execute=True):
        services.record_deployment(endpoint, Release.objects.get(name=f"{uid}-v1"), by=release_manager, source="api")

    write_back = WriteBack.objects.get(kind="set-alias")
    assert (write_back.status, write_back.last_error) == ("done", "")
    alias = admin.call("GET", "registered-models/alias", name=model, alias="staging")
    assert alias["model_version"]["version"] == numbers[0]

    # bob has no permission on the model: MLflow answers 403, kept on the write-back in one line.
    server = state.server
    assert server is not None
    monkeypatch.setenv("MLFLOW_BOB_TOKEN", auth_mlflow.tokens["bob"])
    services.set_mlflow_credentials(server, credentials=MlflowCredentials(token_env="MLFLOW_BOB_TOKEN"), by=CLI)
    with django_capture_on_commit_callbacks(execute=True):
        services.record_deployment(
            Endpoint.objects.get(pk=endpoint.pk),
            Release.objects.get(name=f"{uid}-v2"),
            by=release_manager,
            source="api",
        )

    failed = WriteBack.objects.filter(status="failed").get()
    assert failed.last_error == (
        "authentication failed for MLflow server prod: check its credential (token from $MLFLOW_BOB_TOKEN): "
        "MLflow answered 403, permission denied"
    )
    changed = AuditEvent.objects.get(action="tracking_server.credentials_changed", object_key="prod")
    assert (changed.old, changed.new) == (
        {"credential": "token from $MLFLOW_PROD_TOKEN"},
        {"credential": "token from $MLFLOW_BOB_TOKEN"},
    )
    assert TrackingServer.objects.filter(token_env="MLFLOW_BOB_TOKEN").count() == 1
