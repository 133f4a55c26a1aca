"""The search box: exact identifiers jump to their page, parts of names list what they find, and
no text, however hostile, gets anything but a clear page."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releases import lineage
from releases.models import (
    Commit,
    Dataset,
    Endpoint,
    ExperimentRun,
    FeaturePipeline,
    GitTag,
    RegisteredModel,
    Release,
)
from tests.factories import World
from tests.plans import plans_while_generic_plans_are_preferred

pytestmark = pytest.mark.django_db


@pytest.fixture
def story(ci_account: User, lead2: User, release_manager: User) -> World:
    world = World.create()
    v41 = world.full_release(41, by=ci_account, approver=lead2, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead2, dataset="churn-train:18")
    world.tag("model-churn-v42", v42.model_version.run.commit)  # type: ignore[union-attr]
    production = world.endpoint("churn-scoring")
    world.endpoint("churn-scoring-staging", "staging")
    world.deploy(production, v41, by=release_manager, hours_ago=48)
    world.deploy(production, v42, by=release_manager, hours_ago=3)
    return world


def titles(results: lineage.SearchResults) -> dict[str, list[str]]:
    return {group.title: [hit.label for hit in group.hits] for group in results.groups}


@pytest.mark.parametrize(
    ("text", "title", "labels"),
    [
        ("churn-tra", "Dataset versions", ["churn-train:18", "churn-train:17"]),
        ("CHURN-V4", "Releases", ["churn-v42", "churn-v41"]),
        ("model-churn", "Git tags", ["model-churn-v42"]),
        ("customer_features", "Feature views", ["customer_features_v5"]),
        ("features_v5", "Feature views", ["customer_features_v5"]),
        ("scoring", "Endpoints", ["churn-scoring", "churn-scoring-staging"]),
        ("data-sci", "MLflow runs by author", ["churn-model-42", "churn-model-41"]),
        ("rn-mod", "Registered models", ["churn-model"]),
    ],
)
def test_part_of_a_name_finds_it(story: World, text: str, title: str, labels: list[str]) -> None:
    results = lineage.search(text)
    assert results.jump is None
    assert titles(results)[title] == labels


def test_exact_matches_come_first_and_name_the_page(story: World) -> None:
    results = lineage.search("churn-scoring")
    assert titles(results)["Endpoints"] == ["churn-scoring", "churn-scoring-staging"]
    assert results.jump == lineage.SearchHit("endpoint", "churn-scoring", "Endpoint churn-scoring")


def test_one_exact_hit_jumps_even_when_longer_names_also_match(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    assert client.get("/search/", {"q": "churn-scoring"})["Location"] == "/endpoints/churn-scoring/"
    assert client.get("/search/", {"q": "churn-model"})["Location"] == "/models/churn-model/"


def test_partial_matches_are_listed_by_kind_with_links(client: Client, lead: User, story: World) -> None:
    client.force_login(lead)
    response = client.get("/search/", {"q": "churn"})
    assert response.status_code == 200
    html = response.content.decode()
    for title in ("Releases", "Registered models", "Endpoints", "Dataset versions", "Git tags"):
        assert f">{title} <span" in html
    assert 'href="/releases/churn-v42/"' in html
    assert 'href="/datasets/churn-train/18/"' in html
    tag_commit = GitTag.objects.get(name="model-churn-v42").commit.sha
    assert f'href="/commits/{tag_commit}/"' in html
    run = ExperimentRun.objects.filter(feature_pipeline_version__isnull=False).order_by("-start_time").first()
    assert run is not None
    feature_view = client.get("/search/", {"q": "customer_features"}).content.decode()
    assert f'href="/runs/{run.run_id}/"' in feature_view
    assert f"newest run {run.name}" in feature_view


def test_each_group_is_bounded_and_says_how_many_there_are(client: Client, lead: User) -> None:
    World.create()
    for i in range(lineage.GROUP_LIMIT + 5):
        Endpoint.objects.create(name=f"edge-{i:02}", environment="staging")
    results = lineage.search("edge")
    [group] = results.groups
    assert (len(group.hits), group.total, group.more) == (lineage.GROUP_LIMIT, lineage.GROUP_LIMIT + 5, 5)
    client.force_login(lead)
    html = client.get("/search/", {"q": "edge"}).content.decode()
    assert f"Showing the first {lineage.GROUP_LIMIT} of {lineage.GROUP_LIMIT + 5}" in html


def test_a_group_counts_up_to_its_limit_and_then_says_more(
    client: Client, lead: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    World.create()
    # The module, not the function ``lineage.search`` its name is shadowed by.
    monkeypatch.setattr(sys.modules["releases.lineage.search"], "COUNT_LIMIT", 3)
    for i in range(5):
        Endpoint.objects.create(name=f"edge-{i:02}", environment="staging")
    [group] = lineage.search("edge").groups
    assert (len(group.hits), group.total, group.counted) == (5, 4, "more than 3")
    client.force_login(lead)
    html = client.get("/search/", {"q": "edge"}).content.decode()
    assert 'aria-label="more than 3 found"' in html


def test_wildcards_are_matched_as_themselves(story: World) -> None:
    assert lineage.search("%").groups == []
    assert titles(lineage.search("_features"))["Feature views"] == ["customer_features_v5"]


@pytest.mark.parametrize(
    ("text", "status", "message"),
    [
        ("churn\x00v42", 400, "the query string contains a NUL character"),
        ("\x00", 400, "the query string contains a NUL character"),
        ("churn\x1b[31m", 400, "cannot contain control characters"),
        ("c" * (lineage.MAX_QUERY_LENGTH + 1), 400, f"limited to {lineage.MAX_QUERY_LENGTH} characters"),
        ("churn-" * 5000, 400, f"limited to {lineage.MAX_QUERY_LENGTH} characters"),
        ("churn-train:²", 200, "Nothing matches"),
        ("churn-model/²", 200, "Nothing matches"),
        ("²", 200, "Nothing matches"),
        ("churn-train:99999999999999999999", 200, "Nothing matches"),
        ("churn-model/2147483648", 200, "Nothing matches"),
        ("churn-train:-1", 200, "Nothing matches"),
        ("' OR 1=1 --", 200, "Nothing matches"),
        ("ديتاسيت", 200, "Nothing matches"),
        ("🚀", 200, "Nothing matches"),
    ],
)
def test_hostile_text_gets_a_clear_page(client: Client, lead: User, story: World, text: str, status: int, message: str):
    client.force_login(lead)
    response = client.get("/search/", {"q": text})
    assert response.status_code == status
    assert message in response.content.decode()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=300))
def test_generated_text_never_breaks_the_search(client: Client, lead: User, text: str) -> None:
    # Searching only reads, so the same database serves every example.
    client.force_login(lead)
    response = client.get("/search/", {"q": text})
    assert response.status_code in (200, 302, 400)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.from_regex(r"[a-z]{1,8}[:/][0-9²³¹٣߃]{1,25}", fullmatch=True)
    | st.from_regex(r"[0-9a-f]{4,45}", fullmatch=True)
)
def test_generated_identifiers_never_break_the_search(client: Client, lead: User, text: str) -> None:
    client.force_login(lead)
    assert client.get("/search/", {"q": text}).status_code in (200, 302)


SEARCHED_COLUMNS = [
    (Release, "name", "release_name_trgm"),
    (RegisteredModel, "name", "registeredmodel_name_trgm"),
    (Endpoint, "name", "endpoint_name_trgm"),
    (Dataset, "name", "dataset_name_trgm"),
    (GitTag, "name", "gittag_name_trgm"),
    (FeaturePipeline, "name", "featurepipeline_name_trgm"),
    (ExperimentRun, "user", "experimentrun_user_trgm"),
]


@pytest.mark.parametrize(("model", "column", "index"), SEARCHED_COLUMNS)
def test_postgres_serves_substring_search_from_a_trigram_index(postgres: None, model: Any, column: str, index: str):
    with transaction.atomic(), connection.cursor() as cursor:
        # The tables are nearly empty, where scanning everything is always cheapest. With sequential
        # and plain index scans off, only an index whose condition is the LIKE itself remains.
        for scan in ("seqscan", "indexscan", "indexonlyscan"):
            cursor.execute(f"SET LOCAL enable_{scan} = off")
        plan = model.objects.filter(**{f"{column}__icontains": "churn"}).explain()
    assert index in plan


def test_postgres_finds_run_id_prefixes_from_an_index(postgres: None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        for scan in ("seqscan", "bitmapscan"):
            cursor.execute(f"SET LOCAL enable_{scan} = off")
        plan = ExperimentRun.objects.filter(run_id__startswith="8d4f2c").explain()
    assert "run_id_idx" in plan
    assert "Index Cond" in plan


@pytest.mark.parametrize(
    "lookup",
    [
        {"sha__startswith": "8d4f2c1"},
        {"sha": "8d4f2c1" + "0" * 33},
        {"repository_id": 1, "sha": "8d4f2c1" + "0" * 33},
    ],
)
def test_postgres_finds_commits_by_sha_or_prefix_from_the_one_unique_index(postgres: None, lookup: dict[str, Any]):
    with transaction.atomic(), connection.cursor() as cursor:
        for scan in ("seqscan", "bitmapscan"):
            cursor.execute(f"SET LOCAL enable_{scan} = off")
        plan = Commit.objects.filter(**lookup).order_by().explain()
    assert "commit_unique_sha_per_repo" in plan
    assert "Index Cond" in plan


def test_postgres_plans_each_search_for_its_own_text(postgres: None) -> None:
    """Statements run often are prepared (DB_SERVER_SIDE_BINDING), and PostgreSQL may then keep one generic plan
    for any value; a search is planned for its own text all the same."""
    world = World.create()
    world.model_version("churn-model/1", commit=world.commit("one"))
    texts = iter(("churn", "fraud", "ds", "churn-v4", "model", "x1", "v42", "churn", "rn", "odel"))

    planned = plans_while_generic_plans_are_preferred(
        lambda: lineage.search(next(texts)), times=10, like="%releases_registeredmodel%LIKE%"
    )

    assert planned, "the search's statements are prepared, as every statement run often is"
    assert sum(custom for _, custom in planned.values()) >= 5, planned
    assert all(generic == 0 for generic, _ in planned.values()), planned
