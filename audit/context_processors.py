"""What every page shows about the log: the integrity alarm while a failed verification is unacknowledged."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from audit import alarm


def integrity_alarm(request: HttpRequest) -> dict[str, Any]:
    """The raised alarm (from the cache, no query), for the banner in base.html."""
    return {"integrity_alarm": alarm.current()}
