"""Read side of the chain: trace, digest, completeness, live, rollback target, impact.

Every function here runs a fixed number of queries whatever the number of rows, so the
pages and API endpoints built on them stay constant-query.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypedDict

from django.conf import settings
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from audit.models import canonical_json
from releases.models import (
    Approval,
    Commit,
    DatasetDigest,
    DatasetVersion,
    Deployment,
    Endpoint,
    ExperimentRun,
    ModelVersion,
    RegisteredModel,
    Release,
    RunDatasetInput,
)

# The six links, in chain order, with the incident each missing one makes hard to debug.
LINKS: tuple[tuple[str, str, str], ...] = (
    (
        "code",
        "Git commit",
        "No Git commit: nobody can rebuild this model or tell which code change caused a regression.",
    ),
    ("data", "Dataset version", "No dataset version: a data bug and a code bug look the same."),
    (
        "features",
        "Feature pipeline version",
        "No feature pipeline version: training/serving skew cannot be traced to a feature change.",
    ),
    ("experiment", "MLflow run", "No MLflow run: the params and metrics behind this model cannot be checked."),
    ("model", "Model version", "No registry version: nobody can prove which artifact is serving."),
    (
        "deployment",
        "Endpoint",
        "Not deployed anywhere: there is no record of where it ran and nothing to roll back from.",
    ),
)
# Links a release must have before it can be approved (deployment comes after approval).
APPROVAL_LINKS = ("code", "data", "features", "experiment", "model")


@dataclass(frozen=True)
class Link:
    key: str
    label: str
    present: bool
    identifiers: list[str]
    explanation: str
    warnings: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        if not self.present:
            return "missing"
        return "warning" if self.warnings else "complete"


def traced_releases() -> QuerySet[Release]:
    """Releases with the whole chain loaded in a fixed number of queries."""
    return Release.objects.with_chain().prefetch_related(
        Prefetch(
            "model_version__run__dataset_inputs",
            queryset=RunDatasetInput.objects.select_related("dataset_version__dataset").order_by(
                "context", "dataset_version__dataset__name", "dataset_version__version"
            ),
        ),
        Prefetch("approvals", queryset=Approval.objects.select_related("approver").order_by("signed_at", "id")),
        Prefetch(
            "deployments",
            queryset=Deployment.objects.select_related("endpoint").order_by("-deployed_at", "-id"),
        ),
    )


@dataclass
class Trace:
    """The full chain of one release, built from rows already loaded by ``traced_releases``."""

    release: Release

    @property
    def model_version(self) -> ModelVersion:
        return self.release.model_version

    @property
    def run(self) -> ExperimentRun | None:
        return self.release.model_version.run

    @property
    def commit(self) -> Commit | None:
        if self.release.commit is not None:
            return self.release.commit
        return self.run.commit if self.run is not None else None

    @property
    def commit_sha(self) -> str:
        if self.commit is not None:
            return self.commit.sha
        return self.run.commit_sha if self.run is not None else ""

    @property
    def dataset_inputs(self) -> list[RunDatasetInput]:
        return list(self.run.dataset_inputs.all()) if self.run is not None else []

    @property
    def dataset_versions(self) -> list[DatasetVersion]:
        seen: dict[int, DatasetVersion] = {}
        for item in self.dataset_inputs:
            seen.setdefault(item.dataset_version_id, item.dataset_version)
        return list(seen.values())

    @property
    def feature_version(self) -> Any:
        return self.run.feature_pipeline_version if self.run is not None else None

    @property
    def approvals(self) -> list[Approval]:
        return list(self.release.approvals.all())

    @property
    def deployments(self) -> list[Deployment]:
        return list(self.release.deployments.all())

    def warnings(self) -> dict[str, list[str]]:
        """Problems per link: a quarantined or mutated dataset, a moved tag, an unresolved commit."""
        found: dict[str, list[str]] = {key: [] for key, _, _ in LINKS}
        tag = self.release.git_tag
        if tag is not None and tag.moved:
            found["code"].append(f"Tag {tag.name} moved from {tag.commit.short_sha} to {tag.moved_to_sha[:7]}.")
        if self.commit is None and self.commit_sha:
            found["code"].append(f"Commit {self.commit_sha[:12]} is not in any synced repository.")
        for version in self.dataset_versions:
            if version.is_quarantined:
                found["data"].append(f"{version.key} is quarantined: {version.status_reason}")
            if version.mutated:
                found["data"].append(f"{version.key} was changed in place: {version.mutation_detail}")
        if self.run is not None:
            found["experiment"].extend(str(w) for w in self.run.warnings)
        return found

    @cached_property
    def links(self) -> list[Link]:
        # Cached: list pages ask for links, completeness and warnings of the same trace several times.
        warnings = self.warnings()
        identifiers: dict[str, list[str]] = {
            "code": [self.commit_sha] if self.commit_sha else [],
            "data": [f"{item.dataset_version.key} ({item.context})" for item in self.dataset_inputs],
            "features": [self.feature_version.key] if self.feature_version else [],
            "experiment": [self.run.run_id] if self.run else [],
            "model": [self.model_version.key],
            "deployment": sorted({d.endpoint.name for d in self.deployments}),
        }
        return [
            Link(key, label, bool(identifiers[key]), identifiers[key], explanation, warnings[key])
            for key, label, explanation in LINKS
        ]

    @property
    def missing_for_approval(self) -> list[Link]:
        return [link for link in self.links if link.key in APPROVAL_LINKS and not link.present]

    @property
    def completeness(self) -> tuple[int, int]:
        links = self.links
        return sum(1 for link in links if link.present), len(links)

    def chain(self) -> dict[str, Any]:
        """The canonical content that the lineage digest covers and approvals sign."""
        tag = self.release.git_tag
        run = self.run
        return {
            "release": self.release.name,
            "model_version": {
                "key": self.model_version.key,
                "artifact_uri": self.model_version.artifact_uri,
                "source_run_id": self.model_version.source_run_id,
            },
            "run": {"run_id": run.run_id, "server": run.server.name, "params": run.params} if run else None,
            "commit": self.commit_sha or None,
            "git_tag": {"name": tag.name, "sha": tag.commit.sha, "moved_to": tag.moved_to_sha} if tag else None,
            "datasets": [
                {
                    "key": item.dataset_version.key,
                    "context": item.context,
                    "content_hash": item.dataset_version.content_hash,
                    "status": item.dataset_version.status,
                    "mutated": item.dataset_version.mutated,
                }
                for item in self.dataset_inputs
            ],
            "feature_pipeline_version": self.feature_version.key if self.feature_version else None,
            "validation_report_uri": self.release.validation_report_uri,
        }

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(canonical_json(self.chain()).encode()).hexdigest()

    def approval_state(self) -> ApprovalState:
        return ApprovalState.of(self)


@dataclass(frozen=True)
class ApprovalState:
    valid: list[Approval]
    stale: list[tuple[Approval, list[str]]]
    rejections: list[Approval]
    required: int

    @property
    def is_valid(self) -> bool:
        return len({a.approver_id for a in self.valid}) >= self.required

    @property
    def invalidated(self) -> bool:
        """Approved once, but the chain has changed since, so the approval no longer counts."""
        return not self.is_valid and bool(self.stale)

    @classmethod
    def of(cls, trace: Trace) -> ApprovalState:
        digest = trace.digest
        chain = trace.chain()
        valid: list[Approval] = []
        stale: list[tuple[Approval, list[str]]] = []
        rejections: list[Approval] = []
        for approval in trace.approvals:
            if approval.decision == Approval.Decision.REJECTED:
                rejections.append(approval)
            elif approval.signed_digest == digest:
                valid.append(approval)
            else:
                stale.append((approval, chain_changes(approval.signed_chain, chain)))
        return cls(valid, stale, rejections, settings.LINEAGE_REQUIRED_APPROVALS)


def chain_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Plain-English differences between two signed chains, for 'approval no longer valid'."""
    changes: list[str] = []
    old_sets = {d["key"]: d for d in before.get("datasets", [])}
    new_sets = {d["key"]: d for d in after.get("datasets", [])}
    for key in sorted(old_sets.keys() | new_sets.keys()):
        old, new = old_sets.get(key), new_sets.get(key)
        if old is None:
            changes.append(f"dataset {key} was added")
        elif new is None:
            changes.append(f"dataset {key} was removed")
        else:
            for attr in ("status", "mutated", "content_hash"):
                if old.get(attr) != new.get(attr):
                    changes.append(f"dataset {key} {attr} changed from {old.get(attr)} to {new.get(attr)}")
    old_tag, new_tag = before.get("git_tag") or {}, after.get("git_tag") or {}
    if old_tag.get("moved_to") != new_tag.get("moved_to"):
        changes.append(f"tag {new_tag.get('name')} moved to {str(new_tag.get('moved_to'))[:7]}")
    for key in ("commit", "run", "model_version", "feature_pipeline_version", "validation_report_uri"):
        if before.get(key) != after.get(key):
            changes.append(f"{key.replace('_', ' ')} changed")
    return changes or ["the lineage digest differs"]


def trace(name: str) -> Trace:
    """The trace of one release (raises Release.DoesNotExist)."""
    return Trace(traced_releases().get(name=name))


def previous_release(release: Release) -> Release | None:
    """The release of the same registered model created just before this one."""
    return (
        Release.objects.with_chain()
        .filter(
            model_version__registered_model_id=release.model_version.registered_model_id,
            created_at__lt=release.created_at,
        )
        .order_by("-created_at", "-id")
        .first()
    )


# Live and rollback ---------------------------------------------------------------------------


def restorable(prefix: str = "") -> Q:
    """Condition for a release safe to restore: approved (so not retired), clean data, tag not moved.

    ``prefix`` points at the release from another model (``"release__"`` from a deployment). The data
    check is a correlated NOT EXISTS on the release's own run, so it touches a handful of index
    entries per candidate instead of every run input of the whole history.
    """
    unsafe_input = RunDatasetInput.objects.filter(
        run_id=OuterRef(f"{prefix}model_version__run_id"),
        dataset_version__in=DatasetVersion.objects.unsafe().values("pk"),
    )
    return (
        Q(**{f"{prefix}state": Release.State.APPROVED})
        & ~Q(**{f"{prefix}git_tag__moved_to_sha__gt": ""})
        & Q(~Exists(unsafe_input))
    )


class LiveAnnotations(TypedDict):
    live_deployment_id: int | None
    live_release_id: int | None
    live_since: datetime.datetime | None
    live_release_created: datetime.datetime | None
    rollback_release_id: int | None


if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    EndpointWithLive = WithAnnotations[Endpoint, LiveAnnotations]
else:
    EndpointWithLive = Endpoint


def endpoints_with_live(when: datetime.datetime | None = None) -> QuerySet[EndpointWithLive]:
    """Endpoints annotated with their live deployment at ``when`` and its rollback target (one query)."""
    when = when or timezone.now()
    live = Deployment.objects.filter(endpoint=OuterRef("pk")).live_at(when)
    endpoints = Endpoint.objects.annotate(
        live_deployment_id=Subquery(live.values("id")[:1]),
        live_release_id=Subquery(live.values("release_id")[:1]),
        live_since=Subquery(live.values("deployed_at")[:1]),
        live_release_created=Subquery(live.values("release__created_at")[:1]),
    )
    target = (
        Deployment.objects.filter(
            endpoint=OuterRef("pk"),
            deployed_at__lt=OuterRef("live_since"),
            release__created_at__lt=OuterRef("live_release_created"),
        )
        .filter(restorable("release__"))
        .exclude(release_id=OuterRef("live_release_id"))
        .order_by("-deployed_at", "-id")
    )
    annotated: QuerySet[EndpointWithLive] = endpoints.annotate(
        rollback_release_id=Subquery(target.values("release_id")[:1])
    )
    return annotated


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: Endpoint
    live: Deployment | None
    live_trace: Trace | None
    rollback_target: Release | None

    @property
    def rollback_blocker(self) -> str:
        """Why there is no rollback target, in words an on-call engineer can act on."""
        if self.rollback_target is not None:
            return ""
        if self.live is None:
            return "Nothing is live on this endpoint."
        return (
            "No earlier release on this endpoint is approved, unretired and free of quarantined data; "
            "deploy a known-good release explicitly."
        )


def endpoint_statuses(
    endpoints: QuerySet[Endpoint] | None = None, when: datetime.datetime | None = None
) -> list[EndpointStatus]:
    """Live release, its trace and the rollback target of each endpoint (four queries in all)."""
    annotated = endpoints_with_live(when)
    if endpoints is not None:
        annotated = annotated.filter(pk__in=endpoints.values("pk"))
    rows = list(annotated)
    live_ids = [row.live_deployment_id for row in rows if row.live_deployment_id]
    deployments = Deployment.objects.select_related("actor_user").in_bulk(live_ids)
    release_ids = {d.release_id for d in deployments.values()} | {
        r.rollback_release_id for r in rows if r.rollback_release_id
    }
    releases = traced_releases().in_bulk(release_ids)
    statuses = []
    for row in rows:
        live = deployments.get(row.live_deployment_id) if row.live_deployment_id else None
        live_release = releases.get(live.release_id) if live else None
        if live is not None and live_release is not None:
            live.release = live_release
        statuses.append(
            EndpointStatus(
                endpoint=row,
                live=live,
                live_trace=Trace(live_release) if live_release else None,
                rollback_target=releases.get(row.rollback_release_id) if row.rollback_release_id else None,
            )
        )
    return statuses


def live_at(endpoint: Endpoint, when: datetime.datetime) -> Deployment | None:
    """The deployment live on ``endpoint`` at ``when`` (the latest at or before it)."""
    return endpoint.deployments.live_at(when).select_related("release").first()


def rollback_target(endpoint: Endpoint, when: datetime.datetime | None = None) -> Release | None:
    """The release a rollback of ``endpoint`` would restore, or None."""
    row = endpoints_with_live(when).filter(pk=endpoint.pk).values("rollback_release_id").first()
    if not row or row["rollback_release_id"] is None:
        return None
    return Release.objects.with_chain().get(pk=row["rollback_release_id"])


# Impact --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Impact:
    runs: list[ExperimentRun]
    model_versions: list[ModelVersion]
    releases: list[Release]
    deployments: list[Deployment]
    live_endpoints: list[Endpoint]

    @property
    def endpoints_ever(self) -> list[Endpoint]:
        seen: dict[int, Endpoint] = {}
        for deployment in self.deployments:
            seen.setdefault(deployment.endpoint_id, deployment.endpoint)
        return sorted(seen.values(), key=lambda e: e.name)


def _impact(run_filter: Q, release_filter: Q | None = None) -> Impact:
    runs = ExperimentRun.objects.filter(run_filter).distinct()
    model_versions = ModelVersion.objects.filter(run__in=runs.values("pk"))
    releases = Release.objects.filter(
        Q(model_version__in=model_versions.values("pk")) | (release_filter or Q(pk__in=[]))
    )
    deployments = Deployment.objects.filter(release__in=releases.values("pk"))
    live_now = endpoints_with_live().filter(live_release_id__in=releases.values("pk"))
    return Impact(
        runs=list(runs.select_related("server").order_by("-start_time", "run_id")),
        model_versions=list(model_versions.select_related("registered_model", "run")),
        releases=list(releases.select_related("model_version__registered_model").order_by("-created_at")),
        deployments=list(deployments.select_related("endpoint", "release")),
        live_endpoints=list(live_now.order_by("name")),
    )


def impact_of_dataset_version(version: DatasetVersion) -> Impact:
    """Everything downstream of one dataset version."""
    return _impact(Q(dataset_inputs__dataset_version=version))


def impact_of_commit(commit: Commit) -> Impact:
    """Everything built from one commit: runs on it, runs on features built from it, releases cut from it."""
    return _impact(
        Q(commit=commit) | Q(feature_pipeline_version__commit=commit),
        Q(commit=commit) | Q(git_tag__commit=commit),
    )


def impact_of_run(run: ExperimentRun) -> Impact:
    """Everything downstream of one run."""
    return _impact(Q(pk=run.pk))


def releases_using(versions: Iterable[DatasetVersion]) -> QuerySet[Release]:
    """Releases whose run trained or evaluated on any of ``versions``."""
    return Release.objects.filter(
        model_version__run__dataset_inputs__dataset_version__in=[v.pk for v in versions]
    ).distinct()


def audit_refs(trace: Trace) -> list[tuple[str, str]]:
    """The (object type, key) pairs whose audit events make up a release's timeline."""
    refs = [("release", trace.release.name), ("model_version", trace.model_version.key)]
    if trace.run is not None:
        refs.append(("run", f"{trace.run.server.name}:{trace.run.run_id}"))
    refs.extend(("dataset_version", version.key) for version in trace.dataset_versions)
    refs.extend(("endpoint", name) for name in {d.endpoint.name for d in trace.deployments})
    return refs


# Search --------------------------------------------------------------------------------------

HEX_RE = re.compile(r"^[0-9a-fA-F]{4,40}$")


@dataclass(frozen=True)
class SearchHit:
    """Something a search box entry names: its kind ("release", "dataset_version", ...) and key."""

    kind: str
    key: str
    label: str
    anchor: str = ""


def resolve(query: str, limit: int = 10) -> list[SearchHit]:
    """Pages a typed identifier may name: release, `dataset:version`, `model/version`, sha prefix, run id.

    At most six queries, whatever matches.
    """
    text = query.strip()
    if not text:
        return []
    hits: list[SearchHit] = []
    if ":" in text:
        for dv in DatasetVersion.objects.by_key(text).select_related("dataset")[:1]:
            hits.append(SearchHit("dataset_version", dv.key, f"Dataset version {dv.key}"))
    if "/" in text:
        for mv in ModelVersion.objects.by_key(text).select_related("registered_model")[:1]:
            hits.append(SearchHit("model", mv.registered_model.name, f"Model version {mv.key}", f"v{mv.version}"))
    for name in Release.objects.filter(name__iexact=text).values_list("name", flat=True)[:1]:
        hits.append(SearchHit("release", name, f"Release {name}"))
    for name in Endpoint.objects.filter(name__iexact=text).values_list("name", flat=True)[:1]:
        hits.append(SearchHit("endpoint", name, f"Endpoint {name}"))
    for name in RegisteredModel.objects.filter(name__iexact=text).values_list("name", flat=True)[:1]:
        hits.append(SearchHit("model", name, f"Registered model {name}"))
    if HEX_RE.match(text):
        for commit in Commit.objects.by_prefix(text).select_related("repository")[:limit]:
            hits.append(SearchHit("commit", commit.sha, f"Commit {commit.short_sha} in {commit.repository.name}"))
    if len(text) >= 4 and " " not in text:
        for run in ExperimentRun.objects.filter(run_id__startswith=text).order_by("run_id")[:limit]:
            hits.append(SearchHit("run", run.run_id, f"MLflow run {run.name or run.run_id} ({run.run_id})"))
    return hits


# Compare -------------------------------------------------------------------------------------

COMMITS_BETWEEN_LIMIT = 500


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


def _float(value: Any) -> float | None:
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
        names = sorted({ap.approver_name for ap in t.approval_state().valid})
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
    if len(found) > COMMITS_BETWEEN_LIMIT:
        found = found[:COMMITS_BETWEEN_LIMIT]
        note = f"Showing the newest {COMMITS_BETWEEN_LIMIT} commits."
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
        MetricDelta(key, _float(metrics_a.get(key)), _float(metrics_b.get(key)))
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


# Investigate and endpoint history -----------------------------------------------------------


@dataclass(frozen=True)
class Investigation:
    """What was live on an endpoint at a moment, and how it differs from the previous stable release."""

    endpoint: Endpoint
    at: datetime.datetime
    status: EndpointStatus
    comparison: Comparison | None


def investigate(endpoint_name: str, at: datetime.datetime) -> Investigation:
    """The release live on ``endpoint_name`` at ``at``, its chain, and the diff with its rollback target.

    Five queries at most. Raises Endpoint.DoesNotExist.
    """
    statuses = endpoint_statuses(Endpoint.objects.filter(name=endpoint_name), when=at)
    if not statuses:
        raise Endpoint.DoesNotExist(f"No endpoint named {endpoint_name}")
    status = statuses[0]
    comparison = None
    if status.live_trace is not None and status.rollback_target is not None:
        comparison = compare_traces(Trace(status.rollback_target), status.live_trace)
    return Investigation(status.endpoint, at, status, comparison)


DEPLOYMENT_HISTORY_LIMIT = 200


@dataclass(frozen=True)
class EndpointHistory:
    endpoint: Endpoint
    now: EndpointStatus
    deployments: list[Deployment]
    then: EndpointStatus | None
    truncated: bool


def endpoint_history(name: str, at: datetime.datetime | None = None) -> EndpointHistory:
    """An endpoint's status now, its newest deployments, and (given ``at``) what was live then.

    At most ten queries. Raises Endpoint.DoesNotExist.
    """
    statuses = endpoint_statuses(Endpoint.objects.filter(name=name))
    if not statuses:
        raise Endpoint.DoesNotExist(f"No endpoint named {name}")
    now = statuses[0]
    deployments = list(
        Deployment.objects.filter(endpoint=now.endpoint)
        .select_related("release")
        .order_by("-deployed_at", "-id")[: DEPLOYMENT_HISTORY_LIMIT + 1]
    )
    then = endpoint_statuses(Endpoint.objects.filter(pk=now.endpoint.pk), when=at)[0] if at is not None else None
    return EndpointHistory(
        now.endpoint, now, deployments[:DEPLOYMENT_HISTORY_LIMIT], then, len(deployments) > DEPLOYMENT_HISTORY_LIMIT
    )


# Datasets, commits, runs, models ------------------------------------------------------------


@dataclass(frozen=True)
class DatasetVersionDetail:
    version: DatasetVersion
    digests: list[DatasetDigest]
    impact: Impact


def dataset_version_detail(name: str, version: int) -> DatasetVersionDetail:
    """One dataset version, the digests seen for it and its impact (seven queries)."""
    found = (
        DatasetVersion.objects.select_related("dataset")
        .prefetch_related("digests")
        .get(dataset__name=name, version=version)
    )
    return DatasetVersionDetail(found, list(found.digests.all()), impact_of_dataset_version(found))


def commit_detail(sha_prefix: str) -> tuple[list[Commit], Impact | None]:
    """Commits matching a sha prefix, and the impact of the commit when exactly one matches (six queries)."""
    commits = list(Commit.objects.by_prefix(sha_prefix).select_related("repository")[:20])
    return commits, (impact_of_commit(commits[0]) if len(commits) == 1 else None)


def run_detail(run_id: str) -> tuple[ExperimentRun, Impact]:
    """One MLflow run with its inputs and its impact (seven queries). Raises ExperimentRun.DoesNotExist."""
    run = (
        ExperimentRun.objects.select_related("server", "commit__repository", "feature_pipeline_version__pipeline")
        .prefetch_related(
            Prefetch(
                "dataset_inputs",
                queryset=RunDatasetInput.objects.select_related("dataset_version__dataset").order_by(
                    "context", "dataset_version__dataset__name"
                ),
            )
        )
        .filter(run_id=run_id)
        .order_by("server__name")[:1]
        .get()
    )
    return run, impact_of_run(run)


LOWER_IS_BETTER = ("loss", "error", "rmse", "mae", "mse", "latency")


@dataclass(frozen=True)
class MetricPoint:
    version: int
    value: float
    worse: bool


@dataclass(frozen=True)
class MetricSeries:
    key: str
    points: list[MetricPoint]

    @property
    def lower_is_better(self) -> bool:
        return any(word in self.key.lower() for word in LOWER_IS_BETTER)


@dataclass(frozen=True)
class ModelHistory:
    model: RegisteredModel
    versions: list[ModelVersion]
    releases: list[Release]
    metrics: list[MetricSeries]
    endpoints: list[Endpoint]


def model_history(name: str, limit: int = 50) -> ModelHistory:
    """A registered model's newest versions, their releases and each metric across versions (four queries)."""
    model = RegisteredModel.objects.get(name=name)
    versions = list(
        ModelVersion.objects.filter(registered_model=model)
        .select_related("run__server")
        .prefetch_related(Prefetch("releases", queryset=Release.objects.order_by("-created_at")))
        .order_by("-version")[:limit]
    )
    for mv in versions:
        mv.registered_model = model
    chronological = list(reversed(versions))
    series: dict[str, list[MetricPoint]] = {}
    for mv in chronological:
        for key, raw in sorted((mv.run.metrics if mv.run else {}).items()):
            value = _float(raw)
            if value is None:
                continue
            points = series.setdefault(key, [])
            lower = any(word in key.lower() for word in LOWER_IS_BETTER)
            worse = bool(points) and (value > points[-1].value if lower else value < points[-1].value)
            points.append(MetricPoint(mv.version, value, worse))
    releases = [r for mv in versions for r in mv.releases.all()]
    endpoints = list(Endpoint.objects.filter(deployments__release__model_version__registered_model=model).distinct())
    return ModelHistory(
        model, versions, releases, [MetricSeries(k, v) for k, v in sorted(series.items())], sorted(endpoints, key=str)
    )


def release_list(*, model: str = "", state: str = "", waiting_for: Any = None) -> QuerySet[Release]:
    """Releases for the list page, newest first, filtered; rows carry their chain for completeness."""
    releases = traced_releases().order_by("-created_at", "-id")
    if model:
        releases = releases.filter(model_version__registered_model__name=model)
    if state:
        releases = releases.filter(state=state)
    if waiting_for is not None:
        releases = releases.filter(pk__in=Release.objects.pending_for(waiting_for).values("pk"))
    return releases
