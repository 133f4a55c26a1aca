"""How long a release was live, endpoint by endpoint: each period from the deployment (or rollback) that
made it live to the one that ended it, with who, when and why on both sides.

A redeployment of a release on top of itself extends its period; a period still open is live now. Two
queries whatever the history (one when the release's deployments are already read): the release's
deployments, then the deployment that followed each.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from releases.models import Deployment, Release
from releases.prepared import PreparedQuery


@dataclass(frozen=True)
class ReleasePeriod:
    """One stretch of time ``started.release`` was live on ``started.endpoint``."""

    started: Deployment
    ended: Deployment | None  # the deployment of another release that replaced it; None while live

    @property
    def endpoint(self) -> str:
        return self.started.endpoint.name

    @property
    def end(self) -> datetime.datetime | None:
        return self.ended.deployed_at if self.ended is not None else None

    def duration(self, now: datetime.datetime | None = None) -> datetime.timedelta:
        return (self.end or now or timezone.now()) - self.started.deployed_at

    def as_dict(self, now: datetime.datetime | None = None) -> dict[str, object]:
        """The period as an evidence bundle carries it."""

        def side(deployment: Deployment | None) -> dict[str, object] | None:
            if deployment is None:
                return None
            return {
                "release": deployment.release.name,
                "kind": deployment.kind,
                "deployed_at": deployment.deployed_at.isoformat(),
                "actor": deployment.actor,
                "source": deployment.source,
                "reason": deployment.reason,
            }

        return {
            "endpoint": self.endpoint,
            "environment": self.started.endpoint.environment,
            "started": side(self.started),
            "ended": side(self.ended),
            "live_now": self.ended is None,
            "seconds": int(self.duration(now).total_seconds()),
            "duration": format_duration(self.duration(now)),
        }


def format_duration(span: datetime.timedelta) -> str:
    """A length of time as people say it: 3 d 4 h 12 min, 2 h 5 min, 40 s."""
    seconds = max(0, int(span.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    text = " ".join(part for part in parts if part)
    return text or f"{seconds} s"


def neighbour_on_endpoint(*, later: bool) -> Subquery:
    """For a query over deployments: the id of the deployment just after (``later``) or just before each one
    on its endpoint, in the endpoint's order: by time, then two at the same instant in the order recorded."""
    when, same = OuterRef("deployed_at"), Q(deployed_at=OuterRef("deployed_at"))
    if later:
        side, order = Q(deployed_at__gt=when) | (same & Q(id__gt=OuterRef("id"))), ("deployed_at", "id")
    else:
        side, order = Q(deployed_at__lt=when) | (same & Q(id__lt=OuterRef("id"))), ("-deployed_at", "-id")
    return Subquery(
        Deployment.objects.filter(endpoint_id=OuterRef("endpoint_id")).filter(side).order_by(*order).values("id")[:1]
    )


# A release page reads its periods on every view: both queries are compiled once (releases/prepared.py).
_OWN = PreparedQuery(
    lambda release: Deployment.objects.filter(release_id=release).select_related("endpoint", "release"), release=int
)
# The deployment just after each of ``ids`` on its endpoint, with the id of the one it followed.
_FOLLOWERS = PreparedQuery(
    lambda ids: (
        Deployment.objects.filter(
            pk__in=Deployment.objects.filter(pk__any_of=ids)
            .annotate(next_id=neighbour_on_endpoint(later=True))
            .values("next_id")
        )
        .select_related("release", "endpoint")
        .annotate(previous_id=neighbour_on_endpoint(later=False))
    ),
    ids=list,
)


def release_periods(release: Release, deployments: Iterable[Deployment] | None = None) -> list[ReleasePeriod]:
    """Every period ``release`` was live, by endpoint then time (oldest first).

    ``deployments`` are the release's own, each with its endpoint, when the caller has them read (a trace's):
    then one query, the deployments that followed them; otherwise two.
    """
    own = sorted(
        _OWN.all(release=release.pk) if deployments is None else deployments,
        key=lambda deployment: (deployment.endpoint.name, deployment.deployed_at, deployment.pk),
    )
    followers = {d.previous_id: d for d in _FOLLOWERS.all(ids=[d.pk for d in own])} if own else {}  # type: ignore[attr-defined]
    periods: list[ReleasePeriod] = []
    continues: int | None = None  # the deployment that carries the last period on (a redeployment)
    for deployment in own:
        nxt = followers.get(deployment.pk)
        ended = nxt if nxt is not None and nxt.release_id != release.pk else None
        if continues == deployment.pk:
            periods[-1] = ReleasePeriod(periods[-1].started, ended)
        else:
            periods.append(ReleasePeriod(deployment, ended))
        continues = nxt.pk if nxt is not None and nxt.release_id == release.pk else None
    return periods
