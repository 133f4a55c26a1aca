from __future__ import annotations

import datetime
from argparse import ArgumentParser
from typing import Any

from django.utils import dateparse, timezone

from releases import services
from releases.management.base import ServiceCommand
from releases.models import Deployment, Endpoint, Release
from releases.models.base import get_or_refuse


class Command(ServiceCommand):
    help = (
        "Record that a release went live on an endpoint (production takes approved releases only). "
        "--backfill --at TIME --reason WHY records past history instead, as its own audited action."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("endpoint")
        parser.add_argument("release")
        parser.add_argument("--reason", default="")
        parser.add_argument("--at", default="", help="when it went live, ISO 8601 with a UTC offset (default: now)")
        parser.add_argument("--backfill", action="store_true", help="record a deployment from before the record")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        at = self._time(options["at"])
        endpoint = get_or_refuse(Endpoint.objects, "endpoint", name=options["endpoint"])
        release = get_or_refuse(Release.objects, "release", name=options["release"])
        deployment = services.record_deployment(
            endpoint,
            release,
            by=by,
            source=Deployment.Source.CLI,
            reason=options["reason"],
            at=at,
            backfill=options["backfill"],
        )
        self.stdout.write(
            f"{release.name} live on {endpoint.name} since {deployment.deployed_at:%Y-%m-%d %H:%M:%S} UTC"
        )

    def _time(self, raw: str) -> datetime.datetime | None:
        if not raw:
            return None
        try:
            parsed = dateparse.parse_datetime(raw)
        except ValueError:
            parsed = None
        if parsed is None or timezone.is_naive(parsed):
            raise self.fail(f"--at {raw!r} is not a time with a UTC offset, e.g. 2026-11-20T14:05:00+00:00")
        return parsed
