"""The population an auditor samples from: every deployment and rollback on the chosen environments'
endpoints in a period, with who, when and why, what it replaced, and the approvals in force when it went
live. And the one rule of what a period may be, shared by every page and command that takes one.

A fixed number of queries whatever the size of the population: the deployments with the one each
replaced, then every release involved with its whole chain (``traced_releases``).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from releases.errors import InvalidInput
from releases.lineage.periods import neighbour_on_endpoint
from releases.lineage.rules import ApprovalState, approval_state
from releases.lineage.trace import Trace, traced_releases
from releases.models import Deployment, Endpoint

LONGEST_YEARS = 10


@dataclass(frozen=True)
class Period:
    """A stretch of time, ``since`` included and ``until`` not."""

    since: datetime.datetime
    until: datetime.datetime

    @classmethod
    def last_year(cls, now: datetime.datetime | None = None) -> Period:
        until = now or timezone.now()
        return cls(until - datetime.timedelta(days=365), until)

    @classmethod
    def checked(cls, since: datetime.datetime, until: datetime.datetime) -> Period:
        """The period from ``since`` to ``until``, refused when it is empty or longer than ten years."""
        if until <= since:
            raise InvalidInput(
                f"The period is empty: “to” ({until:%Y-%m-%d %H:%M} UTC) must come after “from” "
                f"({since:%Y-%m-%d %H:%M} UTC).",
                rule="empty_period",
            )
        if until > _years_after(since, LONGEST_YEARS):
            raise InvalidInput(f"Choose a period of at most {LONGEST_YEARS} years.", rule="period_too_long")
        return cls(since, until)

    @property
    def label(self) -> str:
        """The period as people choose it: whole days when it runs midnight to midnight (the last included)."""
        midnight = datetime.time.min
        if self.since.timetz() == midnight.replace(tzinfo=datetime.UTC) == self.until.timetz():
            last = self.until - datetime.timedelta(days=1)
            return f"{self.since:%Y-%m-%d} to {last:%Y-%m-%d} (whole days, UTC)"
        return f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC"


def _years_after(moment: datetime.datetime, years: int) -> datetime.datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February, or past year 9999
        if moment.month == 2 and moment.day == 29 and moment.year + years <= datetime.MAXYEAR:
            return moment.replace(year=moment.year + years, day=28)
        return datetime.datetime.max.replace(tzinfo=datetime.UTC)


def environments(names: Iterable[str]) -> tuple[str, ...]:
    """The environments named, known ones only, in a stable order; none named means production."""
    chosen = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    known = Endpoint.Environment.values
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise InvalidInput(
            f"Unknown environment “{unknown[0]}”: choose from {', '.join(known)}.", rule="unknown_environment"
        )
    return tuple(name for name in known if name in chosen) or (Endpoint.Environment.PRODUCTION.value,)


@dataclass(frozen=True)
class Change:
    """One member of the population: a deployment or rollback, and the release it made live."""

    deployment: Deployment
    trace: Trace
    replaced: Deployment | None  # what was live on the endpoint before it; None for the first
    approvals: ApprovalState  # the signatures made at or before it went live, judged as the chain stands now

    @property
    def approved_when_deployed(self) -> bool:
        return self.approvals.is_valid

    def as_dict(self) -> dict[str, object]:
        deployment = self.deployment
        stale = {approval.pk: why for approval, why in self.approvals.stale}
        return {
            "deployed_at": deployment.deployed_at.isoformat(),
            "kind": deployment.kind,
            "endpoint": deployment.endpoint.name,
            "environment": deployment.endpoint.environment,
            "release": deployment.release.name,
            "lineage_digest": self.trace.digest,
            "actor": deployment.actor,
            "source": deployment.source,
            "reason": deployment.reason,
            "replaced": self.replaced.release.name if self.replaced is not None else None,
            "approved_when_deployed": self.approved_when_deployed,
            "approvals_required": self.approvals.required,
            "approvals_in_force": [
                {
                    "approver": approval.approver.get_username(),
                    "approver_name": approval.approver_name,
                    "meaning": approval.meaning,
                    "signed_at": approval.signed_at.isoformat(),
                    "signed_digest": approval.signed_digest,
                    "counts_now": approval.pk not in stale,
                    "no_longer_counts_because": stale.get(approval.pk, []),
                }
                for approval in sorted(
                    [*self.approvals.valid, *(a for a, _ in self.approvals.stale)], key=lambda a: (a.signed_at, a.pk)
                )
            ],
            "rejections_before": [a.approver.get_username() for a in self.approvals.rejections],
        }


def changes_in(period: Period, chosen: Sequence[str]) -> QuerySet[Deployment]:
    """The deployments and rollbacks of the population, oldest first (not yet loaded)."""
    return Deployment.objects.filter(
        endpoint__environment__in=chosen, deployed_at__gte=period.since, deployed_at__lt=period.until
    ).order_by("deployed_at", "id")


def population(period: Period, chosen: Sequence[str]) -> list[Change]:
    """Every deployment and rollback in ``period`` on endpoints of the ``chosen`` environments."""
    deployments = list(
        changes_in(period, chosen)
        .select_related("endpoint", "release")
        .annotate(replaced_id=neighbour_on_endpoint(later=False))
    )
    replaced = Deployment.objects.select_related("release").in_bulk(
        {d.replaced_id for d in deployments if d.replaced_id is not None}
    )
    traces = {r.pk: Trace(r) for r in traced_releases().filter(pk__in={d.release_id for d in deployments})}
    states = {pk: approval_state(trace) for pk, trace in traces.items()}
    return [
        Change(
            deployment=d,
            trace=traces[d.release_id],
            replaced=replaced.get(d.replaced_id),
            approvals=states[d.release_id].as_of(d.deployed_at),
        )
        for d in deployments
    ]
