"""Every page runs a constant number of queries: the same count with one item as with three, and as with
more items than a page shows (60 > 50), when the page says how many there are and links to the next."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from releases import lineage, services
from releases.models import Commit, DatasetVersion, Deployment, EvidenceExport, ExperimentRun, RegisteredModel
from releases.templatetags.lineage_tags import TIMELINE_LANES
from tests.factories import SYSTEM, World
from tests.unit.conftest import api, client_for, pending_release, token_for

pytestmark = pytest.mark.django_db

# More than a page of every list (lineage.PAGE_SIZE is 50): a pager then says "1 to 50 of 60 runs", with an en dash.
MORE_THAN_A_PAGE = 60
DASH = "\N{EN DASH}"


def build(n: int, *, ci: User, lead: User, manager: User) -> World:
    """``n`` approved churn releases on one dataset, each deployed to churn-scoring in turn;
    the newest is also on ``n`` more endpoints."""
    world = World.create()
    production = world.endpoint("churn-scoring")
    releases = [world.full_release(40 + i, by=ci, approver=lead) for i in range(n)]
    for i, release in enumerate(releases):
        world.deploy(production, release, by=manager, hours_ago=10 * (n - i))
    for i in range(n):
        world.deploy(world.endpoint(f"extra-{i}", "staging"), releases[-1], by=manager, hours_ago=1)
    return world


@pytest.fixture
def page(client: Client, ci_account: User, lead: User, lead2: User, release_manager: User) -> Any:
    def get(n: int, path_of: Any, expected: int, assert_queries: Any) -> str:
        build(n, ci=ci_account, lead=lead2, manager=release_manager)
        client.force_login(lead)
        path = path_of() if callable(path_of) else path_of
        with assert_queries(expected):
            response = client.get(path)
        assert response.status_code == 200, path
        return response.content.decode()

    return get


# Every page starts with 3 queries: session, user, and the user's groups (the site-wide role check).


def planned() -> int:
    """Queries planned for their values (a search, the impact lists; ``planned_for_their_values``): on PostgreSQL
    one more to set the plan mode, here in a savepoint of the test's transaction (two more)."""
    return 3 if connection.vendor == "postgresql" else 0


@pytest.mark.parametrize("n", [1, 3])
def test_board_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + endpoint count for the pager (1), endpoints annotated with live release (1), the quarantined,
    # changed and lifted dataset versions (1), live deployments with their rollback target's name (1),
    # traced releases (1) and their inputs, approvals, endpoints gone to (3); integrity: the last
    # verification, the newest checkpoint, the newest event (3)
    html = page(n, "/", 14, django_assert_num_queries)
    assert f"churn-v{39 + n}" in html
    assert html.count('data-label="Endpoint"') == n + 1


@pytest.mark.parametrize("n", [1, 3])
def test_release_list_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + count (1), page of traced releases (1) + inputs, approvals, deployments (3), model names (1)
    html = page(n, "/releases/", 9, django_assert_num_queries)
    assert html.count('class="release-name"') == n


@pytest.mark.parametrize("n", [1, 3, MORE_THAN_A_PAGE])
def test_release_detail_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + traced release (1) + inputs, approvals, deployments (3); endpoint statuses, by name: annotated
    # endpoints (1), troubled dataset versions (1), live deployments with their releases (1); previous
    # release (1); the deployments that followed its own (1; the newest release is live, so none ended a
    # period); the newest audit events with their total (1)
    html = page(n, lambda: f"/releases/churn-v{39 + n}/", 13, django_assert_num_queries)
    assert html.count('class="status-box"') == n + 1
    assert "churn-train:17" in html
    if n > lineage.PAGE_SIZE:
        # Deployed to churn-scoring and to the n extra endpoints: more events and deployments than a page.
        assert html.count('<li><span class="tl-when">') == lineage.PAGE_SIZE
        # The total counted beside the page is every event of the timeline, as the plain query counts them.
        total = lineage.release_events(lineage.trace("churn-v99")).count()
        assert total > lineage.PAGE_SIZE
        assert f"The newest 50 of {total:,} events" in html
        assert 'href="/audit/?release=churn-v99">every one in the audit trail</a>' in html
        assert f"The newest 50 of {n + 1} deployments" in html


@pytest.mark.parametrize("n", [2, 3, MORE_THAN_A_PAGE])
def test_compare_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + both traced releases (1) + inputs, approvals, deployments (3); commits between: the walk through
    # parent links, counted (1), which does not reach the older commit (these commits have no parents), so
    # the commits made between the two counted (1) and a page of them read (1); release names (1)
    html = page(n, lambda: f"/releases/compare/?a=churn-v40&b=churn-v{39 + n}", 11, django_assert_num_queries)
    assert "Commits between them" in html
    assert html.count('<li><a href="/commits/') == min(n - 1, lineage.PAGE_SIZE)
    if n > lineage.PAGE_SIZE:
        assert f"1{DASH}50 of {n - 1} commits" in html
        assert "commits_page=2#commits-h" in html


# The dataset page: 3 + version (1) + digests (1); impact: runs, model versions, releases, endpoints ever and
# endpoints live now, each counted (5) and a page of each read (5).
DATASET_PAGE_QUERIES = 15


@pytest.mark.parametrize("n", [1, 3, MORE_THAN_A_PAGE])
def test_dataset_version_queries(page: Any, client: Client, django_assert_num_queries: Any, n: int) -> None:
    html = page(n, "/datasets/churn-train/17/", DATASET_PAGE_QUERIES + planned(), django_assert_num_queries)
    assert html.count('<li><a href="/releases/churn-v') == min(n, lineage.PAGE_SIZE)
    assert html.count('<li><a href="/runs/') == min(n, lineage.PAGE_SIZE)
    assert "Quarantine churn-train:17…" in html
    if n <= lineage.PAGE_SIZE:
        assert 'class="pager"' not in html
        return
    for noun, parameter, anchor in (
        ("runs", "runs_page", "impact-runs"),
        ("model versions", "versions_page", "impact-versions"),
        ("releases", "releases_page", "impact-releases"),
    ):
        assert f"1{DASH}50 of {n} {noun}" in html
        assert f'href="?{parameter}=2#{anchor}" rel="next"' in html
    # churn-scoring and the extra endpoints: every one of them runs the newest release.
    assert f"1{DASH}50 of {n + 1} endpoints" in html
    assert f"1{DASH}50 of {n + 1} live endpoints" in html
    # A later page costs what the first does; a page number past the last shows the last.
    with django_assert_num_queries(DATASET_PAGE_QUERIES + planned()):
        later = client.get("/datasets/churn-train/17/", {"runs_page": "2", "releases_page": "99"}).content.decode()
    assert f"51{DASH}60 of {n} runs" in later
    assert 'href="?releases_page=99#impact-runs" rel="prev"' in later  # back to page 1: no runs_page
    assert f"51{DASH}60 of {n} releases" in later
    assert '<li><a href="/releases/churn-v40/">' in later


@pytest.mark.parametrize("n", [1, 3, MORE_THAN_A_PAGE])
def test_quarantine_confirmation_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # as the dataset page (15), and the approved releases counted (1) and their first page read (1)
    html = page(n, "/datasets/churn-train/17/quarantine/", 17 + planned(), django_assert_num_queries)
    shown = min(n, lineage.PAGE_SIZE)
    assert html.count('<a href="/releases/churn-v') == 2 * shown  # what stops counting, and the impact list
    assert "Confirm: quarantine churn-train:17" in html
    if n > lineage.PAGE_SIZE:
        assert f"The approvals of {n} releases stop counting" in html
        assert f"and {n - shown} more (under Releases below)" in html


def _quarantined(key: str) -> str:
    services.quarantine_dataset_version(DatasetVersion.objects.by_key(key).get(), by=SYSTEM, reason="bad labels")
    name, _, version = key.partition(":")
    return f"/datasets/{name}/{version}/lift-quarantine/"


@pytest.mark.parametrize("n", [1, 3])
def test_lift_quarantine_confirmation_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # as the dataset page (15), and the approved releases counted (1) and their first page read (1)
    html = page(n, lambda: _quarantined("churn-train:17"), 17 + planned(), django_assert_num_queries)
    assert html.count('<a href="/releases/churn-v') == 2 * n  # what must be signed again, and the impact list
    assert "Confirm: lift the quarantine of churn-train:17" in html


# The endpoint page: 3 + status now: annotated endpoint, troubled dataset versions, live deployment, traced
# releases + 3 prefetches (7); a page of deployments (1), and their count with the position of the first (1).
ENDPOINT_PAGE_QUERIES = 12


@pytest.mark.parametrize("n", [1, 3, MORE_THAN_A_PAGE])
def test_endpoint_queries(page: Any, client: Client, django_assert_num_queries: Any, n: int) -> None:
    html = page(n, "/endpoints/churn-scoring/", ENDPOINT_PAGE_QUERIES, django_assert_num_queries)
    shown = min(n, lineage.PAGE_SIZE)
    # Each release on the page is a lane of the timeline, each deployment a bar in both drawings (laptop, phone).
    assert html.count('class="tl-bar') == 2 * min(shown, TIMELINE_LANES)
    assert html.count('<td data-label="When">') == shown
    if n <= lineage.PAGE_SIZE:
        assert 'class="pager"' not in html
        return
    newest_first = list(Deployment.objects.filter(endpoint__name="churn-scoring").order_by("-deployed_at", "-id"))
    assert f"1{DASH}50 of {n} deployments" in html
    assert f'href="?before={newest_first[49].pk}#tl-h" rel="next"' in html
    # Older deployments are a keyset page: as the first page, and the key of the deployment it continues from (1).
    with django_assert_num_queries(ENDPOINT_PAGE_QUERIES + 1):
        older = client.get("/endpoints/churn-scoring/", {"before": newest_first[49].pk}).content.decode()
    assert f"51{DASH}60 of {n} deployments" in older
    assert older.count('<td data-label="When">') == n - lineage.PAGE_SIZE
    assert f'href="?after={newest_first[50].pk}#tl-h" rel="prev"' in older
    assert 'rel="next"' not in older
    assert 'class="tl-bar' not in older  # the chart runs up to now: it is drawn on the newest page only
    newer = client.get("/endpoints/churn-scoring/", {"after": newest_first[50].pk}).content.decode()
    assert f"1{DASH}50 of {n} deployments" in newer


@pytest.mark.parametrize("n", [1, 3])
def test_endpoint_live_at_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # as above, plus the status at the chosen moment (7)
    html = page(
        n, "/endpoints/churn-scoring/?at=2999-01-01T00:00", ENDPOINT_PAGE_QUERIES + 7, django_assert_num_queries
    )
    assert 'class="status-box then"' in html
    assert 'datetime="2999-01-01T00:00:00+00:00"' in html


@pytest.mark.parametrize("n", [1, 3])
def test_rollback_confirmation_queries(
    client: Client,
    django_assert_num_queries: Any,
    ci_account: User,
    lead2: User,
    oncall: User,
    release_manager: User,
    n: int,
) -> None:
    """The target trained on ``n`` dataset versions, live ``n`` times before on the endpoint."""
    world = World.create()
    keys = tuple(f"churn-train:{i}" for i in range(1, n + 1))
    for key in keys:
        world.dataset(key)
    v41 = world.approved_release(
        "churn-v41",
        world.model_version("churn-model/41", commit=world.commit("41"), datasets=keys),
        by=ci_account,
        approver=lead2,
    )
    v42 = world.full_release(42, by=ci_account, approver=lead2, dataset="churn-train:99")
    endpoint = world.endpoint("churn-scoring")
    for i in range(n):
        world.deploy(endpoint, v41, by=release_manager, hours_ago=100 - 10 * i)
        world.deploy(endpoint, v42, by=release_manager, hours_ago=95 - 10 * i)
    client.force_login(oncall)
    # 3 + endpoint status: annotated endpoint, troubled dataset versions, live deployment, traced releases
    # + 3 prefetches (7); the target's earlier periods on the endpoint (1)
    with django_assert_num_queries(11):
        response = client.get("/endpoints/churn-scoring/rollback/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count(" until ") == n
    assert html.count('<span class="status status-active">active</span>') == n
    assert "Confirm: roll back to churn-v41" in html


@pytest.mark.parametrize("n", [2, 3])
def test_investigate_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + status at the moment (7); commits between live and previous stable, as on the compare page (3);
    # endpoint choices (1)
    html = page(n, "/investigate/?endpoint=churn-scoring", 14, django_assert_num_queries)
    assert f"churn-v{38 + n}" in html


# The model page: 3 + model (1); a page of versions with their runs (1), their releases (1), their count with
# the position of the first (1); endpoints its releases went to, counted (1) and a page read (1); the
# endpoints each version on the page is live on (1).
MODEL_PAGE_QUERIES = 10


@pytest.mark.parametrize("n", [1, 3, MORE_THAN_A_PAGE])
def test_model_queries(page: Any, client: Client, django_assert_num_queries: Any, n: int) -> None:
    html = page(n, "/models/churn-model/", MODEL_PAGE_QUERIES, django_assert_num_queries)
    assert html.count('<tr id="v') == min(n, lineage.PAGE_SIZE)
    assert f'<tr id="v{39 + n}">' in html
    if n <= lineage.PAGE_SIZE:
        assert 'class="pager"' not in html
        return
    assert f"1{DASH}50 of {n} versions" in html
    assert 'href="?before=50#versions-h" rel="next"' in html  # versions 99 to 50 are on the first page
    assert f"1{DASH}50 of {n + 1} endpoints" in html
    # Older versions are a keyset page on the version number, as cheap as the first.
    with django_assert_num_queries(MODEL_PAGE_QUERIES):
        older = client.get("/models/churn-model/", {"before": "50"}).content.decode()
    assert f"51{DASH}60 of {n} versions" in older
    assert older.count('<tr id="v') == n - lineage.PAGE_SIZE
    assert '<tr id="v49">' in older
    assert '<tr id="v40">' in older
    assert 'href="?after=49#versions-h" rel="prev"' in older


@pytest.mark.parametrize("n", [1, 3])
def test_run_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + run (1) + inputs (1); impact: five lists, each counted and a page read (10)
    html = page(
        n,
        lambda: f"/runs/{ExperimentRun.objects.get(name='churn-model-40').run_id}/",
        15 + planned(),
        django_assert_num_queries,
    )
    assert "churn-train:17" in html


@pytest.mark.parametrize("n", [1, 3])
def test_commit_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + commits by prefix (1); impact: five lists, each counted and a page read (10)
    html = page(
        n,
        lambda: f"/commits/{Commit.objects.order_by('committed_at').first().sha[:10]}/",
        14 + planned(),
        django_assert_num_queries,
    )
    assert "churn-v40" in html


@pytest.mark.parametrize("n", [1, 3])
def test_search_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + run-id prefix (1) + one query per kind, rows and total together (7): releases, registered
    # models, endpoints, dataset versions, feature views, git tags, runs by author; nothing matches
    html = page(n, "/search/?q=no-such-thing", 11 + planned(), django_assert_num_queries)
    assert "Nothing matches" in html


def search_world(n: int, *, ci: User) -> None:
    """``n`` rows of every kind the search groups whose names contain "blue"."""
    world = World.create()
    for i in range(n):
        dataset = f"blue-set-{i}:1"
        world.dataset(dataset)
        commit = world.commit(f"blue {i}")
        world.tag(f"blue-tag-{i}", commit)
        version = world.model_version(
            f"blue{i}-model/1",
            commit=commit,
            datasets=(dataset,),
            feature_view=f"blue_features_v{i + 1}",
            user="bluebell",
        )
        world.release(f"blue{i}-v1", version, by=ci)
        world.endpoint(f"blue-scoring-{i}")


@pytest.mark.parametrize("n", [1, 3])
def test_search_partial_name_queries(
    client: Client, ci_account: User, lead: User, django_assert_num_queries: Any, n: int
) -> None:
    search_world(n, ci=ci_account)
    client.force_login(lead)
    # 3 + run-id prefix (1) + releases, registered models, endpoints, dataset versions, feature
    # views (with their newest run), git tags, runs by author, each with its total (7)
    with django_assert_num_queries(11 + planned()):
        response = client.get("/search/", {"q": "blue"})
    assert response.status_code == 200
    html = response.content.decode()
    for kind in ("release", "model", "endpoint", "dataset_version", "feature_view", "git_tag", "run_author"):
        assert f'aria-labelledby="found-{kind}"' in html, kind
    assert html.count(f'aria-label="{n} found"') == 7
    assert html.count('href="/releases/blue') == n
    assert html.count('href="/endpoints/blue-scoring-') == n
    assert html.count('href="/datasets/blue-set-') == n
    assert html.count("by bluebell") == n


# The approval queue, and the release page as its run's inputs grow -----------------------------------


@pytest.mark.parametrize("count", [1, 3])
def test_queue_query_count_is_constant(world, release_manager, lead, django_assert_num_queries, count):
    for number in range(42, 42 + count):
        pending_release(world, release_manager, number=number)
    client = client_for(lead)
    # session, user, user's groups (role check), the releases with their chain (one join),
    # then prefetches: dataset inputs, approvals, deployments.
    with django_assert_num_queries(7):
        response = client.get(reverse("releases:approvals"))
    assert response.content.decode().count("#sign") == count


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
    # endpoint statuses by name (annotated endpoints, troubled dataset versions, live deployments with their
    # releases), previous release, the deployments that followed the release's own, the newest audit events
    # with their total
    with django_assert_num_queries(13):
        response = client.get("/releases/churn-v42/")
    assert response.content.decode().count("churn-train:") >= count


@pytest.mark.parametrize("count", [1, 3])
def test_trace_page_of_a_release_replaced_on_many_endpoints_runs_the_same_queries(
    client: Client, world, ci_account, lead, release_manager, count, django_assert_num_queries
):
    """Each of ``count`` endpoints ran churn-v41, then churn-v42: the timeline names the deployment that ended
    each of churn-v41's periods, read with its endpoint in the query that finds it, not one query apiece."""
    v41 = world.full_release(41, by=ci_account, approver=lead)
    v42 = world.full_release(42, by=ci_account, approver=lead)
    for i in range(count):
        endpoint = world.endpoint(f"ep-{i}")
        world.deploy(endpoint, v41, by=release_manager, hours_ago=10)
        world.deploy(endpoint, v42, by=release_manager, hours_ago=5)
    client.force_login(lead)
    # as above: the deployments that ended a period come with their release and endpoint in the query that
    # finds what followed the release's own
    with django_assert_num_queries(13):
        response = client.get(f"/releases/{v41.name}/")
    assert response.status_code == 200
    assert response.content.decode().count('class="status-box"') == count


# Impact of a dataset version -------------------------------------------------------------------------


def test_impact_runs_in_a_fixed_number_of_queries(story, django_assert_num_queries):
    version = story["v42"].model_version.run.dataset_inputs.get().dataset_version
    with django_assert_num_queries(0):
        impact = lineage.impact_of_dataset_version(version)
    # runs, model versions, releases, endpoints ever, live endpoints: each counted and a page read
    with django_assert_num_queries(10 + planned()):
        pages = impact.pages(lineage.ImpactPageNumbers())
    assert [r.name for r in pages.releases.rows] == ["churn-v42"]
    assert pages.releases.total == 1


# API list endpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3])
def test_release_list_query_count(world, ci_account, lead, django_assert_num_queries, count):
    for number in range(41, 41 + count):
        world.full_release(number, by=ci_account, approver=lead, dataset=f"churn-train:{number}")
    client = api(token_for(ci_account))
    client.get("/api/releases/")  # the token's first use is written down; a minute's later calls write nothing
    # token + user, the user's groups, releases with the whole chain (one join),
    # then prefetches: dataset inputs, approvals, deployments.
    with django_assert_num_queries(6):
        response = client.get("/api/releases/")
    assert len(response.json()) == count


@pytest.mark.parametrize("count", [1, 3])
def test_dataset_version_list_query_count(world, ci_account, django_assert_num_queries, count):
    for number in range(1, 1 + count):
        world.dataset(f"churn-train:{number}")
    client = api(token_for(ci_account))
    client.get("/api/dataset-versions/")  # the token's first use is written down; a minute's later calls write nothing
    # token + user, the user's groups, dataset versions joined to their dataset.
    with django_assert_num_queries(3):
        response = client.get("/api/dataset-versions/")
    assert len(response.json()) == count


@pytest.mark.parametrize("count", [1, 3])
def test_endpoint_list_query_count(world, ci_account, lead, django_assert_num_queries, count):
    release = world.full_release(42, by=ci_account, approver=lead)
    for number in range(count):
        world.deploy(world.endpoint(f"churn-scoring-{number}"), release, by=ci_account)
    client = api(token_for(ci_account))
    client.get("/api/endpoints/")  # the token's first use is written down; a minute's later calls write nothing
    # token + user, the user's groups, endpoints annotated with live deployment, the troubled dataset versions,
    # the live deployments with their rollback target, the releases with their chain, then prefetches: inputs,
    # approvals, endpoints gone to.
    with django_assert_num_queries(9):
        response = client.get("/api/endpoints/")
    assert [e["live_release"] for e in response.json()] == ["churn-v42"] * count


@pytest.mark.parametrize("n", [1, 3])
def test_audit_trail_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + a page of events (1), their exact count (1), the newest checkpoint (1); integrity panel (3)
    html = page(n, "/audit/", 9, django_assert_num_queries)
    assert html.count('href="/audit/events/') == min(50, AuditEvent.objects.count())


@pytest.mark.parametrize("n", [1, 3])
def test_audit_trail_of_one_release_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + the traced release (1) and its inputs, approvals, deployments (3); its deployments with what followed
    # each (1; live, so no ended period to read); the page (1), count (1), checkpoint (1); integrity panel (3)
    html = page(n, lambda: f"/audit/?release=churn-v{39 + n}", 14, django_assert_num_queries)
    assert f"release:churn-v{39 + n}" in html


@pytest.mark.parametrize("n", [1, 3])
def test_audit_event_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + the event (1), the newest checkpoint (1)
    html = page(n, lambda: "/audit/events/1/", 5, django_assert_num_queries)
    assert "Audit event #1" in html


@pytest.mark.parametrize("n", [1, 3])
def test_inventory_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + model count and page (2); approvals (1); newest releases (1) traced (1) + 3 prefetches; live
    # endpoints (1); open quarantines (1); releases in the period (1)
    def models() -> str:
        for i in range(n):
            RegisteredModel.objects.create(name=f"extra-model-{i}")
        return "/inventory/"

    html = page(n, models, 14, django_assert_num_queries)
    assert html.count('data-label="Model"') == n + 1


@pytest.mark.parametrize("n", [1, 3])
def test_period_evidence_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + the recent bundles with who asked for each (1)
    def exports() -> str:
        asker = User.objects.get(username="lead")
        for _ in range(n):
            EvidenceExport.objects.create(
                requested_by=asker, since=timezone.now(), until=timezone.now(), environments=["production"]
            )
        return "/audit/evidence/"

    html = page(n, exports, 4, django_assert_num_queries)
    assert html.count('data-label="Asked for"') == n


@pytest.mark.parametrize("n", [1, 3])
def test_period_evidence_status_queries(page: Any, django_assert_num_queries: Any, n: int) -> None:
    # 3 + the bundle with who asked for it (1)
    def status() -> str:
        asker = User.objects.get(username="lead")
        export = EvidenceExport.objects.create(
            requested_by=asker, since=timezone.now(), until=timezone.now(), environments=["production"] * n
        )
        return f"/audit/evidence/{export.pk}/"

    html = page(n, status, 4, django_assert_num_queries)
    assert "Waiting for a worker" in html
