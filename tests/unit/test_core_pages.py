"""The live board and the trace page: content, login, and a constant number of queries."""

from __future__ import annotations

import pytest
from django.test import Client

from releases import services
from releases.models import DatasetVersion
from tests.factories import World


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
