"""The story's clock: every step of the demo runs at its own moment in the past, in order.

The demo tells three weeks of a team's work. Writing the rows now and backdating a few of them
afterwards leaves a deployment older than its release, or audit events whose times run backwards.
Instead each step runs with the process clock moved to its moment (time-machine), so every time the
product records by itself (created_at, signed_at, deployed_at, audit event times, MLflow's own
timestamps) is the moment of that step, and the audit log's order is the order of time.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager

import time_machine
from django.utils import timezone

from audit.models import AuditEvent

# Steps later than the one before, even when their planned moments are equal.
TICK = datetime.timedelta(milliseconds=1)


class StoryClock:
    """Moments counted back from when the build started, never earlier than what is already recorded."""

    def __init__(self) -> None:
        self.started = timezone.now()
        # A second build (or one finishing an interrupted first) writes after the log's last event.
        self.floor: datetime.datetime | None = AuditEvent.objects.order_by("-seq").values_list("at", flat=True).first()

    def moment(self, before: datetime.timedelta) -> datetime.datetime:
        when = self.started - before
        return max(when, self.floor + TICK) if self.floor is not None else when

    @contextmanager
    def at(self, before: datetime.timedelta) -> Iterator[datetime.datetime]:
        """Run the block at ``before`` the build's start (or just after the last recorded step); yields that time."""
        when = self.moment(before)
        if when >= timezone.now():
            yield timezone.now()
            return
        with time_machine.travel(when, tick=True):
            yield when
            self.floor = timezone.now()
