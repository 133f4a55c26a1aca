"""The MLflow webhook receiver and the /sync/ page."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.log import SystemActor
from audit.models import AuditEvent
from releases import services
from releases.api.hooks import expected_signature
from releases.models import ModelVersion, SyncRequest, SyncState
from tests.integration.conftest import GitRepo
from tests.integration.test_mlflow_sync import log_run, register

pytestmark = pytest.mark.django_db

SECRET = "whsec-test-secret"
CLI = SystemActor("test")


def signed_post(client: Client, body: dict[str, Any], *, secret: str = SECRET, url: str = "/api/hooks/mlflow/") -> Any:
    payload = json.dumps(body)
    delivery, timestamp = str(uuid.uuid4()), str(int(time.time()))
    return client.post(
        url,
        data=payload,
        content_type="application/json",
        headers={
            "X-MLflow-Signature": expected_signature(secret, delivery, timestamp, payload.encode()),
            "X-MLflow-Delivery-Id": delivery,
            "X-MLflow-Timestamp": timestamp,
        },
    )


@pytest.fixture
def webhook_secret(settings: Any) -> str:
    settings.LINEAGE_MLFLOW_WEBHOOK_SECRET = SECRET
    return SECRET


def test_signed_webhook_syncs_the_model_version_it_names(
    webhook_secret: str, mlflow_uri: str, mlflow_client: Any, uid: str, django_capture_on_commit_callbacks: Any
) -> None:
    services.add_mlflow_server(name="mlflow", tracking_uri=mlflow_uri, by=CLI)
    run_id = log_run(mlflow_client, f"hook-{uid}")
    version = register(mlflow_client, f"{uid}-model", run_id)
    event = {
        "entity": "model_version",
        "action": "created",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {"name": f"{uid}-model", "version": str(version), "run_id": run_id, "source": "x", "tags": {}},
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(Client(), event)

    assert response.status_code == 202
    assert response.json()["queued"].startswith("sync of mlflow for model_version.created")
    model_version = ModelVersion.objects.select_related("run").get(registered_model__name=f"{uid}-model")
    assert model_version.run is not None
    assert model_version.run.run_id == run_id
    assert AuditEvent.objects.filter(action="model_version.registered", object_key=f"{uid}-model/{version}").exists()
    [served] = AuditEvent.objects.filter(action="sync.webhooks_served")
    [delivery] = served.new["deliveries"]
    assert (delivery["event"], delivery["model"], delivery["run"]) == ("model_version.created", f"{uid}-model", run_id)
    assert (served.actor, served.object_key) == ("mlflow-sync:mlflow", "mlflow")
    assert not SyncRequest.objects.exists()


def test_webhook_with_a_bad_signature_is_refused_and_recorded(webhook_secret: str) -> None:
    services.add_mlflow_server(name="mlflow", tracking_uri="http://127.0.0.1:9", by=CLI)

    response = signed_post(Client(), {"entity": "model_version", "action": "created", "data": {}}, secret="wrong")

    assert response.status_code == 403
    assert response.json() == {"error": "the signature does not match the configured secret"}
    event = AuditEvent.objects.get(action="webhook.signature_refused")
    assert (event.actor, event.reason) == ("mlflow-webhook", "the signature does not match the configured secret")


def test_unsigned_webhook_is_refused(webhook_secret: str) -> None:
    response = Client().post("/api/hooks/mlflow/", data="{}", content_type="application/json")

    assert response.status_code == 403
    assert "not signed" in response.json()["error"]
    assert AuditEvent.objects.filter(action="webhook.signature_refused").count() == 1


def test_signed_webhook_with_a_body_that_is_not_an_event_is_a_400(webhook_secret: str) -> None:
    services.add_mlflow_server(name="mlflow", tracking_uri="http://127.0.0.1:9", by=CLI)

    response = signed_post(Client(), {"hello": "world"})

    assert response.status_code == 400
    assert "not an MLflow webhook event" in response.json()["error"]


def test_webhook_without_a_configured_secret_is_off(settings: Any) -> None:
    settings.LINEAGE_MLFLOW_WEBHOOK_SECRET = ""
    response = Client().post("/api/hooks/mlflow/", data="{}", content_type="application/json")
    assert response.status_code == 503
    assert response.json() == {"error": "webhooks are off: LINEAGE_MLFLOW_WEBHOOK_SECRET is not set"}
    assert not SyncState.objects.exclude(last_attempt_at=None).exists(), "nothing was synced"


def _page_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("count", [1, 3])
def test_sync_page_lists_every_source_in_constant_queries(
    count: int, oncall: User, git_repo: GitRepo, django_assert_max_num_queries: Any
) -> None:
    for n in range(count):
        services.add_git_repository(name=f"repo{n}", url=str(git_repo.path), by=CLI)
    client = _page_client(oncall)
    client.get("/sync/")  # warm the session and the role cache

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/sync/")

    # session, user, groups, states with their sources, 2 write-back lists (a GET creates no state)
    assert len(queries) == 6
    assert response.status_code == 200
    for n in range(count):
        assert f"repo{n}" in response.content.decode()


def test_sync_page_says_how_many_webhook_deliveries_wait_and_since_when(oncall: User) -> None:
    state = services.add_mlflow_server(name="mlflow", tracking_uri="http://127.0.0.1:9", by=CLI)
    hook = SystemActor("mlflow-webhook:mlflow")
    for n in range(3):
        services.queue_sync_request(state, by=hook, delivery_id=f"d-{n}", event="model_version.created")
    first = SyncRequest.objects.order_by("pk").first()
    assert first is not None

    html = _page_client(oncall).get("/sync/").content.decode()

    since = first.received_at.astimezone(datetime.UTC).isoformat()
    assert f'3 webhook deliveries waiting since <time datetime="{since}"' in html


def test_sync_now_runs_the_sync_and_shows_the_outcome(
    lead: User, git_repo: GitRepo, django_capture_on_commit_callbacks: Any
) -> None:
    git_repo.commit("one")
    state = services.add_git_repository(name="churn", url=str(git_repo.path), by=CLI)
    client = _page_client(lead)

    with django_capture_on_commit_callbacks(execute=True):
        posted = client.post(f"/sync/{state.pk}/now/")
    response = client.get("/sync/")

    state.refresh_from_db()
    assert (posted.status_code, response.status_code) == (302, 200)
    assert state.created_count == 1
    assert "1 created, 0 updated, 0 unchanged" in response.content.decode()
    event = AuditEvent.objects.get(action="sync.requested")
    assert (event.actor, event.object_key) == ("lead", "churn")


def test_sync_now_shows_a_failure_in_plain_words(lead: User, django_capture_on_commit_callbacks: Any) -> None:
    state = services.add_git_repository(name="gone", url="/nonexistent/repo.git", by=CLI)

    client = _page_client(lead)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/sync/{state.pk}/now/")
    response = client.get("/sync/")

    assert response.status_code == 200
    assert "cannot clone /nonexistent/repo.git" in response.content.decode()
    assert SyncState.objects.get(pk=state.pk).failures_in_a_row == 1


def test_sync_now_is_refused_to_an_auditor(auditor: User) -> None:
    state = services.add_git_repository(name="churn", url="/srv/x.git", by=CLI)
    response = _page_client(auditor).post(f"/sync/{state.pk}/now/")
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="sync.requested").exists()


def test_a_signed_delivery_replayed_is_refused_409(webhook_secret: str) -> None:
    services.add_mlflow_server(name="mlflow", tracking_uri="http://127.0.0.1:9", by=CLI)
    payload = json.dumps({"entity": "model_version", "action": "created", "data": {"name": "churn-model"}})
    timestamp = str(int(time.time()))
    headers = {
        "X-MLflow-Signature": expected_signature(SECRET, "delivery-1", timestamp, payload.encode()),
        "X-MLflow-Delivery-Id": "delivery-1",
        "X-MLflow-Timestamp": timestamp,
    }

    first = Client().post("/api/hooks/mlflow/", data=payload, content_type="application/json", headers=headers)
    again = Client().post("/api/hooks/mlflow/", data=payload, content_type="application/json", headers=headers)

    assert first.status_code == 202
    assert again.status_code == 409
    assert again.json() == {"error": "this delivery was already received; a signed delivery is accepted once"}
    assert SyncRequest.objects.get().delivery_id == "delivery-1", "kept once, for a sync to serve"
    event = AuditEvent.objects.get(action="webhook.replay_refused")
    assert event.new["delivery_id"] == "delivery-1"


def test_a_flood_of_bad_signatures_is_one_event_a_minute_carrying_the_count(
    webhook_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_800_000_000.0]  # the minute boundary is chosen by the test, not by when it runs
    monkeypatch.setattr("releases.api.hooks.time.time", lambda: clock[0])
    body = {"entity": "model_version", "action": "created", "data": {}}

    answers = {signed_post(Client(), body, secret="guess").status_code for _ in range(50)}
    assert answers == {403}
    assert AuditEvent.objects.filter(action="webhook.signature_refused").count() == 1

    clock[0] += 60
    assert signed_post(Client(), body, secret="guess").status_code == 403
    events = list(AuditEvent.objects.filter(action="webhook.signature_refused").order_by("seq"))
    assert len(events) == 2
    assert events[1].new["refused_in_its_previous_minute"] == {"minute": "2027-01-15T08:00:00Z", "count": 50}
