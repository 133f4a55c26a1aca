"""The search box: what a typed identifier or part of a name finds.

Exact identifiers (a release, endpoint or model name, ``dataset:version``, ``model/version``, a
commit sha prefix, an MLflow run id) are what the box jumps to. Any text also finds partial names,
grouped by kind: releases, registered models, endpoints, dataset versions by dataset name, git tags,
feature views and MLflow runs by author. Each group is one query that returns its first rows and
its total count together, so a search costs the same number of queries whatever it finds. On
PostgreSQL the searched name columns carry trigram indexes (migration 0009_search_indexes) for these substring
matches.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, CharField, F, Func, IntegerField, OuterRef, QuerySet, Subquery, Value, When
from django.db.models.functions import Cast, Concat

from releases.models import (
    Commit,
    DatasetVersion,
    Endpoint,
    ExperimentRun,
    FeaturePipelineVersion,
    GitTag,
    ModelVersion,
    RegisteredModel,
    Release,
)
from releases.prepared import planned_for_their_values

HEX_RE = re.compile(r"[0-9a-fA-F]{4,40}")
MAX_QUERY_LENGTH = 200
GROUP_LIMIT = 20
# A group counts its matches up to here and then says "more than": one author's million runs are not
# counted one by one to print a number nobody reads past "a lot".
COUNT_LIMIT = 1000


@dataclass(frozen=True)
class SearchHit:
    """A page a search found: its kind ("release", "dataset_version", ...; empty for no page), key and label;
    for a model version, the model's page and the ``version`` on it."""

    kind: str
    key: str
    label: str
    version: int | None = None
    note: str = ""


@dataclass(frozen=True)
class SearchGroup:
    """Partial matches of one kind: the first GROUP_LIMIT of ``total``, counted up to COUNT_LIMIT
    (``total`` is COUNT_LIMIT + 1 when there are more)."""

    kind: str
    title: str
    hits: list[SearchHit]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.hits)

    @property
    def counted(self) -> str:
        """The total in words: exact, or "more than COUNT_LIMIT"."""
        return f"more than {COUNT_LIMIT:,}" if self.total > COUNT_LIMIT else f"{self.total:,}"


@dataclass(frozen=True)
class SearchResults:
    query: str
    exact: list[SearchHit]
    groups: list[SearchGroup]
    problem: str = ""

    @property
    def jump(self) -> SearchHit | None:
        """The one page the text names exactly, if there is exactly one."""
        return self.exact[0] if len(self.exact) == 1 else None

    @property
    def found(self) -> bool:
        return bool(self.exact or self.groups)


def clean_query(raw: str) -> tuple[str, str]:
    """The text to search for and, when it cannot be searched, why (in words for the page)."""
    text = raw.strip()
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in text):
        printable = "".join(char for char in text if unicodedata.category(char) not in ("Cc", "Cs"))
        return printable[:MAX_QUERY_LENGTH], "Search text cannot contain control characters (such as NUL bytes)."
    if len(text) > MAX_QUERY_LENGTH:
        return text[:MAX_QUERY_LENGTH], f"Search text is limited to {MAX_QUERY_LENGTH} characters; type less."
    return text, ""


def search(raw: str) -> SearchResults:
    """Everything ``raw`` names or partly names; one query per kind (at most eleven), whatever matches."""
    text, problem = clean_query(raw)
    if problem or not text:
        return SearchResults(text, [], [], problem)
    with planned_for_their_values():
        exact = _exact_identifiers(text)
        groups: list[SearchGroup] = []
        for find in PARTIAL:
            group, exact_hit = find(text)
            if exact_hit is not None:
                exact.append(exact_hit)
            if group.total:
                groups.append(group)
    return SearchResults(text, exact, groups)


def _exact_identifiers(text: str) -> list[SearchHit]:
    hits: list[SearchHit] = []
    if ":" in text:
        for dv in DatasetVersion.objects.by_key(text).select_related("dataset")[:1]:
            hits.append(SearchHit("dataset_version", dv.key, f"Dataset version {dv.key}"))
    if "/" in text:
        for mv in ModelVersion.objects.by_key(text).select_related("registered_model")[:1]:
            hits.append(SearchHit("model", mv.registered_model.name, f"Model version {mv.key}", mv.version))
    if HEX_RE.fullmatch(text):
        for commit in Commit.objects.by_prefix(text).select_related("repository")[:GROUP_LIMIT]:
            hits.append(SearchHit("commit", commit.sha, f"Commit {commit.short_sha} in {commit.repository.name}"))
    if len(text) >= 4 and " " not in text:
        for run in ExperimentRun.objects.filter(run_id__startswith=text).order_by("run_id")[:GROUP_LIMIT]:
            hits.append(SearchHit("run", run.run_id, f"MLflow run {run.name or run.run_id} ({run.run_id})"))
    return hits


def _containing(queryset: QuerySet[Any], field: str, text: str, *, ranked: bool = True) -> QuerySet[Any]:
    """Rows whose ``field`` contains ``text`` in any case, each carrying the count of them up to
    COUNT_LIMIT + 1 (``total``); ``ranked`` adds ``rank``: exact (0), prefix (1), anywhere (2).

    The count is an uncorrelated subquery, computed once: unlike a window count it does not make
    the database hold every match to return the first twenty. It counts the first COUNT_LIMIT + 1
    matches only, so a text that matches a whole table stops reading there.
    """
    matching = queryset.filter(**{f"{field}__icontains": text})
    first = matching.order_by().values("pk")[: COUNT_LIMIT + 1]
    count = queryset.model.objects.filter(pk__in=first).order_by().values(n=Func(F("pk"), function="COUNT"))
    found = matching.annotate(total=Subquery(count, output_field=IntegerField()))
    if not ranked:
        return found
    return found.annotate(
        rank=Case(
            When(**{f"{field}__iexact": text}, then=Value(0)),
            When(**{f"{field}__istartswith": text}, then=Value(1)),
            default=Value(2),
        )
    )


Row = dict[str, Any]


def _group(kind: str, title: str, rows: list[Row], hit: Callable[[Row], SearchHit]) -> SearchGroup:
    return SearchGroup(kind, title, [hit(row) for row in rows], rows[0]["total"] if rows else 0)


def _named_exactly(rows: list[Row], kind: str, label: str) -> SearchHit | None:
    """The first row when its name is the text itself (ranked 0): a page to jump to."""
    if rows and rows[0]["rank"] == 0:
        return SearchHit(kind, rows[0]["name"], f"{label} {rows[0]['name']}")
    return None


Found = tuple[SearchGroup, SearchHit | None]


def _releases(text: str) -> Found:
    rows = list(
        _containing(Release.objects.all(), "name", text)
        .order_by("rank", "-created_at", "-pk")
        .values("name", "state", "rank", "total")[:GROUP_LIMIT]
    )
    group = _group("release", "Releases", rows, lambda r: SearchHit("release", r["name"], r["name"], note=r["state"]))
    return group, _named_exactly(rows, "release", "Release")


def _models(text: str) -> Found:
    rows = list(
        _containing(RegisteredModel.objects.all(), "name", text)
        .order_by("rank", "name")
        .values("name", "rank", "total")[:GROUP_LIMIT]
    )
    group = _group("model", "Registered models", rows, lambda r: SearchHit("model", r["name"], r["name"]))
    return group, _named_exactly(rows, "model", "Registered model")


def _endpoints(text: str) -> Found:
    rows = list(
        _containing(Endpoint.objects.all(), "name", text)
        .order_by("rank", "name")
        .values("name", "environment", "rank", "total")[:GROUP_LIMIT]
    )
    group = _group(
        "endpoint", "Endpoints", rows, lambda r: SearchHit("endpoint", r["name"], r["name"], note=r["environment"])
    )
    return group, _named_exactly(rows, "endpoint", "Endpoint")


def _dataset_versions(text: str) -> Found:
    rows = list(
        _containing(DatasetVersion.objects.all(), "dataset__name", text)
        .order_by("rank", "dataset__name", "-version")
        .values("dataset__name", "version", "status", "rank", "total")[:GROUP_LIMIT]
    )

    def hit(row: Row) -> SearchHit:
        key = f"{row['dataset__name']}:{row['version']}"
        return SearchHit("dataset_version", key, key, note="" if row["status"] == "active" else row["status"])

    return _group("dataset_version", "Dataset versions", rows, hit), None


def _git_tags(text: str) -> Found:
    rows = list(
        _containing(GitTag.objects.all(), "name", text)
        .order_by("rank", "name", "repository__name")
        .values("name", "commit__sha", "repository__name", "moved_to_sha", "rank", "total")[:GROUP_LIMIT]
    )

    def hit(row: Row) -> SearchHit:
        note = f"commit {row['commit__sha'][:7]} in {row['repository__name']}"
        if row["moved_to_sha"]:
            note += f"; moved to {row['moved_to_sha'][:7]}"
        return SearchHit("commit", row["commit__sha"], row["name"], note=note)

    return _group("git_tag", "Git tags", rows, hit), None


def _feature_views(text: str) -> Found:
    # A feature view has no page of its own: it links to the newest run that used it (the run page
    # shows everything downstream of it).
    newest_run = ExperimentRun.objects.filter(feature_pipeline_version=OuterRef("pk")).order_by("-start_time", "-pk")
    view = FeaturePipelineVersion.objects.annotate(
        view=Concat(F("pipeline__name"), Value("_v"), Cast("version", CharField()), output_field=CharField()),
        run_id=Subquery(newest_run.values("run_id")[:1]),
        run_name=Subquery(newest_run.values("name")[:1]),
    )
    rows = list(
        _containing(view, "view", text)
        .order_by("rank", "pipeline__name", "-version")
        .values("view", "run_id", "run_name", "rank", "total")[:GROUP_LIMIT]
    )

    def hit(row: Row) -> SearchHit:
        if not row["run_id"]:
            return SearchHit("", "", row["view"], note="no synced run uses it")
        return SearchHit("run", row["run_id"], row["view"], note=f"newest run {row['run_name'] or row['run_id']}")

    return _group("feature_view", "Feature views", rows, hit), None


def _run_authors(text: str) -> Found:
    # Newest first by row, not ranked: one author can have a hundred thousand runs, and reading the
    # primary key backwards stops at the twentieth instead of sorting them all.
    rows = list(
        _containing(ExperimentRun.objects.all(), "user", text, ranked=False)
        .order_by("-pk")
        .values("run_id", "name", "user", "total")[:GROUP_LIMIT]
    )

    def hit(row: Row) -> SearchHit:
        return SearchHit("run", row["run_id"], row["name"] or row["run_id"], note=f"by {row['user']}")

    return _group("run_author", "MLflow runs by author", rows, hit), None


# In the order the results page lists them.
PARTIAL: tuple[Callable[[str], Found], ...] = (
    _releases,
    _models,
    _endpoints,
    _dataset_versions,
    _feature_views,
    _git_tags,
    _run_authors,
)
