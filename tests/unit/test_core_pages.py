"""The live board and the trace page: content, login, and a constant number of queries."""

from __future__ import annotations

import datetime
import io
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from releases import services
from releases.models import DatasetVersion, Deployment, SyncState
from tests.factories import SYSTEM, World


@pytest.fixture
def world(db):
    return World.create()


def board_with(world: World, count: int, *, by, approver, deployer) -> None:
    """``count`` production endpoints, each with two releases deployed in turn."""
    for i in range(count):
        endpoint = world.endpoint(f"churn-scoring-{i}")
        older = world.full_release(100 + 2 * i, by=by, approver=approver)
        newer = world.full_release(101 + 2 * i, by=by, approver=approver)
        world.deploy(endpoint, older, by=deployer, hours_ago=10)
        world.deploy(endpoint, newer, by=deployer, hours_ago=1)


def test_pages_need_login(client: Client, world, ci_account):
    for url in ("/", "/releases/churn-v42/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


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


@pytest.mark.parametrize("count", [1, 3])
def test_board_query_count_is_constant(
    client: Client, world, ci_account, lead, release_manager, count, django_assert_num_queries
):
    board_with(world, count, by=ci_account, approver=lead, deployer=release_manager)
    client.force_login(lead)
    # session, user, user's roles, endpoint count (pager), endpoints with live + rollback annotations,
    # live deployments, traced releases (+ dataset inputs, approvals, deployments prefetches)
    with django_assert_num_queries(10):
        response = client.get("/")
    assert response.content.decode().count("6/6 links") == count


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


def test_trace_page_of_an_unknown_release_is_404(client: Client, world, lead):
    client.force_login(lead)
    assert client.get("/releases/nope-v1/").status_code == 404


@pytest.mark.parametrize("count", [1, 3])
def test_trace_page_query_count_is_constant(
    client: Client, world, ci_account, lead, release_manager, count, django_assert_num_queries
):
    """``count`` endpoints carry the release, and its run used ``count`` dataset versions."""
    datasets = tuple(world.dataset(f"churn-train:{i}").key for i in range(1, count + 1))
    mv = world.model_version("churn-model/42", commit=world.commit("c"), datasets=datasets)
    release = world.approved_release("churn-v42", mv, by=ci_account, approver=lead)
    for i in range(count):
        world.deploy(world.endpoint(f"ep-{i}"), release, by=release_manager)
    client.force_login(lead)
    # session, user, release chain, dataset inputs, approvals, deployments, endpoints carrying it,
    # endpoint statuses (annotated endpoints, live deployments, traced releases + 3 prefetches),
    # previous release, audit events
    with django_assert_num_queries(15):
        response = client.get("/releases/churn-v42/")
    assert response.content.decode().count("churn-train:") >= count


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


def test_trace_timeline_keeps_only_this_releases_endpoint_events(world, ci_account, lead, release_manager):
    from releases import lineage

    board_with(world, 1, by=ci_account, approver=lead, deployer=release_manager)
    events = list(lineage.release_events(lineage.trace("churn-v101")))
    deployments = [e for e in events if e.action == "deployment.recorded"]
    assert [e.new["release"] for e in deployments] == ["churn-v101"]
    assert {e.object_key for e in events} >= {"churn-v101", "churn-model/101", "churn-train:17", "churn-scoring-0"}
    assert [e.seq for e in events] == sorted(e.seq for e in events)


# Fresh at once: a recorded deployment or rollback shows on every page without waiting for a sync -----------


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
