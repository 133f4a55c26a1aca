"""Template helpers: the short relative hint next to an absolute time, a release's status badge and completeness."""

from __future__ import annotations

import datetime

import pytest
from django.template import Context, Template
from django.utils import timezone
from django.utils.html import escape

from releases import lineage
from releases.lineage import ReleaseStatus
from releases.templatetags.lineage_tags import ago, status_badge
from tests.unit.conftest import pending_release


def test_ago_gives_a_short_relative_hint() -> None:
    now = timezone.now()
    assert ago(now - datetime.timedelta(hours=3, minutes=5), now) == "3 h ago"
    assert ago(now - datetime.timedelta(days=2), now) == "2 d ago"
    assert ago(now + datetime.timedelta(minutes=5), now) == "in 5 min"
    assert ago(now, now) == "just now"


@pytest.mark.django_db
def test_a_pending_release_shows_its_status_and_the_deployment_still_to_come(world, ci_account) -> None:
    trace = lineage.trace(pending_release(world, ci_account, with_commit=False).name)
    html = Template(
        "{% load lineage_tags access %}{% status_badge trace|release_status %} {% completeness trace %}"
    ).render(Context({"trace": trace}))
    status = lineage.release_status(trace)
    [gap] = trace.gaps
    [upcoming] = trace.upcoming
    assert html.startswith(f'<span class="state state-{status.key}"')
    assert f">{status.label}</span>" in html
    assert '<span class="completeness incomplete"' in html
    # the tooltip explains the missing code link, then the deployment to come; the text counts what is there
    assert f'title="{escape(gap.explanation)} {escape(upcoming.explanation)}"' in html
    assert "4/5 links · endpoint pending</span>" in html


def test_a_status_without_detail_has_no_tooltip_and_its_detail_is_escaped() -> None:
    plain = ReleaseStatus(key="approved", label="Approved", tone="ok", detail="")
    assert status_badge(plain) == '<span class="state state-approved">Approved</span>'
    odd = ReleaseStatus(key="invalidated", label="Invalidated", tone="bad", detail='<b>"x"</b>')
    assert status_badge(odd) == (
        '<span class="state state-invalidated" title="&lt;b&gt;&quot;x&quot;&lt;/b&gt;">Invalidated</span>'
    )
