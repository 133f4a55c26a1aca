"""The trace of a release: its six links, completeness, lineage digest and approval state."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.core.signals import setting_changed
from django.db import NotSupportedError
from django.db.models import BooleanField, Count, Expression, F, Max, Prefetch, Q, QuerySet, Subquery, Window
from django.dispatch import receiver

from audit.models import AuditEvent, canonical_json
from audit.vocabulary import object_ref
from releases.lineage.paging import PAGE_SIZE, Page, newest_page
from releases.lineage.periods import ReleasePeriod, release_periods
from releases.models import (
    Approval,
    Commit,
    DatasetVersion,
    Deployment,
    Endpoint,
    ExperimentRun,
    ModelVersion,
    Release,
    RunDatasetInput,
)
from releases.models.base import get_or_refuse
from releases.prepared import PreparedQuery, PreparedTuples, TextList

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
    # Absent by design for now: a release is deployed only after it is approved.
    not_yet: bool = False

    @property
    def state(self) -> str:
        if not self.present:
            return "pending" if self.not_yet else "missing"
        return "warning" if self.warnings else "complete"


def _dataset_inputs() -> QuerySet[RunDatasetInput]:
    return RunDatasetInput.objects.select_related("dataset_version__dataset").order_by(
        "context", "dataset_version__dataset__name", "dataset_version__version"
    )


def _approvals() -> QuerySet[Approval]:
    return Approval.objects.select_related("approver").order_by("signed_at", "id")


def _deployments() -> QuerySet[Deployment]:
    return Deployment.objects.select_related("endpoint").order_by("-deployed_at", "-id")


def traced_releases() -> QuerySet[Release]:
    """Releases with the whole chain loaded in a fixed number of queries."""
    return Release.objects.with_chain().prefetch_related(
        Prefetch("model_version__run__dataset_inputs", queryset=_dataset_inputs()),
        Prefetch("approvals", queryset=_approvals()),
        Prefetch("deployments", queryset=_deployments()),
    )


@dataclass(frozen=True)
class ToMany:
    """The links a release has several of: its run's dataset inputs, its approvals, its deployments.

    ``deployed_to`` names the endpoints it went to, the most recent first. ``deployments`` are the rows
    themselves, None for a trace read for a status (``status_traces``), which needs only the names.
    """

    dataset_inputs: list[RunDatasetInput]
    approvals: list[Approval]
    deployments: list[Deployment] | None
    deployed_to: tuple[str, ...]

    @classmethod
    def of(
        cls, dataset_inputs: list[RunDatasetInput], approvals: list[Approval], deployments: list[Deployment]
    ) -> ToMany:
        """With every deployment row (newest first), from which the endpoints they went to are named."""
        return cls(dataset_inputs, approvals, deployments, tuple(dict.fromkeys(d.endpoint.name for d in deployments)))

    @classmethod
    def prefetched(cls, release: Release) -> ToMany:
        """As ``traced_releases`` prefetched them."""
        run = release.model_version.run
        return cls.of(
            list(run.dataset_inputs.all()) if run is not None else [],
            list(release.approvals.all()),
            list(release.deployments.all()),
        )

    @classmethod
    def read(cls, release: Release) -> ToMany:
        """Read for one release with ``traced_releases``' querysets, each row linked back as its prefetch links
        it (one query each; none for the inputs of a release without a run)."""
        run = release.model_version.run
        inputs = _TRACE_INPUTS.all(run=run.pk) if run is not None else []
        approvals = _TRACE_APPROVALS.all(release=release.pk)
        deployments = _TRACE_DEPLOYMENTS.all(release=release.pk)
        for item in inputs:
            item.run = run  # type: ignore[assignment]
        for approval in approvals:
            approval.release = release
        for deployment in deployments:
            deployment.release = release
        return cls.of(inputs, approvals, deployments)


# The one-release trace runs on every API call and release page: its queries are compiled once (releases/prepared.py).
_TRACE_RELEASE = PreparedQuery(lambda name: Release.objects.with_chain().filter(name=name), name=str)
_TRACE_INPUTS = PreparedQuery(lambda run: _dataset_inputs().filter(run_id=run), run=int)
_TRACE_APPROVALS = PreparedQuery(lambda release: _approvals().filter(release_id=release), release=int)
_TRACE_DEPLOYMENTS = PreparedQuery(lambda release: _deployments().filter(release_id=release), release=int)
# And the traces of a board's page of live releases.
_STATUS_RELEASES = PreparedQuery(lambda ids: Release.objects.with_links().filter(pk__any_of=ids), ids=list)
_STATUS_INPUTS = PreparedQuery(lambda runs: _dataset_inputs().filter(run_id__any_of=runs), runs=list)
_STATUS_APPROVALS = PreparedQuery(lambda ids: _approvals().filter(release_id__any_of=ids), ids=list)
# Where each went: every endpoint once, with its newest deployment of the release, newest first.
_STATUS_WENT = PreparedTuples(
    lambda ids: (
        Deployment.objects.filter(release_id__any_of=ids)
        .values_list("release_id", "endpoint__name")
        .annotate(last=Max("deployed_at"), last_id=Max("id"))
        .order_by("-last", "-last_id")
    ),
    ids=list,
)


@dataclass
class Trace:
    """The full chain of one release, built from rows already loaded by ``traced_releases``."""

    release: Release
    # Read by ``trace``; otherwise taken from traced_releases' prefetch.
    many: ToMany | None = None

    @cached_property
    def _many(self) -> ToMany:
        return self.many if self.many is not None else ToMany.prefetched(self.release)

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
        return self._many.dataset_inputs

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
        return self._many.approvals

    @property
    def deployments(self) -> list[Deployment]:
        deployments = self._many.deployments
        if deployments is None:
            raise LookupError(f"the trace of {self.release.name} was read for a status, without its deployments")
        return deployments

    @property
    def deployed_to(self) -> tuple[str, ...]:
        """The endpoints this release went to, the most recent first."""
        return self._many.deployed_to

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
            "deployment": sorted(self.deployed_to),
        }
        # Until a release is approved, "not deployed" is the expected next step, not a gap in the record.
        awaiting_approval = self.release.state in (Release.State.DRAFT, Release.State.PENDING)
        return [
            Link(
                key,
                label,
                bool(identifiers[key]),
                identifiers[key],
                "Deployment comes after approval." if key == "deployment" and awaiting_approval else explanation,
                warnings[key],
                not_yet=key == "deployment" and awaiting_approval,
            )
            for key, label, explanation in LINKS
        ]

    @property
    def missing_for_approval(self) -> list[Link]:
        return [link for link in self.links if link.key in APPROVAL_LINKS and not link.present]

    @property
    def completeness(self) -> tuple[int, int]:
        """Links present out of the links expected by now (a deployment is not expected before approval)."""
        expected = [link for link in self.links if not link.not_yet]
        return sum(1 for link in expected if link.present), len(expected)

    @property
    def gaps(self) -> list[Link]:
        """Links that should be there by now and are not."""
        return [link for link in self.links if not link.present and not link.not_yet]

    @property
    def upcoming(self) -> list[Link]:
        """Links not there yet by design (deployment, before approval)."""
        return [link for link in self.links if link.not_yet]

    def chain(self) -> dict[str, Any]:
        """The canonical content that the lineage digest covers and approvals sign."""
        return dict(self._chain)

    @cached_property
    def _chain(self) -> dict[str, Any]:
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
                    # Only once quarantined, so the digests of never-quarantined data stay what was signed.
                    **({"quarantine": q} if (q := item.dataset_version.quarantine_history) else {}),
                }
                for item in self.dataset_inputs
            ],
            "feature_pipeline_version": self.feature_version.key if self.feature_version else None,
            "validation_report_uri": self.release.validation_report_uri,
        }

    @cached_property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(canonical_json(self._chain).encode()).hexdigest()


@dataclass(frozen=True)
class _Read:
    """What a status trace is built from: its rows as the database driver gave them (``PreparedQuery.rows``),
    and where the release went."""

    release: tuple[Any, ...]
    inputs: tuple[tuple[Any, ...], ...]
    approvals: tuple[tuple[Any, ...], ...]
    went: tuple[str, ...]


class KeptTraces:
    """Status traces kept between requests, each with the rows it was built from.

    A trace is a function of its rows: the same rows give the same links, digest and status. So a trace
    read again is taken from here when every row it is built from is equal to the row read now (each
    column's value, as the driver gave it); when any differs, the trace is built anew and kept instead.
    Nothing is invalidated by a write, so no write can be missed: what is compared is what was just read,
    in the reader's own transaction. What is saved is building the model instances and deriving the
    chain and its digest from them (most of a board's work); the rows are read every time.

    Kept traces are shared by the requests of one process, so they are read, never changed. Bounded:
    the least recently used goes first.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[str, int], tuple[_Read, Trace]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, using: str, pk: int) -> tuple[_Read, Trace] | None:
        with self._lock:
            found = self._kept.get((using, pk))
            if found is not None:
                self._kept.move_to_end((using, pk))
            return found

    def keep(self, using: str, pk: int, read: _Read, trace: Trace) -> None:
        with self._lock:
            self._kept[using, pk] = read, trace
            self._kept.move_to_end((using, pk))
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def forget(self) -> None:
        with self._lock:
            self._kept.clear()


# A board shows 25 live releases a page; an endpoint's page, a rollback, the API's endpoint list a few more.
KEPT = KeptTraces(size=1024)


@receiver(setting_changed)
def _forget_kept(**_: object) -> None:
    """A test changed a setting: build every trace again, as the prepared queries are compiled again."""
    KEPT.forget()


def status_traces(release_ids: Iterable[int]) -> dict[int, Trace]:
    """The traces of these releases, by id, for what shows many at once (the board, an endpoint's status):
    the links (``with_links``, without the commits' repositories or who created the release) and where each
    release went as endpoint names, not every deployment row (a release live on a hundred endpoints has
    thousands). Four queries.

    Each trace is taken from ``KEPT`` when its rows are the ones it was built from, and otherwise built from
    the rows just read: its inputs and approvals handed to it as ``ToMany.read`` does for one release, not
    through ``prefetch_related``, whose bookkeeping cost more than the queries."""
    ids = sorted(set(release_ids))
    release_rows = _STATUS_RELEASES.rows(ids=ids)
    using = release_rows.using
    release_id = _STATUS_RELEASES.column("id")
    by_pk = {row[release_id]: row for row in release_rows}
    kept = {pk: found for pk in by_pk if (found := KEPT.get(using, pk)) is not None}
    # Each release's run: the kept trace's when the release's row is the one it was built from.
    changed = [row for pk, row in by_pk.items() if pk not in kept or kept[pk][0].release != row]
    releases = {release.pk: release for release in _STATUS_RELEASES.instances(release_rows.some(changed))}
    run_of = {pk: (releases[pk] if pk in releases else kept[pk][1].release).model_version.run_id for pk in by_pk}
    input_rows = _STATUS_INPUTS.rows(runs=sorted({run for run in run_of.values() if run is not None}))
    inputs: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    run_id = _STATUS_INPUTS.column("run_id")
    for row in input_rows:
        inputs[row[run_id]].append(row)
    approval_rows = _STATUS_APPROVALS.rows(ids=ids)
    approvals: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    approved_id = _STATUS_APPROVALS.column("release_id")
    for row in approval_rows:
        approvals[row[approved_id]].append(row)
    went: dict[int, list[str]] = defaultdict(list)
    for release_id, endpoint_name, _, _ in _STATUS_WENT.all(ids=ids):
        went[release_id].append(endpoint_name)

    traces: dict[int, Trace] = {}
    new: dict[int, _Read] = {}
    for pk, row in by_pk.items():
        run = run_of[pk]
        read = _Read(row, tuple(inputs[run]) if run is not None else (), tuple(approvals[pk]), tuple(went[pk]))
        if pk in kept and kept[pk][0] == read:
            traces[pk] = kept[pk][1]
        else:
            new[pk] = read
    # What is new is built from the rows just read, every release with instances of its own.
    releases.update(
        (release.pk, release)
        for release in _STATUS_RELEASES.instances(release_rows.some(by_pk[pk] for pk in new if pk not in releases))
    )
    built_inputs = iter(_STATUS_INPUTS.instances(input_rows.some(row for read in new.values() for row in read.inputs)))
    built_approvals = iter(
        _STATUS_APPROVALS.instances(approval_rows.some(row for read in new.values() for row in read.approvals))
    )
    for pk, read in new.items():
        release = releases[pk]
        its_inputs = [next(built_inputs) for _ in read.inputs]
        for item in its_inputs:
            item.run = release.model_version.run  # type: ignore[assignment]
        its_approvals = [next(built_approvals) for _ in read.approvals]
        for approval in its_approvals:
            approval.release = release
        traces[pk] = Trace(release, ToMany(its_inputs, its_approvals, None, read.went))
        KEPT.keep(using, pk, read, traces[pk])
    return traces


def trace(name: str) -> Trace:
    """The trace of one release (NotFound when there is none)."""
    release = get_or_refuse(_TRACE_RELEASE, "release", name=name)
    return Trace(release, ToMany.read(release))


def previous_release(release: Release) -> Release | None:
    """The release of the same registered model created just before this one (its row, not its chain)."""
    return _PREVIOUS.first(release=release.pk, model=release.model_version.registered_model_id)


def _previous(release: int, model: int) -> QuerySet[Release]:
    created = Release.objects.filter(pk=release).values("created_at")[:1]
    return Release.objects.filter(model_version__registered_model_id=model, created_at__lt=Subquery(created)).order_by(
        "-created_at", "-id"
    )[:1]


# On every release page: compiled once (releases/prepared.py).
_PREVIOUS = PreparedQuery(_previous, release=int, model=int)


def release_events(trace: Trace, periods: Sequence[ReleasePeriod] | None = None) -> QuerySet[AuditEvent]:
    """A release's audit timeline, oldest first (``release_scope``)."""
    return AuditEvent.objects.filter(release_scope(trace, periods)).order_by("seq")


def release_timeline(trace: Trace, periods: Sequence[ReleasePeriod] | None = None) -> Page[AuditEvent]:
    """The newest ``PAGE_SIZE`` events of a release's timeline (``release_events``) with their total: the first
    page ``keyset_page`` gives of it, in one query compiled once per connection instead of two compiled on
    every call (a release's page shows it on every view)."""
    found = _TIMELINE.all(**_scope_values(trace, periods))
    return newest_page(found, found[0].total if found else 0, ("seq",))  # type: ignore[attr-defined]


def release_scope(trace: Trace, periods: Sequence[ReleasePeriod] | None = None) -> Q:
    """Which audit events belong to a release: events about it and its chain, the endpoint events that
    name it, and those of the deployments that ended its time on an endpoint (often a rollback).

    ``periods`` are the release's live periods when the caller has them (``release_periods``, read here
    otherwise). Other endpoint events are left out, so a busy endpoint's history of other releases does
    not drown the timeline.
    """
    return Q(InReleaseScope(**_scope_values(trace, periods)))


def _scope_values(trace: Trace, periods: Sequence[ReleasePeriod] | None) -> dict[str, Any]:
    """What ``InReleaseScope`` takes for this release, by name."""
    if periods is None:
        periods = release_periods(trace.release, trace.deployments)
    values: dict[str, Any] = {_subject_name(object_type): [] for object_type in SUBJECT_TYPES}
    for object_type, object_key in map(
        object_ref, [trace.release, trace.model_version, *trace.dataset_versions, *filter(None, [trace.run])]
    ):
        values[_subject_name(object_type)].append(object_key)
    endings = [period.ended for period in periods if period.ended is not None]
    return {
        **{name: sorted(keys) for name, keys in values.items()},
        "endpoints": sorted({object_ref(d.endpoint)[1] for d in trace.deployments}),
        "release": trace.release.name,
        "ended_endpoints": [object_ref(ended.endpoint)[1] for ended in endings],
        "ended_releases": [ended.release.name for ended in endings],
        "ended_times": [ended.deployed_at.isoformat() for ended in endings],
    }


def _subject_name(object_type: str) -> str:
    """The name ``InReleaseScope`` takes the keys of one kind of subject by (``of_release``)."""
    return f"of_{object_type}"


class InReleaseScope(Expression):
    """The condition of ``release_scope`` on audit events, as SQL of one shape whatever the release: each list
    (the keys of each kind of subject, the endpoints, the deployments that ended its periods) is one array
    parameter. Django compiles it in microseconds, where one condition per subject and per ended period took
    milliseconds for a release deployed a few times; and a prepared query (``release_timeline``) compiles it
    once with placeholders for every list.

    Each part names the object type and keys first, so the database finds each in the index on
    (object_type, object_key) and checks the rest on those rows only. The deployments that ended the
    release's periods come as three lists of one length: their endpoints, releases and times.
    """

    conditional = True

    def __init__(
        self,
        *,
        endpoints: list[str],
        release: str,
        ended_endpoints: list[str],
        ended_releases: list[str],
        ended_times: list[str],
        **subjects: list[str],
    ) -> None:
        super().__init__(output_field=BooleanField())
        # Every kind of subject a chain has, each with its keys (maybe none): the SQL is the same for any release.
        expected = {_subject_name(object_type) for object_type in SUBJECT_TYPES}
        if subjects.keys() != expected:
            raise TypeError(f"a release's timeline takes the subjects {', '.join(sorted(expected))}")
        if not len(ended_endpoints) == len(ended_releases) == len(ended_times):
            raise TypeError("the deployments that ended a release's periods come as three lists of one length")
        # Each list as a ``TextList``: one parameter on either database (a prepared query's placeholders are one).
        self.subjects = [
            (object_type, TextList.checked(subjects[_subject_name(object_type)])) for object_type in SUBJECT_TYPES
        ]
        self.endpoints = TextList.checked(endpoints)
        self.release = release
        self.ended = tuple(TextList.checked(values) for values in (ended_endpoints, ended_releases, ended_times))
        self.columns = [F("object_type"), F("object_key"), F("new")]

    def get_source_expressions(self) -> list[Any]:
        return self.columns

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.columns = list(exprs)

    def _sql(self, compiler: Any, parts: tuple[str, str, str]) -> str:
        """The condition: one ``parts[0]`` for each kind of subject, then ``parts[1]`` (the endpoint events that
        name the release) and ``parts[2]`` (those of the deployments that ended its periods), on the columns
        as the query names them."""
        object_type, object_key, new = (compiler.compile(column)[0] for column in self.columns)
        subject, endpoint, ended = (part.format(type=object_type, key=object_key, new=new) for part in parts)
        return "(" + " OR ".join([subject] * len(self.subjects) + [endpoint, ended]) + ")"

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        params: list[Any] = [value for kind, keys in self.subjects for value in (kind, keys)]
        params += [Endpoint.audit_type, self.endpoints, self.release]
        params += [Endpoint.audit_type, self.ended[0], *self.ended]
        return self._sql(compiler, _POSTGRESQL_SCOPE), params

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        params: list[Any] = [value for kind, keys in self.subjects for value in (kind, keys)]
        params += [Endpoint.audit_type, self.endpoints, self.release]
        params += [Endpoint.audit_type, *self.ended]
        return self._sql(compiler, _SQLITE_SCOPE), params

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        raise NotSupportedError(f"a release's timeline is written for PostgreSQL and SQLite, not {connection.vendor}")


# ``InReleaseScope`` on each database: events about a subject of one kind, endpoint events naming the release,
# events of the deployments that ended its periods. {type}, {key} and {new} are the columns.
_POSTGRESQL_SCOPE = (
    "({type} = %s AND {key} = ANY(%s::text[]))",
    "({type} = %s AND {key} = ANY(%s::text[]) AND {new} -> 'release' = to_jsonb(%s::text))",
    "({type} = %s AND {key} = ANY(%s::text[]) AND EXISTS (SELECT 1 FROM unnest(%s::text[], %s::text[], %s::text[]) "
    "AS ended(endpoint, release, deployed_at) WHERE ended.endpoint = {key} "
    "AND {new} -> 'release' = to_jsonb(ended.release) AND {new} -> 'deployed_at' = to_jsonb(ended.deployed_at)))",
)
_SQLITE_SCOPE = (
    "({type} = %s AND {key} IN (SELECT value FROM json_each(%s)))",
    "({type} = %s AND {key} IN (SELECT value FROM json_each(%s)) AND json_extract({new}, '$.release') = %s)",
    "({type} = %s AND EXISTS (SELECT 1 FROM json_each(%s) AS ended_endpoint JOIN json_each(%s) AS ended_release "
    "ON ended_release.key = ended_endpoint.key JOIN json_each(%s) AS ended_at ON ended_at.key = ended_endpoint.key "
    "WHERE ended_endpoint.value = {key} AND json_extract({new}, '$.release') = ended_release.value "
    "AND json_extract({new}, '$.deployed_at') = ended_at.value))",
)
# The kinds of subject a release's chain has events about, besides its endpoints.
SUBJECT_TYPES = (Release.audit_type, ModelVersion.audit_type, DatasetVersion.audit_type, ExperimentRun.audit_type)

# A release's page shows the newest of its timeline on every view, with their total (a window over the same
# rows, counted before the limit): compiled once (releases/prepared.py).
_TIMELINE = PreparedQuery(
    lambda **scope: (
        AuditEvent.objects.filter(InReleaseScope(**scope))
        .annotate(total=Window(Count("pk")))
        .order_by("-seq")[:PAGE_SIZE]
    ),
    **{_subject_name(object_type): TextList for object_type in SUBJECT_TYPES},
    endpoints=TextList,
    release=str,
    ended_endpoints=TextList,
    ended_releases=TextList,
    ended_times=TextList,
)
