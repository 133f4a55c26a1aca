"""What is live on each endpoint, at any moment, and what a rollback would restore."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, JSONObject
from django.db.models.lookups import LessThan

from releases.lineage.rules import approval_state
from releases.lineage.trace import Trace, status_traces
from releases.models import (
    Approval,
    DatasetVersion,
    Deployment,
    Endpoint,
    ModelVersion,
    Release,
    RunDatasetInput,
)
from releases.prepared import PreparedQuery, PreparedTuples


@dataclass(frozen=True)
class TroubledData:
    """The dataset versions a rollback target must not have used: unsafe ones (quarantined or changed in
    place), and those lifted from a quarantine (safe again, but approvals signed before the lift no longer count).
    Few, usually none."""

    unsafe: list[int]
    lifted: list[int]

    def __bool__(self) -> bool:
        return bool(self.unsafe or self.lifted)


def _troubled() -> QuerySet[DatasetVersion]:
    lifted_versions = DatasetVersion.objects.filter(quarantine_lifted_at__isnull=False)
    return (
        DatasetVersion.objects.unsafe()
        .order_by()
        .values_list("pk", Value(True))
        .union(lifted_versions.order_by().values_list("pk", Value(False)), all=True)
    )


# Read on every page that shows what is live: compiled once (releases/prepared.py).
_TROUBLED = PreparedTuples(_troubled)


def troubled_data() -> TroubledData:
    """The unsafe and the lifted dataset versions, read in one query."""
    found = TroubledData([], [])
    for pk, is_unsafe in _TROUBLED.all():
        (found.unsafe if is_unsafe else found.lifted).append(pk)
    return found


def restorable(troubled: TroubledData, prefix: str = "") -> Q:
    """Condition for a release safe to restore: approved (so not retired), tag not moved, and no input
    of its run that is unsafe (quarantined or mutated) or lifted from a quarantine since its signatures.

    A lifted version is safe data again, but the quarantine invalidated every approval signed before it
    (the signed chain carries the quarantine) and none can be signed while it lasts: so the approval
    counts again only when enough ML leads signed after the lift. This is the digest check of
    ``ApprovalState`` in SQL, so the rollback target is never a release the promotion gate refuses.

    ``prefix`` points at the release from another model (``"release__"`` from a deployment). ``troubled``
    is ``troubled_data()``. When there are any, the data check is one correlated NOT EXISTS on the release's
    own run against those ids, so it touches a handful of index entries per candidate instead of every run
    input of the whole history; the approvals are counted only for the rare lifted input. When there are
    none, it is left out.
    """
    approved_and_tagged = Q(**{f"{prefix}state": Release.State.APPROVED}) & ~Q(
        **{f"{prefix}git_tag__moved_to_sha__gt": ""}
    )
    if not troubled:
        return approved_and_tagged
    signers_since_lift = (
        Approval.objects.filter(
            release_id=OuterRef(OuterRef(f"{prefix}pk")),
            decision=Approval.Decision.APPROVED,
            signed_at__gt=OuterRef("dataset_version__quarantine_lifted_at"),
        )
        .values("release_id")
        .annotate(signers=Count("approver_id", distinct=True))
        .values("signers")
    )
    bad_input = RunDatasetInput.objects.filter(run_id=OuterRef(f"{prefix}model_version__run_id")).filter(
        Q(dataset_version__any_of=troubled.unsafe)
        | Q(
            Q(dataset_version__any_of=troubled.lifted),
            LessThan(Coalesce(Subquery(signers_since_lift), 0), settings.LINEAGE_REQUIRED_APPROVALS),
        )
    )
    return approved_and_tagged & Q(~Exists(bad_input))


class LiveAnnotations(TypedDict):
    live_deployment_id: int | None
    live_release_id: int | None


if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    EndpointWithLive = WithAnnotations[Endpoint, LiveAnnotations]
else:
    EndpointWithLive = Endpoint


def endpoints_with_live(when: datetime.datetime | None = None) -> QuerySet[EndpointWithLive]:
    """Endpoints annotated with their live deployment (and its release) at ``when`` (one query): now, as each
    endpoint keeps it; at an earlier moment, the newest of its deployments up to then."""
    if when is None:
        now: QuerySet[EndpointWithLive] = Endpoint.objects.annotate(
            live_deployment_id=F("live_deployment_now_id"), live_release_id=F("live_release_now_id")
        )
        return now
    live = Deployment.objects.filter(endpoint=OuterRef("pk")).live_at(when)
    annotated: QuerySet[EndpointWithLive] = Endpoint.objects.annotate(
        live_deployment_id=Subquery(live.values("id")[:1]),
        live_release_id=Subquery(live.values("release_id")[:1]),
    )
    return annotated


def with_rollback_target(deployments: QuerySet[Deployment], troubled: TroubledData) -> QuerySet[Deployment]:
    """Live deployments annotated with ``rollback_release``, ``{"id": ..., "name": ...}`` of the release of the
    most recent earlier deployment on the same endpoint of an older release that is safe to restore
    (``restorable``, given ``troubled_data()``).

    The candidates are read against the live deployment's own columns, so each endpoint costs one
    index range scan, not a re-evaluation of "what is live" per candidate row.
    """
    target = (
        Deployment.objects.filter(
            endpoint_id=OuterRef("endpoint_id"),
            deployed_at__lt=OuterRef("deployed_at"),
            release__created_at__lt=OuterRef("release__created_at"),
        )
        .filter(restorable(troubled, "release__"))
        .exclude(release_id=OuterRef("release_id"))
        .order_by("-deployed_at", "-id")
    )
    # One subquery gives both: two would search twice.
    found = target.values(found=JSONObject(id="release_id", name="release__name"))
    return deployments.annotate(rollback_release=Subquery(found[:1]))


def _live_deployments(*, with_release: bool, troubled: bool) -> PreparedQuery[Deployment]:
    """Live deployments by id with their rollback targets, prepared: with their releases' rows or not,
    against troubled data (its ids as values) or none."""

    def build(ids: list[int], unsafe: list[int] | None = None, lifted: list[int] | None = None) -> QuerySet[Deployment]:
        # Who deployed is shown as the deployment's own ``actor``: the user row is not read.
        live = Deployment.objects.filter(pk__any_of=ids)
        if with_release:
            live = live.select_related("release")
        return with_rollback_target(live, TroubledData(unsafe or [], lifted or []))

    if troubled:
        return PreparedQuery(build, ids=list, unsafe=list, lifted=list)
    return PreparedQuery(build, ids=list)


_LIVE_DEPLOYMENTS = {
    (with_release, troubled): _live_deployments(with_release=with_release, troubled=troubled)
    for with_release in (False, True)
    for troubled in (False, True)
}


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: Endpoint
    live: Deployment | None
    live_trace: Trace | None
    # The release a rollback would restore; its whole trace only when asked for (``Traced``).
    rollback_target: Release | None
    rollback_trace: Trace | None = None

    @property
    def rollback_blocker(self) -> str:
        """Why there is no rollback target, in words an on-call engineer can act on."""
        if self.rollback_target is not None:
            return ""
        if self.live is None:
            return "Nothing is live on this endpoint."
        return (
            "No earlier release on this endpoint is approved, unretired and free of quarantined data "
            "(after a lifted quarantine, its approval must be signed again); deploy a known-good release explicitly."
        )


class Traced(enum.Enum):
    """Which releases of an endpoint status come with their whole trace (``status_traces``)."""

    # A list naming what is live and what a rollback restores (a release's endpoints): the release rows only.
    NOTHING = "nothing"
    # What shows each live release's status, warnings and completeness (the board, an endpoint's page).
    LIVE = "live"
    # What explains or performs a rollback: the target's approvals and data too.
    LIVE_AND_ROLLBACK = "live and rollback"


def endpoint_statuses(
    endpoints: QuerySet[Endpoint] | None = None,
    when: datetime.datetime | None = None,
    *,
    traced: Traced = Traced.LIVE,
) -> list[EndpointStatus]:
    """Live release and rollback target of each endpoint, with the traces ``traced`` asks for: seven queries,
    three with none.

    A rollback target is read as its release's id and name, unless its trace is asked for.
    """
    rows, live_of = _endpoints_and_live(endpoints, when)
    live_ids = sorted(filter(None, live_of.values()))
    troubled = troubled_data()
    found = _LIVE_DEPLOYMENTS[traced is Traced.NOTHING, bool(troubled)].all(
        ids=live_ids, **({"unsafe": troubled.unsafe, "lifted": troubled.lifted} if troubled else {})
    )
    deployments = {deployment.pk: deployment for deployment in found}
    # The targets' rows as ``only("name")`` would read them; their traces, when asked for, replace them.
    target_releases = {
        d.pk: Release.from_db(d._state.db, ["id", "name"], [found["id"], found["name"]])
        for d in deployments.values()
        if (found := d.rollback_release)  # type: ignore[attr-defined]
    }
    wanted = set()
    if traced is not Traced.NOTHING:
        wanted = {d.release_id for d in deployments.values()}
    if traced is Traced.LIVE_AND_ROLLBACK:
        wanted |= {release.pk for release in target_releases.values()}
    traces = status_traces(wanted) if wanted else {}
    statuses = []
    for row in rows:
        live_id = live_of[row.pk]
        live = deployments.get(live_id) if live_id else None
        live_trace = traces.get(live.release_id) if live else None
        if live is not None and live_trace is not None:
            live.release = live_trace.release
        target = target_releases.get(live.pk) if live is not None else None
        target_trace = traces.get(target.pk) if target is not None and traced is Traced.LIVE_AND_ROLLBACK else None
        statuses.append(
            EndpointStatus(
                endpoint=row,
                live=live,
                live_trace=live_trace,
                rollback_target=target_trace.release if target_trace is not None else target,
                rollback_trace=target_trace,
            )
        )
    return statuses


def _endpoints_and_live(
    endpoints: QuerySet[Endpoint] | None, when: datetime.datetime | None
) -> tuple[Sequence[Endpoint], dict[int, int | None]]:
    """The endpoints (all when None), with their registered models, and the id of each one's live deployment
    at ``when``. Now, each endpoint keeps it on its own row, so the endpoints asked for are read as they are, in
    their own order (one query); at an earlier moment, as ``endpoints_with_live`` finds it."""
    if when is None:
        rows = list((endpoints if endpoints is not None else Endpoint.objects.all()).select_related("registered_model"))
        return rows, {row.pk: row.live_deployment_now_id for row in rows}
    annotated = endpoints_with_live(when).select_related("registered_model")
    if endpoints is not None:
        annotated = annotated.filter(pk__in=endpoints.values("pk"))
    then = list(annotated)
    return then, {row.pk: row.live_deployment_id for row in then}


def moved_alias(endpoint: Endpoint, model_version: ModelVersion) -> str:
    """The MLflow alias that going live on ``endpoint`` with ``model_version`` moves ("" when none).

    Only an alias the endpoint follows, on the endpoint's own registered model, on a tracking server we
    know; ``model_version`` must have its registered model loaded.
    """
    if not endpoint.mlflow_alias or endpoint.registered_model_id is None:
        return ""
    model = model_version.registered_model
    if model.pk != endpoint.registered_model_id or model.server_id is None:
        return ""
    return endpoint.mlflow_alias


@dataclass(frozen=True)
class LivePeriod:
    """A stretch of time a release was live on an endpoint."""

    start: datetime.datetime
    end: datetime.datetime | None
    kind: str
    actor: str


@dataclass(frozen=True)
class AliasMove:
    """What a deployment does to the MLflow alias serving follows: ``model@alias`` from one version to another."""

    model: str
    alias: str
    version: int
    current: int | None


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback of one endpoint would restore, and the facts that make the target safe."""

    status: EndpointStatus
    approvals: list[Approval]
    datasets: list[DatasetVersion]
    periods: list[LivePeriod]
    alias: AliasMove | None

    @property
    def endpoint(self) -> Endpoint:
        return self.status.endpoint

    @property
    def target(self) -> Release | None:
        return self.status.rollback_target

    @property
    def alias_stays(self) -> bool:
        """The endpoint follows an MLflow alias, but restoring the target does not move it."""
        return bool(self.endpoint.mlflow_alias) and self.target is not None and self.alias is None


# Enough to show a pattern; the endpoint page has the full history.
LIVE_PERIODS_SHOWN = 10


def rollback_plan(endpoint_name: str) -> RollbackPlan:
    """The endpoint's rollback target now and why it is safe: its valid approvals, its data and their
    status, when it was live on this endpoint before, what happens to the MLflow alias.

    Eight queries at most: the endpoint status (seven) and the target's earlier periods (one).
    Raises Endpoint.DoesNotExist.
    """
    statuses = endpoint_statuses(Endpoint.objects.filter(name=endpoint_name), traced=Traced.LIVE_AND_ROLLBACK)
    if not statuses:
        raise Endpoint.DoesNotExist(f"No endpoint named {endpoint_name}")
    status = statuses[0]
    trace = status.rollback_trace
    if trace is None:
        return RollbackPlan(status, [], [], [], None)
    target = trace.release
    return RollbackPlan(
        status=status,
        approvals=approval_state(trace).valid,
        datasets=trace.dataset_versions,
        periods=_live_periods(status.endpoint, target),
        alias=_alias_move(status, target),
    )


def _alias_move(status: EndpointStatus, target: Release) -> AliasMove | None:
    alias = moved_alias(status.endpoint, target.model_version)
    if not alias:
        return None
    target_version = target.model_version
    live_version = status.live.release.model_version if status.live is not None else None
    same_model = live_version is not None and live_version.registered_model_id == target_version.registered_model_id
    return AliasMove(
        model=target_version.registered_model.name,
        alias=alias,
        version=target_version.version,
        current=live_version.version if live_version is not None and same_model else None,
    )


def _live_periods(endpoint: Endpoint, release: Release) -> list[LivePeriod]:
    """When ``release`` was live on ``endpoint``, newest first (one query): each of its deployments there,
    until the next deployment on the endpoint; a redeployment of the same release extends the period."""
    following = (
        Deployment.objects.filter(endpoint_id=endpoint.pk)
        .filter(
            Q(deployed_at__gt=OuterRef("deployed_at")) | Q(deployed_at=OuterRef("deployed_at"), id__gt=OuterRef("id"))
        )
        .order_by("deployed_at", "id")
    )
    rows = list(
        Deployment.objects.filter(endpoint_id=endpoint.pk, release_id=release.pk)
        .annotate(
            ended_at=Subquery(following.values("deployed_at")[:1]),
            next_release_id=Subquery(following.values("release_id")[:1]),
        )
        .order_by("-deployed_at", "-id")[:LIVE_PERIODS_SHOWN]
    )
    periods: list[LivePeriod] = []
    followed_by_itself = False
    for row in reversed(rows):
        if periods and followed_by_itself:
            # Redeployed on top of itself: one period, from the first deployment to the end of the last.
            first = periods.pop()
            periods.append(LivePeriod(first.start, row.ended_at, first.kind, first.actor))
        else:
            periods.append(LivePeriod(row.deployed_at, row.ended_at, row.kind, row.actor))
        followed_by_itself = row.next_release_id == release.pk
    return list(reversed(periods))
