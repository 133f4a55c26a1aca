"""Template helpers: the short relative hint next to an absolute time."""

from __future__ import annotations

import datetime

from django.utils import timezone

from releases.templatetags.lineage_tags import ago


def test_ago_gives_a_short_relative_hint() -> None:
    now = timezone.now()
    assert ago(now - datetime.timedelta(hours=3, minutes=5), now) == "3 h ago"
    assert ago(now - datetime.timedelta(days=2), now) == "2 d ago"
    assert ago(now + datetime.timedelta(minutes=5), now) == "in 5 min"
    assert ago(now, now) == "just now"
