"""Parsing of query parameters the pages accept, with messages a person can act on."""

from __future__ import annotations

import datetime
import re

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from releases.models.base import MAX_BIG
from releases.numbers import whole_number

# More pages than any list here will have; a longer number means the first page, like any other nonsense.
MOST_PAGES = 1_000_000
# A day as YYYY-MM-DD in ASCII digits (``date.fromisoformat`` also takes 20260331 and week dates).
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
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
        return parsed.replace(tzinfo=datetime.UTC)
    try:
        # Stored moments are UTC; an offset can carry a moment past year 1 or 9999, which UTC cannot show.
        return parsed.astimezone(datetime.UTC)
    except OverflowError:
        raise BadParameter(f"“{text}” is outside the years 1 to 9999 in UTC. {MOMENT_HELP}") from None


def parse_bound(text: str, *, end: bool) -> datetime.datetime:
    """One end of a period as typed: a day (YYYY-MM-DD) is taken whole, so a period ``from`` a day starts
    at its midnight and one ``to`` a day ends at the next midnight; a date and time is that moment (UTC)."""
    text = text.strip()
    if not any(separator in text for separator in "T :"):
        try:
            if not DAY.fullmatch(text):
                raise ValueError(text)
            day = datetime.date.fromisoformat(text)
        except ValueError:
            raise BadParameter(f"“{text}” is not a day. Use YYYY-MM-DD, e.g. 2026-03-31.") from None
        if end:
            if day == datetime.date.max:
                raise BadParameter(f"“{text}” is past the last day a period may end on.")
            day += datetime.timedelta(days=1)
        return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
    return parse_moment(text)


def moment_value(when: datetime.datetime | None) -> str:
    """The value a datetime-local input shows for ``when`` (UTC, minutes)."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M") if when else ""


def parse_page(text: str | None) -> int:
    """A page number; anything unusable means the first page (the paginator clamps one past the end)."""
    return whole_number(text or "", most=MOST_PAGES) or 1


def parse_cursor(text: str | None) -> int | None:
    """The row a keyset page continues from (an id or a version number); anything unusable means none."""
    return whole_number(text or "", most=MAX_BIG)
