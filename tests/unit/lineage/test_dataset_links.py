"""A model version's dataset links (ModelVersionDataset) stay what its run's inputs say, and the endpoints each
dataset version reached (DatasetVersionEndpoint) what its releases' deployments say, through every write that
changes either; a dataset version's impact is read from them."""

from __future__ import annotations

import pytest

from audit.log import SystemActor
from releases import lineage, services
from releases.lineage import kept
from releases.models import DatasetVersionEndpoint, Deployment, ModelVersion, ModelVersionDataset, RunDatasetInput
from tests.factories import World

pytestmark = pytest.mark.django_db

SYSTEM = SystemActor("test")


def _links() -> set[tuple[str, str]]:
    return {
        (link.model_version.key, link.dataset_version.key)
        for link in ModelVersionDataset.objects.select_related(
            "model_version__registered_model", "dataset_version__dataset"
        )
    }


def _from_inputs() -> set[tuple[str, str]]:
    """The links as the runs' inputs define them, computed the long way."""
    return {
        (version.key, used.dataset_version.key)
        for version in ModelVersion.objects.select_related("registered_model").exclude(run=None)
        for used in RunDatasetInput.objects.filter(run_id=version.run_id).select_related("dataset_version__dataset")
    }


def _run(world: World, run_id: str, *datasets: str) -> None:
    services.record_run(
        world.server,
        services.RunData(
            run_id=run_id,
            name=run_id,
            status="FINISHED",
            datasets=[services.DatasetRef(key=key, context=context) for key, context in map(_split, datasets)],
        ),
        by=SYSTEM,
    )


def _split(item: str) -> tuple[str, str]:
    key, _, context = item.partition("@")
    return key, context or "training"


def _version(name: str, version: int, run_id: str) -> services.ModelVersionData:
    return services.ModelVersionData(name=name, version=version, source_run_id=run_id, artifact_uri=f"models:/{run_id}")


def test_links_follow_the_inputs_through_registration_relinking_and_new_inputs():
    world = World.create()
    for key in ("train:1", "train:2", "holdout:1"):
        world.dataset(key)
    _run(world, "run-a", "train:1", "holdout:1@evaluation")
    _run(world, "run-b", "train:1", "train:1@evaluation")

    # Registered one by one and in a batch, each with its run.
    services.register_model_version(world.server, _version("churn", 1, "run-a"), by=SYSTEM)
    services.register_model_versions(
        world.server, [_version("churn", 2, "run-b"), _version("churn", 3, "run-a")], by=SYSTEM
    )
    # A run used in two contexts links its model version to the dataset version once.
    assert _links() == {
        ("churn/1", "train:1"),
        ("churn/1", "holdout:1"),
        ("churn/2", "train:1"),
        ("churn/3", "train:1"),
        ("churn/3", "holdout:1"),
    }

    # Registered before its run is synced: no link until the version is linked to its run.
    services.register_model_version(world.server, _version("churn", 4, "run-c"), by=SYSTEM)
    _run(world, "run-c", "train:2")
    assert ("churn/4", "train:2") not in _links()
    services.register_model_version(world.server, _version("churn", 4, "run-c"), by=SYSTEM)
    assert ("churn/4", "train:2") in _links()

    # MLflow reports other inputs for run-a: both its versions move with them, the others stay.
    _run(world, "run-a", "train:2")
    assert _links() == _from_inputs()
    assert {pair for pair in _links() if pair[0] in {"churn/1", "churn/3"}} == {
        ("churn/1", "train:2"),
        ("churn/3", "train:2"),
    }
    assert ("churn/2", "train:1") in _links()

    impact = lineage.impact_of_dataset_version(world.dataset("train:2"))
    pages = impact.pages(lineage.ImpactPageNumbers())
    assert [v.key for v in pages.model_versions.rows] == ["churn/4", "churn/3", "churn/1"]
    assert pages.model_versions.total == 3
    assert not lineage.impact_of_dataset_version(world.dataset("holdout:1")).model_versions.exists()


def test_the_releases_of_a_dataset_version_come_newest_first_by_when_they_were_cut(ci_account):
    world = World.create()
    dataset = world.dataset("churn-train:17")
    older = world.model_version("churn-model/1", datasets=("churn-train:17",))
    newer = world.model_version("churn-model/2", datasets=("churn-train:17",))
    # Cut in the other order than their versions were registered: the list follows the releases.
    second = world.release("churn-v2", newer, by=ci_account)
    first = world.release("churn-v1", older, by=ci_account)
    releases = lineage.impact_of_dataset_version(dataset).releases
    assert list(releases) == [first, second]
    assert releases.count() == 2


def _reached() -> set[tuple[str, str]]:
    return {
        (link.dataset_version.key, link.endpoint.name)
        for link in DatasetVersionEndpoint.objects.select_related("dataset_version__dataset", "endpoint")
    }


def _reached_the_long_way() -> set[tuple[str, str]]:
    """Where each dataset version reached, from every deployment and its release's run's inputs."""
    return {
        (used.dataset_version.key, deployment.endpoint.name)
        for deployment in Deployment.objects.select_related("endpoint", "release__model_version")
        for used in RunDatasetInput.objects.filter(
            run_id=deployment.release.model_version.run_id, run_id__isnull=False
        ).select_related("dataset_version__dataset")
    }


def test_the_endpoints_a_dataset_version_reached_follow_deployments_and_the_runs_inputs(ci_account, release_manager):
    world = World.create()
    for key in ("train:1", "train:2", "shared:1"):
        world.dataset(key)
    first = world.release("churn-v1", world.model_version("churn/1", datasets=("train:1", "shared:1")), by=ci_account)
    second = world.release("churn-v2", world.model_version("churn/2", datasets=("train:2", "shared:1")), by=ci_account)
    third = world.release("churn-v3", world.model_version("churn/3", datasets=("shared:1",)), by=ci_account)
    # Staging endpoints: the releases need no approval to go live there.
    a, b = world.endpoint("ep-a", "staging"), world.endpoint("ep-b", "staging")
    world.deploy(a, first, by=release_manager)
    world.deploy(b, second, by=release_manager)
    world.deploy(a, third, by=release_manager)
    assert (
        _reached()
        == _reached_the_long_way()
        == {
            ("train:1", "ep-a"),
            ("shared:1", "ep-a"),
            ("train:2", "ep-b"),
            ("shared:1", "ep-b"),
        }
    )

    # MLflow reports other inputs for churn/1's run: train:1 no longer reached ep-a, train:2 did; shared:1
    # still reached it through churn-v3.
    _run(world, first.model_version.run.run_id, "train:2")
    assert (
        _reached()
        == _reached_the_long_way()
        == {
            ("train:2", "ep-a"),
            ("shared:1", "ep-a"),
            ("train:2", "ep-b"),
            ("shared:1", "ep-b"),
        }
    )
    # And when churn/3's run stops using shared:1 too, nothing reached ep-a with it.
    _run(world, third.model_version.run.run_id, "train:2")
    assert _reached() == _reached_the_long_way()
    assert ("shared:1", "ep-a") not in _reached()
    # The check of every kept fact finds them as the services left them after each change.
    assert kept.check().disagreements == []

    pages = lineage.impact_of_dataset_version(world.dataset("train:2")).pages(lineage.ImpactPageNumbers())
    assert [e.name for e in pages.endpoints_ever.rows] == ["ep-a", "ep-b"]
    assert pages.endpoints_ever.total == 2
    # Live on ep-a is churn-v3, on ep-b churn-v2: both trained on train:2 now.
    assert [e.name for e in pages.live_endpoints.rows] == ["ep-a", "ep-b"]
    shared = lineage.impact_of_dataset_version(world.dataset("shared:1")).pages(lineage.ImpactPageNumbers())
    assert [e.name for e in shared.endpoints_ever.rows] == ["ep-b"]


def test_a_version_deployed_before_its_run_was_synced_reaches_the_endpoint_once_linked(ci_account, release_manager):
    world = World.create()
    world.dataset("train:1")
    services.register_model_version(world.server, _version("churn", 1, "run-late"), by=SYSTEM)
    version = ModelVersion.objects.get(source_run_id="run-late")
    release = world.release("churn-v1", version, by=ci_account)
    world.deploy(world.endpoint("ep-staging", "staging"), release, by=release_manager)
    assert _reached() == set()

    assert kept.check().disagreements == []

    _run(world, "run-late", "train:1")
    services.register_model_version(world.server, _version("churn", 1, "run-late"), by=SYSTEM)
    assert _reached() == _reached_the_long_way() == {("train:1", "ep-staging")}
    assert kept.check().disagreements == []
