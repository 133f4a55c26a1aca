"""The board, the release list and the release page; a recorded deployment or rollback shows on every page at once."""

from __future__ import annotations

import datetime
import io
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from releases import services
from releases.models import DatasetVersion, Deployment, SyncState
from tests.factories import SYSTEM, World
from tests.unit.conftest import board_with, client_for

# Board -----------------------------------------------------------------------------------------------


def test_board_shows_live_release_since_by_completeness_and_rollback_target(
    client: Client, world, ci_account, lead, release_manager, oncall
):
    board_with(world, 1, by=ci_account, approver=lead, deployer=release_manager)
    client.force_login(oncall)
    html = client.get("/").content.decode()
    assert "churn-scoring-0" in html
    assert 'href="/releases/churn-v101/"' in html
    assert "relman" in html
    assert "6/6 links" in html
    assert 'href="/releases/churn-v100/"' in html


def test_board_warns_about_quarantined_data_on_the_live_release(
    client: Client, world, ci_account, lead, lead2, release_manager
):
    board_with(world, 1, by=ci_account, approver=lead2, deployer=release_manager)
    services.quarantine_dataset_version(
        DatasetVersion.objects.by_key("churn-train:17").get(), by=lead, reason="label mapping changed"
    )
    client.force_login(lead)
    html = client.get("/").content.decode()
    assert "churn-train:17 is quarantined: label mapping changed" in html
    assert "No earlier release on this endpoint is approved" in html


def test_board_pages_through_many_endpoints_and_finds_one_by_name(client: Client, world, lead, settings):
    from releases.views import pages

    for i in range(pages.ENDPOINTS_PER_PAGE + 2):
        world.endpoint(f"scoring-{i:03d}", "staging" if i % 2 else "production")
    client.force_login(lead)
    first = client.get("/").content.decode()
    assert first.count('data-label="Endpoint"') == pages.ENDPOINTS_PER_PAGE
    assert f"Page 1 of 2 · {pages.ENDPOINTS_PER_PAGE + 2} endpoints" in first
    second = client.get("/?page=2").content.decode()
    assert second.count('data-label="Endpoint"') == 2
    found = client.get("/?q=scoring-007").content.decode()
    assert found.count('data-label="Endpoint"') == 1
    assert "scoring-007" in found
    staging = client.get("/?env=staging").content.decode()
    assert staging.count('data-label="Endpoint"') == (pages.ENDPOINTS_PER_PAGE + 2) // 2
    assert "No production endpoints" not in staging
    assert client.get("/?page=nonsense").status_code in (200, 400)


def test_board_offers_rollback_to_on_call(incident, oncall):
    html = client_for(oncall).get(reverse("releases:board")).content.decode()
    assert "Roll back to churn-v41…" in html
    assert "/endpoints/churn-scoring/rollback/?next=/" in html


def test_board_offers_no_rollback_to_auditor(incident, auditor):
    html = client_for(auditor).get(reverse("releases:board")).content.decode()
    assert "Roll back to" not in html


def test_board_explains_why_there_is_no_rollback_target(world, release_manager, lead, oncall):
    release = world.full_release(42, by=release_manager, approver=lead)
    world.deploy(world.endpoint(), release, by=release_manager)

    html = client_for(oncall).get(reverse("releases:board")).content.decode()

    assert "Cannot roll back: No earlier release on this endpoint is approved" in html
    assert "disabled" in html


def test_rollback_target_skips_release_trained_on_quarantined_data(incident, lead, oncall):
    services.quarantine_dataset_version(
        DatasetVersion.objects.by_key("churn-train:17").get(), by=lead, reason="bad labels"
    )

    html = client_for(oncall).get(reverse("releases:board")).content.decode()

    assert "Roll back to churn-v41" not in html
    assert "Cannot roll back" in html


# Release list and release page -----------------------------------------------------------------------


def test_release_list_filters_waiting_for_my_approval(
    client: Client, lead: User, ci_account: User, deployed_world: World
) -> None:
    mv = deployed_world.model_version(
        "churn-model/43", commit=deployed_world.commit("v43"), datasets=("churn-train:18",)
    )
    pending = deployed_world.release("churn-v43", mv, by=ci_account)
    from releases import services

    services.submit_release(pending, by=ci_account)
    client.force_login(lead)
    html = client.get("/releases/", {"waiting": "me"}).content.decode()
    assert "/releases/churn-v43/" in html
    assert "/releases/churn-v42/" not in html
    html = client.get("/releases/", {"state": "approved"}).content.decode()
    assert "/releases/churn-v42/" in html
    assert "/releases/churn-v43/" not in html


def test_trace_page_shows_every_link(client: Client, world, ci_account, lead, release_manager, auditor):
    board_with(world, 1, by=ci_account, approver=lead, deployer=release_manager)
    client.force_login(auditor)
    html = client.get("/releases/churn-v101/").content.decode().lower()
    run = world.server.runs.get(name="churn-model-101")
    for expected in (
        run.commit.sha,
        "https://git.example.com/churn/commit/" + run.commit.sha,
        "churn-train:17",
        "sha256:",
        "customer_features_v5",
        run.run_id,
        "churn-model/101",
        "lena lead",
        "approved for production",
        "churn-scoring-0",
        "rollback target",
        "release.approved",
        "6/6 links",
    ):
        assert expected in html, expected


def test_trace_page_has_the_chain_diagram_and_deep_links(client: Client, lead: User, deployed_world: World) -> None:
    client.force_login(lead)
    html = client.get("/releases/churn-v42/").content.decode()
    assert html.count('class="chain-node node-complete"') == 12  # six links, wide and tall drawings
    assert 'href="/datasets/churn-train/18/" class="chain-node' in html
    assert "https://git.example.com/churn/commit/" in html
    assert "http://mlflow.example.com/#/experiments/1/runs/" in html
    assert "Compare with churn-v41" in html
    assert "Rollback target" in html


def test_trace_page_of_an_unknown_release_is_404(client: Client, world, lead):
    client.force_login(lead)
    assert client.get("/releases/nope-v1/").status_code == 404


# Fresh at once: a recorded deployment or rollback shows on every page without waiting for a sync -----


def _row(html: str, version: int) -> str:
    return re.search(rf'<tr id="v{version}">(.*?)</tr>', html, re.S).group(1)


@pytest.fixture
def alias_lags(world, ci_account, lead, release_manager):
    """churn-v41 live on churn-scoring, which follows the MLflow alias production; the last sync saw the
    alias on version 41. churn-v42 is approved, not deployed yet."""
    v41 = world.full_release(41, by=ci_account, approver=lead)
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    endpoint = services.create_endpoint(
        name="churn-scoring",
        environment="production",
        registered_model="churn-model",
        mlflow_alias="production",
        by=SYSTEM,
    )
    world.deploy(endpoint, v41, by=release_manager, hours_ago=24)
    mv = v41.model_version
    services.register_model_version(
        world.server,
        services.ModelVersionData(
            name="churn-model",
            version=41,
            source_run_id=mv.source_run_id,
            artifact_uri=mv.artifact_uri,
            aliases=("production",),
        ),
        by=SYSTEM,
    )
    return {"v41": v41, "v42": v42, "endpoint": endpoint}


def _live_everywhere(client: Client, release: str, version: int, other: int) -> None:
    board = client.get("/").content.decode()
    assert re.search(rf'<a class="release-name" href="/releases/{release}/">{release}</a>', board)
    endpoint = client.get("/endpoints/churn-scoring/").content.decode()
    assert f'<a href="/releases/{release}/"><strong>{release}</strong></a>' in endpoint
    model = client.get("/models/churn-model/").content.decode()
    assert f'runs <a href="/releases/{release}/">{release}</a>' in model
    assert 'in production</span> on <a href="/endpoints/churn-scoring/">' in _row(model, version)
    assert "in production" not in _row(model, other)
    detail = client.get("/releases/churn-v41/").content.decode()  # deployed there from the start
    assert re.search(rf'<strong>churn-scoring</strong></a>: live now\s*<a href="/releases/{release}/">', detail)


def test_a_deployment_shows_at_once_on_every_page_without_a_sync(client: Client, alias_lags, release_manager, oncall):
    client.force_login(oncall)
    _live_everywhere(client, "churn-v41", 41, 42)

    deployment = services.record_deployment(
        alias_lags["endpoint"], alias_lags["v42"], by=release_manager, source=Deployment.Source.API
    )

    deployment.refresh_from_db()
    assert AuditEvent.objects.filter(action="deployment.recorded", new__release="churn-v42").count() == 1
    assert not SyncState.objects.filter(last_attempt_at__isnull=False).exists(), "no sync ran"
    _live_everywhere(client, "churn-v42", 42, 41)
    model = client.get("/models/churn-model/").content.decode()
    assert "MLflow alias production (last sync)" in _row(model, 41), "the synced alias is shown for what it is"


def test_a_rollback_shows_at_once_on_every_page_without_a_sync(client: Client, alias_lags, release_manager, oncall):
    services.record_deployment(alias_lags["endpoint"], alias_lags["v42"], by=release_manager, source="api")
    client.force_login(oncall)
    _live_everywhere(client, "churn-v42", 42, 41)

    rollback = services.roll_back(alias_lags["endpoint"], by=oncall, reason="INC-7", source=Deployment.Source.CLI)

    rollback.refresh_from_db()
    assert (rollback.release.name, rollback.kind) == ("churn-v41", "rollback")
    assert AuditEvent.objects.get(action="deployment.rolled_back").new["release"] == "churn-v41"
    _live_everywhere(client, "churn-v41", 41, 42)
    assert '<span class="badge">rolled back</span>' in client.get("/").content.decode()


def test_a_deployment_reported_a_little_ahead_is_live_at_once(client: Client, alias_lags, release_manager, oncall):
    ahead = timezone.now() + datetime.timedelta(minutes=3)

    deployment = services.record_deployment(
        alias_lags["endpoint"], alias_lags["v42"], by=release_manager, source=Deployment.Source.API, at=ahead
    )

    deployment.refresh_from_db()
    assert deployment.deployed_at <= timezone.now()
    event = AuditEvent.objects.get(action="deployment.recorded", new__release="churn-v42")
    assert event.new["deployed_at"] == deployment.deployed_at.isoformat()
    client.force_login(oncall)
    _live_everywhere(client, "churn-v42", 42, 41)


def test_a_deployment_through_the_api_shows_at_once(client: Client, alias_lags, release_manager, oncall):
    client.force_login(release_manager)
    response = client.post(
        "/api/deployments/", {"endpoint": "churn-scoring", "release": "churn-v42"}, content_type="application/json"
    )
    assert response.status_code == 201
    assert Deployment.objects.filter(release__name="churn-v42").count() == 1
    assert AuditEvent.objects.get(action="deployment.recorded", new__release="churn-v42").actor == "relman"
    client.force_login(oncall)
    _live_everywhere(client, "churn-v42", 42, 41)


def test_pages_tell_browsers_and_proxies_to_keep_no_copy(client: Client, alias_lags, oncall):
    client.force_login(oncall)
    for path in ("/", "/endpoints/churn-scoring/", "/models/churn-model/", "/releases/churn-v41/", "/api/endpoints/"):
        cache_control = client.get(path)["Cache-Control"]
        assert "no-store" in cache_control, path
        assert "private" in cache_control, path


def test_a_rollback_by_the_command_shows_at_once(client: Client, alias_lags, release_manager, oncall):
    services.record_deployment(alias_lags["endpoint"], alias_lags["v42"], by=release_manager, source="api")

    call_command("rollback", "churn-scoring", "--reason", "INC-8", "--as", "oncall", stdout=io.StringIO())

    rollback = Deployment.objects.get(kind="rollback")
    assert (rollback.release.name, rollback.source, rollback.reason) == ("churn-v41", "cli", "INC-8")
    assert AuditEvent.objects.get(action="deployment.rolled_back").actor == "oncall"
    client.force_login(oncall)
    _live_everywhere(client, "churn-v41", 41, 42)
