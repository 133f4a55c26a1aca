"""Two releases side by side across every link."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, QuerySet
from django.db.models.expressions import RawSQL

from releases.lineage.paging import Page, numbered_page
from releases.lineage.rules import approval_state
from releases.lineage.trace import Trace, traced_releases
from releases.models import (
    Commit,
    DatasetVersion,
    Release,
)

NO_COMMITS: Page[Commit] = Page([], 0, 0, number=1)


@dataclass(frozen=True)
class Difference:
    label: str
    a: str
    b: str

    @property
    def changed(self) -> bool:
        return self.a != self.b


@dataclass(frozen=True)
class MetricDelta:
    key: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    @property
    def changed(self) -> bool:
        return self.a != self.b


@dataclass(frozen=True)
class Comparison:
    """Two releases side by side across every link; ``a`` is the baseline, ``b`` the one compared to it."""

    a: Trace
    b: Trace
    rows: list[Difference]
    params: list[Difference]
    metrics: list[MetricDelta]
    # A page of the commits in the newer release and not in the older, with their total.
    commits: Page[Commit]
    commits_note: str

    @property
    def changed_params(self) -> list[Difference]:
        return [p for p in self.params if p.changed]

    @property
    def change_count(self) -> int:
        return sum(1 for row in self.rows if row.changed) + len(self.changed_params)


def as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _datasets_by_role(trace: Trace) -> dict[str, DatasetVersion]:
    return {f"{i.dataset_version.dataset.name} ({i.context})": i.dataset_version for i in trace.dataset_inputs}


def _chain_rows(a: Trace, b: Trace) -> list[Difference]:
    def commit_text(t: Trace) -> str:
        return t.commit_sha or "none"

    def fv(t: Trace) -> str:
        return t.feature_version.key if t.feature_version else "none"

    def approvers(t: Trace) -> str:
        names = sorted({ap.approver_name for ap in approval_state(t).valid})
        return ", ".join(names) or "none"

    def endpoints(t: Trace) -> str:
        return ", ".join(sorted(t.deployed_to)) or "never deployed"

    rows = [
        Difference("State", a.release.state, b.release.state),
        Difference("Git commit", commit_text(a), commit_text(b)),
        Difference(
            "Git tag",
            a.release.git_tag.name if a.release.git_tag else "none",
            b.release.git_tag.name if b.release.git_tag else "none",
        ),
        Difference("Feature pipeline version", fv(a), fv(b)),
        Difference("MLflow run", a.run.run_id if a.run else "none", b.run.run_id if b.run else "none"),
        Difference("Model version", a.model_version.key, b.model_version.key),
        Difference(
            "Validation report", a.release.validation_report_uri or "none", b.release.validation_report_uri or "none"
        ),
        Difference("Approved by", approvers(a), approvers(b)),
        Difference("Endpoints", endpoints(a), endpoints(b)),
    ]
    sets_a, sets_b = _datasets_by_role(a), _datasets_by_role(b)
    rows[3:3] = [
        Difference(
            f"Dataset {role}",
            _dataset_text(sets_a.get(role)),
            _dataset_text(sets_b.get(role)),
        )
        for role in sorted(sets_a.keys() | sets_b.keys())
    ]
    return rows


def _dataset_text(version: DatasetVersion | None) -> str:
    if version is None:
        return "none"
    flags = "".join(
        [f" ({version.status})" if version.status != "active" else "", " (mutated)" if version.mutated else ""]
    )
    return f"{version.key} {version.content_hash}{flags}"


def _ancestry(head: Commit, base: Commit, window: tuple[datetime.datetime, datetime.datetime] | None) -> RawSQL:
    """Ids of the synced commits reached from ``head`` through parent links, without going past ``base``
    and, given ``window``, only through commits made within it: a recursive query, so no commit is read
    into Python to find them."""
    table = connection.ops.quote_name(Commit._meta.db_table)
    if connection.vendor == "postgresql":
        parents = "CROSS JOIN LATERAL jsonb_array_elements_text(c.parents) AS parent(sha)"
        parent, is_list = "parent.sha", "jsonb_typeof(c.parents) = 'array'"
    else:
        parents = "JOIN json_each(c.parents) AS parent"
        parent, is_list = "parent.value", "json_type(c.parents) = 'array'"
    within = "AND c.committed_at >= %s AND c.committed_at <= %s" if window else ""
    # Bound as the backend stores them (SQLite keeps naive UTC text, which an aware datetime would not match).
    bounds = [connection.ops.adapt_datetimefield_value(moment) for moment in window or ()]
    sql = f"""
        WITH RECURSIVE walk(sha) AS (
            SELECT %s
            UNION
            SELECT {parent} FROM walk
            JOIN {table} c ON c.repository_id = %s AND c.sha = walk.sha {within}
            {parents}
            WHERE walk.sha <> %s AND {is_list}
        )
        SELECT c.id FROM {table} c WHERE c.repository_id = %s AND c.sha IN (SELECT sha FROM walk)
    """  # noqa: S608 - the table name and the vendor's JSON functions are ours; every value is a parameter
    return RawSQL(sql, [head.sha, head.repository_id, *bounds, base.sha, head.repository_id])  # noqa: S611


def commits_between(base: Commit | None, head: Commit | None, number: int = 1) -> tuple[Page[Commit], str]:
    """Commits in ``head`` and not in ``base``, newest first: page ``number`` of them with the exact total
    (two queries; three when the parent links do not reach ``base`` and commit times decide)."""
    if base is None or head is None:
        return NO_COMMITS, "A release has no synced commit, so the commits between them are unknown."
    if base.sha == head.sha:
        return NO_COMMITS, "Both releases were built from the same commit."
    if base.repository_id != head.repository_id:
        return NO_COMMITS, "The releases were built from different repositories."
    low, high = sorted([base, head], key=lambda c: (c.committed_at is None, c.committed_at))
    window = Commit.objects.filter(repository_id=head.repository_id)
    bounds = None
    if low.committed_at and high.committed_at:
        bounds = (low.committed_at, high.committed_at)
        window = window.filter(committed_at__gte=low.committed_at, committed_at__lte=high.committed_at)
    walked = window.filter(pk__in=_ancestry(head, base, bounds))
    counts = walked.aggregate(total=Count("pk", filter=~Q(sha=base.sha)), base=Count("pk", filter=Q(sha=base.sha)))
    if counts["base"]:
        return numbered_page(_newest_first(walked.exclude(sha=base.sha)), number, count=counts["total"]), ""
    # No parent links reach the base (a shallow sync): the commits made between the two, by commit time.
    by_time = numbered_page(_newest_first(window.exclude(sha=base.sha)), number)
    if by_time.total:
        return by_time, "Parent links are not synced; showing commits by commit time."
    return by_time, f"{base.short_sha} is not an ancestor of {head.short_sha} in the synced history."


def _newest_first(commits: QuerySet[Commit]) -> QuerySet[Commit]:
    """What the list of commits shows of each, newest first (commits of unknown time last)."""
    return commits.only("sha", "author_name", "committed_at", "message").order_by(
        F("committed_at").desc(nulls_last=True), "-pk"
    )


def compare_traces(a: Trace, b: Trace, *, commits_page: int = 1) -> Comparison:
    """Compare two loaded traces (two or three queries: page ``commits_page`` of the commits between them)."""
    base, head = (a, b) if (a.release.created_at, a.release.pk) <= (b.release.created_at, b.release.pk) else (b, a)
    commits, note = commits_between(base.commit, head.commit, commits_page)
    params_a = a.run.params if a.run else {}
    params_b = b.run.params if b.run else {}
    params = [
        Difference(key, str(params_a.get(key, "—")), str(params_b.get(key, "—")))
        for key in sorted(params_a.keys() | params_b.keys())
    ]
    metrics_a = a.run.metrics if a.run else {}
    metrics_b = b.run.metrics if b.run else {}
    metrics = [
        MetricDelta(key, as_float(metrics_a.get(key)), as_float(metrics_b.get(key)))
        for key in sorted(metrics_a.keys() | metrics_b.keys())
    ]
    return Comparison(a, b, _chain_rows(a, b), params, metrics, commits, note)


def compare(a: str, b: str, *, commits_page: int = 1) -> Comparison:
    """Compare releases named ``a`` and ``b`` (seven queries at most). Raises Release.DoesNotExist naming the
    missing one."""
    loaded = {r.name: r for r in traced_releases().filter(name__in=[a, b])}
    for name in (a, b):
        if name not in loaded:
            raise Release.DoesNotExist(f"No release named {name}")
    return compare_traces(Trace(loaded[a]), Trace(loaded[b]), commits_page=commits_page)
