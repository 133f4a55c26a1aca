"""MLflow webhook deliveries kept until a sync serves them: one queued sync for a burst, each delivery named once in
the audit log, and none left behind by a sync that was busy or finished while more arrived."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.cache import cache

from audit.log import SystemActor
from audit.models import AuditEvent
from releases import services
from releases.models import ExperimentRun, ModelVersion, SyncRequest, SyncState
from releases.services.sources import serving_queued_key
from releases.sync import mlflow as mlflow_sync
from releases.sync import sources
from releases.sync.state import leased
from tests.integration.test_mlflow_sync import log_run, register

pytestmark = pytest.mark.django_db

CLI = SystemActor("test")


@pytest.fixture
def state(mlflow_uri: str) -> SyncState:
    return services.add_mlflow_server(name="mlflow", tracking_uri=mlflow_uri, by=CLI)


def deliver(state: SyncState, *, model_name: str = "", run_id: str = "", event: str = "model_version.created") -> str:
    """What the webhook receiver does with an accepted delivery; its id."""
    delivery_id = f"delivery-{uuid.uuid4()}"
    services.queue_sync_request(
        state,
        by=SystemActor("mlflow-webhook:mlflow"),
        delivery_id=delivery_id,
        event=event,
        model_name=model_name,
        run_id=run_id,
    )
    return delivery_id


def served_ids() -> list[str]:
    return [
        delivery["id"]
        for event in AuditEvent.objects.filter(action="sync.webhooks_served").order_by("seq")
        for delivery in event.new["deliveries"]
    ]


def test_a_burst_of_deliveries_queues_one_sync_which_serves_them_all_in_batches_each_version_once(
    state: SyncState, mlflow_client: Any, uid: str, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(mlflow_sync, "SERVED_AT_ONCE", 4)
    made = []
    for model in (f"{uid}-a", f"{uid}-b"):
        for n in range(5):
            run_id = log_run(mlflow_client, f"burst-{uid}", name=f"{model}-{n}")
            made.append((model, register(mlflow_client, model, run_id), run_id))

    with django_capture_on_commit_callbacks() as queued:
        delivered = [deliver(state, model_name=model, run_id=run_id) for model, _, run_id in made]
    assert len(queued) == 1, "one sync queued for the whole burst"
    assert SyncRequest.objects.count() == len(made)

    with django_capture_on_commit_callbacks(execute=True):
        queued[0]()

    assert sorted(served_ids()) == sorted(delivered), "every delivery named once"
    assert AuditEvent.objects.filter(action="sync.webhooks_served").count() == 3, "batches of 4: 4, 4 and 2"
    assert not SyncRequest.objects.exists()
    for model, version, run_id in made:
        stored = ModelVersion.objects.select_related("run").get(registered_model__name=model, version=version)
        assert stored.run is not None
        assert stored.run.run_id == run_id
    keys = [f"{model}/{version}" for model, version, _ in made]
    registered = AuditEvent.objects.filter(action="model_version.registered", object_key__in=keys)
    assert sorted(registered.values_list("object_key", flat=True)) == sorted(keys), "each version recorded once"
    assert ExperimentRun.objects.filter(run_id__in=[run_id for *_, run_id in made]).count() == len(made)
    completed = AuditEvent.objects.get(action="sync.mlflow.completed")
    assert completed.new["deliveries"] == len(made)
    assert completed.new["full"] is False


def test_a_delivery_naming_only_a_model_reads_all_its_versions_and_one_naming_nothing_reads_every_model(
    state: SyncState, mlflow_client: Any, uid: str
) -> None:
    first = log_run(mlflow_client, f"whole-{uid}")
    register(mlflow_client, f"{uid}-a", first)
    register(mlflow_client, f"{uid}-a", log_run(mlflow_client, f"whole-{uid}"))
    register(mlflow_client, f"{uid}-b", log_run(mlflow_client, f"whole-{uid}"))

    deliver(state, model_name=f"{uid}-a", event="model_version_tag.set")
    sources.sync_state(state, queued=True)
    assert ModelVersion.objects.filter(registered_model__name=f"{uid}-a").count() == 2
    assert not ModelVersion.objects.filter(registered_model__name=f"{uid}-b").exists(), "not named, not read"

    deliver(state, event="registered_model.created")
    sources.sync_state(state, queued=True)
    assert ModelVersion.objects.filter(registered_model__name=f"{uid}-b").count() == 1


def test_a_delivery_kept_while_the_source_is_held_is_served_by_the_holder_or_queued_when_it_lets_go(
    state: SyncState, mlflow_client: Any, uid: str, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    early = log_run(mlflow_client, f"held-{uid}")
    register(mlflow_client, f"{uid}-model", early)
    late = log_run(mlflow_client, f"held-{uid}")
    register(mlflow_client, f"{uid}-model", late)

    # The sync queued for a delivery finds another holding the source, and leaves the delivery to it.
    with leased(state, holder="another-sync"):
        with django_capture_on_commit_callbacks() as queued:
            deliver(state, model_name=f"{uid}-model", run_id=early)
        with django_capture_on_commit_callbacks(execute=True):
            assert len(queued) == 1
            queued[0]()
    assert SyncRequest.objects.count() == 1

    # The next sync serves it. One more delivery comes after that sync's last look at the queue, while a sync
    # queued for it is still marked as waiting to start (so the delivery queues none): the holder queues one
    # as it lets go.
    serve = mlflow_sync._Sync._serve_requests

    def then_one_more(self: Any) -> None:
        serve(self)
        assert cache.add(serving_queued_key(state.pk), 1)
        deliver(state, model_name=f"{uid}-model", run_id=late)

    monkeypatch.setattr(mlflow_sync._Sync, "_serve_requests", then_one_more)
    with django_capture_on_commit_callbacks() as queued_after:
        sources.sync_state(state)
    assert ModelVersion.objects.filter(registered_model__name=f"{uid}-model").count() == 2
    assert len(served_ids()) == 1
    assert len(queued_after) == 1, "the late delivery queued a sync once the source was free"

    monkeypatch.setattr(mlflow_sync._Sync, "_serve_requests", serve)
    with django_capture_on_commit_callbacks(execute=True):
        queued_after[0]()
    assert len(served_ids()) == 2
    assert not SyncRequest.objects.exists()
