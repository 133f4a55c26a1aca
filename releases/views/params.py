"""Parsing of query parameters the pages accept, with messages a person can act on."""

from __future__ import annotations

import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

MOMENT_HELP = "Use a UTC date and time like 2024-05-01T13:30 (or 2024-05-01 13:30)."


class BadParameter(ValueError):
    """A query parameter that cannot be understood; the message is shown on the page."""


def parse_moment(text: str) -> datetime.datetime:
    """A moment typed or picked in UTC (datetime-local input), as an aware datetime."""
    text = text.strip()
    try:
        parsed = parse_datetime(text.replace(" ", "T", 1)) if text else None
    except ValueError:
        parsed = None
    if parsed is None:
        try:
            day = datetime.date.fromisoformat(text)
        except ValueError:
            raise BadParameter(f"“{text}” is not a date and time. {MOMENT_HELP}") from None
        parsed = datetime.datetime.combine(day, datetime.time.max)
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed


def moment_value(when: datetime.datetime | None) -> str:
    """The value a datetime-local input shows for ``when`` (UTC, minutes)."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M") if when else ""


def parse_page(text: str | None) -> int:
    """A page number; anything unusable means the first page."""
    try:
        return max(1, int(text or "1"))
    except ValueError:
        return 1
