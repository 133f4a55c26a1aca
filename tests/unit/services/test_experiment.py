"""MLflow runs through the service: the links they record, and malformed references kept as warnings."""

from __future__ import annotations

from audit.models import AuditEvent
from releases import services
from tests.factories import SYSTEM
from tests.unit.conftest import last_event


def test_run_records_links_and_warns_about_malformed_references(world):
    commit = world.commit("c")
    world.dataset("churn-train:17")
    data = services.RunData(
        run_id="r1",
        name="churn-v42",
        commit_sha=commit.sha[:7],
        feature_view="not a view",
        datasets=[services.DatasetRef("churn-train:17"), services.DatasetRef("garbage")],
    )
    assert services.record_run(world.server, data, by=SYSTEM) == "created"
    run = world.server.runs.get(run_id="r1")
    assert run.commit_id == commit.pk
    assert run.commit_sha == commit.sha
    assert [i.dataset_version.key for i in run.dataset_inputs.all()] == ["churn-train:17"]
    assert run.warnings == [
        "feature view 'not a view' is not of the form <pipeline>_v<N>",
        "dataset version 'garbage' is not registered",
    ]
    assert last_event("run.created").object_key == "mlflow:r1"
    assert services.record_run(world.server, data, by=SYSTEM) == "unchanged"
    assert AuditEvent.objects.filter(action__startswith="run.").count() == 1
