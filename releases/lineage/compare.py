"""Two releases side by side across every link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releases.lineage.rules import approval_state
from releases.lineage.trace import Trace, traced_releases
from releases.models import (
    Commit,
    DatasetVersion,
    Release,
)

COMMITS_BETWEEN_LIMIT = 500
# The walk reads up to COMMITS_BETWEEN_LIMIT commits; the page lists the newest of them.
COMMITS_SHOWN = 100


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
    commits: list[Commit]
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
        return ", ".join(sorted({d.endpoint.name for d in t.deployments})) or "never deployed"

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


def commits_between(base: Commit | None, head: Commit | None) -> tuple[list[Commit], str]:
    """Commits in ``head`` and not in ``base``, newest first, from one bounded query (at most one query)."""
    if base is None or head is None:
        return [], "A release has no synced commit, so the commits between them are unknown."
    if base.sha == head.sha:
        return [], "Both releases were built from the same commit."
    if base.repository_id != head.repository_id:
        return [], "The releases were built from different repositories."
    low, high = sorted([base, head], key=lambda c: (c.committed_at is None, c.committed_at))
    window = Commit.objects.filter(repository_id=head.repository_id)
    if low.committed_at and high.committed_at:
        window = window.filter(committed_at__gte=low.committed_at, committed_at__lte=high.committed_at)
    fetched = {c.sha: c for c in window.order_by("-committed_at")[: COMMITS_BETWEEN_LIMIT + 1]}
    fetched.setdefault(head.sha, head)
    found: list[Commit] = []
    seen: set[str] = set()
    pending = [head.sha]
    reached_base = False
    while pending:
        sha = pending.pop()
        if sha in seen:
            continue
        seen.add(sha)
        if sha == base.sha:
            reached_base = True
            continue
        commit = fetched.get(sha)
        if commit is None:
            continue
        found.append(commit)
        pending.extend(commit.parents or [])
    found.sort(key=lambda c: (c.committed_at is not None, c.committed_at), reverse=True)
    if reached_base:
        note = ""
    elif base.sha in fetched and len(fetched) > 1:
        # No parent links (a shallow sync): fall back to commit time within the window.
        found = [c for c in fetched.values() if c.sha != base.sha]
        found.sort(key=lambda c: (c.committed_at is not None, c.committed_at), reverse=True)
        note = "Parent links are not synced; showing commits by commit time."
    else:
        note = f"{base.short_sha} is not an ancestor of {head.short_sha} in the synced history."
    if len(found) > COMMITS_SHOWN:
        more = "+" if len(fetched) > COMMITS_BETWEEN_LIMIT else ""
        note = f"Showing the newest {COMMITS_SHOWN} of {len(found)}{more} commits."
        found = found[:COMMITS_SHOWN]
    return found, note


def compare_traces(a: Trace, b: Trace) -> Comparison:
    """Compare two loaded traces (one query: the commits between them)."""
    base, head = (a, b) if (a.release.created_at, a.release.pk) <= (b.release.created_at, b.release.pk) else (b, a)
    commits, note = commits_between(base.commit, head.commit)
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


def compare(a: str, b: str) -> Comparison:
    """Compare releases named ``a`` and ``b`` (five queries). Raises Release.DoesNotExist naming the missing one."""
    loaded = {r.name: r for r in traced_releases().filter(name__in=[a, b])}
    for name in (a, b):
        if name not in loaded:
            raise Release.DoesNotExist(f"No release named {name}")
    return compare_traces(Trace(loaded[a]), Trace(loaded[b]))
