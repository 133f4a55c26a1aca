"""Model versions through the service: they belong to the MLflow server they were synced from, and their run,
once linked, never changes."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from releases import services
from releases.errors import Conflict
from releases.models import ExperimentRun, ModelVersion
from tests.factories import SYSTEM, World


def _run(world: World, server, run_id: str) -> ExperimentRun:
    services.record_run(
        server, services.RunData(run_id=run_id, experiment_id="1", name="r", status="FINISHED"), by=SYSTEM
    )
    return ExperimentRun.objects.get(server=server, run_id=run_id)


def _version(name: str = "churn-model", number: int = 41, run_id: str = "a" * 32, **kw) -> services.ModelVersionData:
    return services.ModelVersionData(
        name=name, version=number, source_run_id=run_id, artifact_uri=f"runs:/{run_id}", **kw
    )


@pytest.fixture
def mirror(world: World):
    """A second MLflow server that knows the same run ids and model names (a copy, or another team's server)."""
    return services.add_mlflow_server(name="mirror", tracking_uri="http://127.0.0.1:5001", by=SYSTEM).server


def test_another_servers_model_of_the_same_name_is_left_untouched_and_reported_once(world, mirror):
    ours = _run(world, world.server, "a" * 32)
    _run(world, mirror, "a" * 32)
    services.register_model_version(world.server, _version(), by=SYSTEM)

    for _ in range(2):  # two syncs of the mirror
        outcomes = services.register_model_versions(
            mirror, [_version(aliases=("champion",)), _version(number=44)], by=SYSTEM
        )
        assert all(isinstance(o, Conflict) and o.rule == "other_source" for o in outcomes)
    with pytest.raises(Conflict, match="belongs to the MLflow server mlflow; mirror reports"):
        services.register_model_version(mirror, _version(aliases=("champion",)), by=SYSTEM)

    version = ModelVersion.objects.get(registered_model__name="churn-model", version=41)
    assert (version.run_id, version.aliases) == (ours.pk, [])
    assert not ModelVersion.objects.filter(version=44).exists()
    [event] = AuditEvent.objects.filter(action="model_version.source_conflict")
    assert (event.object_key, event.new) == ("churn-model", {"owner": "mlflow", "reported_by": "mirror"})
    assert not AuditEvent.objects.filter(action__in=["model_version.updated", "model_version.registration_refused"])


def test_a_versions_run_is_never_repointed(world, mirror):
    # A version recorded without a server (an import): it takes the first run of that id it finds.
    first = _run(world, world.server, "b" * 32)
    services.register_model_version(None, _version(run_id="b" * 32), by=SYSTEM)
    _run(world, mirror, "b" * 32)

    with pytest.raises(Conflict, match="a version's run never changes"):
        services.register_model_version(mirror, _version(run_id="b" * 32, aliases=("champion",)), by=SYSTEM)

    version = ModelVersion.objects.get(version=41)
    assert (version.run_id, version.aliases) == (first.pk, [])
    event = AuditEvent.objects.get(action="model_version.registration_refused")
    assert event.new["rule"] == "run_repointed"


def test_the_update_event_names_every_changed_field(world):
    services.register_model_version(world.server, _version(run_id="c" * 32), by=SYSTEM)  # its run is not synced yet
    run = _run(world, world.server, "c" * 32)

    services.register_model_version(world.server, _version(run_id="c" * 32, aliases=("champion",)), by=SYSTEM)

    assert ModelVersion.objects.get(version=41).run_id == run.pk
    event = AuditEvent.objects.get(action="model_version.updated")
    assert event.old == {"aliases": [], "run": None}
    assert event.new == {"aliases": ["champion"], "run": "c" * 32}
