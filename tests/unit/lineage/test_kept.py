"""The facts kept for the pages agree with the deployments and run inputs they come from, and a drift is named."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from releases import services
from releases.lineage import kept
from releases.models import (
    DatasetVersion,
    DatasetVersionEndpoint,
    Deployment,
    Endpoint,
    EndpointModel,
    ModelVersionDataset,
)
from tests.factories import World


def _messages(facts: kept.KeptFacts) -> list[str]:
    return [str(disagreement) for disagreement in facts.disagreements]


def test_what_the_services_keep_agrees_with_its_rows(story, world, oncall):
    """Three deployments in turn, a rollback and an endpoint with nothing deployed: all kept as they went."""
    services.roll_back(story["endpoint"], by=oncall, reason="INC-7", source="ui")
    world.endpoint("churn-shadow", "staging")
    facts = kept.check()
    assert _messages(facts) == []
    assert facts.agree
    # churn-scoring and churn-shadow; churn-model went to one; three versions each trained on one dataset
    # version, each of which reached churn-scoring.
    assert (facts.endpoints, facts.model_endpoints, facts.model_version_datasets, facts.dataset_version_endpoints) == (
        2,
        1,
        3,
        3,
    )


def test_a_live_pointer_that_drifted_is_named_with_what_its_deployments_say(story):
    endpoint = story["endpoint"]
    older = Deployment.objects.get(endpoint=endpoint, release=story["v41"])
    newest = Deployment.objects.get(endpoint=endpoint, release=story["v42"])
    Endpoint.objects.filter(pk=endpoint.pk).update(live_deployment_now=older, live_release_now=story["v41"])

    assert _messages(kept.check()) == [
        f"what is live now: endpoint churn-scoring: kept as churn-v41 (deployment {older.pk}), "
        f"its deployments say churn-v42 (deployment {newest.pk})"
    ]


def test_a_deployment_written_around_the_services_leaves_every_fact_it_feeds_behind(story, world):
    shadow = world.endpoint("churn-shadow", "staging")
    written = Deployment.objects.create(
        endpoint=shadow, release=story["v41"], deployed_at=timezone.now(), actor="someone", kind="deploy"
    )

    assert _messages(kept.check()) == [
        "what is live now: endpoint churn-shadow: kept as nothing live, its deployments say churn-v41 "
        f"(deployment {written.pk})",
        "where a model's releases went: churn-model and churn-shadow: not kept, though deployed there",
        "where a dataset version reached: churn-train:17 and churn-shadow: not kept, though a release trained "
        "on it went live there",
    ]


def test_dataset_links_kept_wrong_are_named_each_way(story, world):
    v42 = story["v42"].model_version
    used = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    other = DatasetVersion.objects.get(dataset__name="churn-train", version=16)
    ModelVersionDataset.objects.filter(model_version=v42, dataset_version=used).delete()
    ModelVersionDataset.objects.create(model_version=v42, dataset_version=other)
    shadow = world.endpoint("churn-shadow", "staging")
    DatasetVersionEndpoint.objects.create(dataset_version=other, endpoint=shadow)
    EndpointModel.objects.create(registered_model=v42.registered_model, endpoint=shadow)

    assert _messages(kept.check()) == [
        "where a model's releases went: churn-model and churn-shadow: kept, though no release of it went live there",
        "a model version's datasets: churn-model/42 and churn-train:18: not kept, though its run used it",
        "a model version's datasets: churn-model/42 and churn-train:16: kept, though its run did not use it",
        "where a dataset version reached: churn-train:16 and churn-shadow: kept, though no release trained on it "
        "went live there",
    ]
    assert len(kept.check(limit=1).disagreements) == 4, "one row of each fact, each way"


def test_the_command_says_what_it_checked_and_exits_1_naming_each_disagreement(story):
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_kept", stdout=out, stderr=err)
    assert out.getvalue() == (
        "kept facts agree with their rows: what is live on 1 endpoints, 1 (model, endpoint), "
        "3 (model version, dataset version), 3 (dataset version, endpoint)\n"
    )
    assert err.getvalue() == ""

    Endpoint.objects.filter(pk=story["endpoint"].pk).update(live_deployment_now=None, live_release_now=None)
    with pytest.raises(SystemExit) as exit_:
        call_command("verify_kept", stdout=out, stderr=err)
    assert exit_.value.code == 1
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("what is live now: endpoint churn-scoring: kept as nothing live, its deployments say ")
    assert lines[1].startswith("kept facts disagree with their rows: 1 (what is live on 1 endpoints")


@pytest.mark.parametrize("limit", ["0", "٣", "1_0", "lots"])
def test_the_command_refuses_a_limit_that_is_not_a_whole_number(db, limit):
    with pytest.raises(CommandError, match="expected a whole number"):
        call_command("verify_kept", "--limit", limit)


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_check_reads_one_read_only_snapshot(ci_account, lead, release_manager):
    world = World.create()
    world.deploy(world.endpoint(), world.full_release(41, by=ci_account, approver=lead), by=release_manager)
    assert not connection.in_atomic_block

    assert kept.check().disagreements == []
    # What check() reads in.
    with kept._one_snapshot():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')"
                )
                assert cursor.fetchone() == ("repeatable read", "on")
            # Nothing can be written while it checks.
            with pytest.raises(DatabaseError, match="read-only transaction"), transaction.atomic():
                Endpoint.objects.update(description="changed")
        else:
            assert connection.in_atomic_block
