"""Template helpers: the short relative hint next to an absolute time, a release's status badge and completeness."""

from __future__ import annotations

import datetime

import pytest
from django.template import Context, Template
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from hypothesis import given, settings
from hypothesis import strategies as st

from releases import lineage, services
from releases.lineage import ReleaseStatus
from releases.models import Endpoint
from releases.templatetags.lineage_tags import (
    ago,
    completeness,
    markup,
    markup_join,
    rollback_action,
    status_badge,
    trace_warnings,
    utc,
)
from tests.unit.conftest import pending_release


def test_ago_gives_a_short_relative_hint() -> None:
    now = timezone.now()
    assert ago(now - datetime.timedelta(hours=3, minutes=5), now) == "3 h ago"
    assert ago(now - datetime.timedelta(days=2), now) == "2 d ago"
    assert ago(now + datetime.timedelta(minutes=5), now) == "in 5 min"
    assert ago(now, now) == "just now"


def test_utc_writes_the_moment_in_utc_with_its_hint() -> None:
    berlin = datetime.timezone(datetime.timedelta(hours=2))
    moment = datetime.datetime(2024, 5, 1, 14, 0, 7, 250000, tzinfo=berlin)
    assert utc(moment) == (
        '<time datetime="2024-05-01T12:00:07.250000+00:00" title="2024-05-01 12:00:07 UTC">2024-05-01 12:00 UTC</time> '
        f'<span class="ago">{ago(moment)}</span>'
    )
    # Through a template it is not escaped again, and nothing is left unknown.
    rendered = Template("{% load lineage_tags %}{{ when|utc }}").render(Context({"when": moment}))
    assert rendered == utc(moment)
    assert utc(None) == '<span class="muted">unknown</span>'


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


# The board's and the release page's markup drawn in Python ---------------------------------------------


def _render(source: str, **context: object) -> str:
    return Template("{% load lineage_tags %}" + source).render(Context(context))


@pytest.mark.django_db
def test_a_quarantined_input_shows_as_a_warning_line_and_a_warning_node(story, lead2) -> None:
    version = story["v42"].model_version.run.dataset_inputs.get().dataset_version
    services.quarantine_dataset_version(version, by=lead2, reason="labels <shifted> upstream")
    trace = lineage.trace("churn-v42")

    warnings = _render("{% trace_warnings trace %}", trace=trace)
    diagram = _render("{% chain_diagram trace %}", trace=trace)

    expected = f"churn-train:18 is quarantined: {escape('labels <shifted> upstream')}"
    assert warnings == f'<div class="warning">⚠ {expected}</div>'
    # The data node, in both drawings, is a warning whose tooltip says why, and links to the version.
    assert diagram.count('class="chain-node node-warning" data-link="data"') == 2
    assert diagram.count(f"<title>Dataset: warning — {expected}</title>") == 2
    assert diagram.count('<a href="/datasets/churn-train/18/" class="chain-node node-warning"') == 2
    assert "⚠ warning" in diagram
    assert "<shifted>" not in diagram
    assert _render("{% trace_warnings trace %}", trace=lineage.trace("churn-v41")) == ""


@pytest.mark.django_db
def test_a_missing_link_is_a_node_without_a_link_that_explains_the_gap(world, ci_account) -> None:
    trace = lineage.trace(pending_release(world, ci_account, with_commit=False).name)
    diagram = _render("{% chain_diagram trace %}", trace=trace)
    [gap] = trace.gaps
    assert diagram.count('<g class="chain-node node-missing" data-link="code">') == 2
    assert diagram.count(f"<title>Git commit: missing — {escape(gap.explanation)}</title>") == 2
    assert "✕ missing" in diagram
    assert diagram.count('data-link="deployment">') == 2
    assert "… after approval" in diagram
    assert diagram.count('class="chain-edge"') == 10, "five arrows in each drawing"


@pytest.mark.django_db
def test_the_rollback_action_is_for_on_call_and_ml_leads_only(story, oncall, auditor, rf) -> None:
    [status] = lineage.endpoint_statuses(Endpoint.objects.filter(pk=story["endpoint"].pk))
    request = rf.get("/?page=2&q=churn scoring")

    request.user = oncall
    action = _render("{% rollback_action status %}", status=status, request=request)
    request.user = auditor
    nothing = _render("{% rollback_action status %}", status=status, request=request)

    assert action == (
        '<div class="rollback-action"><a class="button danger" '
        'href="/endpoints/churn-scoring/rollback/?next=/%3Fpage%3D2%26q%3Dchurn%2520scoring">'
        "Roll back to churn-v41…</a></div>"
    )
    assert nothing == ""


@pytest.mark.django_db
def test_without_a_target_the_rollback_action_says_why(world, oncall, rf, release_manager, ci_account, lead) -> None:
    endpoint = world.endpoint()
    world.deploy(endpoint, world.full_release(40, by=ci_account, approver=lead), by=release_manager, hours_ago=1)
    [status] = lineage.endpoint_statuses(Endpoint.objects.filter(pk=endpoint.pk))
    request = rf.get("/")
    request.user = oncall

    action = _render("{% rollback_action status %}", status=status, request=request)

    assert f'<button type="button" class="button" disabled aria-describedby="no-rollback-{endpoint.pk}">' in action
    assert f'id="no-rollback-{endpoint.pk}">Cannot roll back: {escape(status.rollback_blocker)}</span>' in action


@pytest.mark.django_db
def test_a_board_row_is_the_endpoint_its_live_release_and_its_rollback_each_written_by_its_own_tag(
    story, world, oncall, auditor, lead2, rf
) -> None:
    version = story["v42"].model_version.run.dataset_inputs.get().dataset_version
    services.quarantine_dataset_version(version, by=lead2, reason="labels <shifted> upstream")
    services.roll_back(story["endpoint"], by=oncall, reason="bad labels", source="ui")
    world.endpoint("churn-shadow", "staging")
    live, empty = lineage.endpoint_statuses(Endpoint.objects.order_by("name"))
    assert live.live is not None
    assert live.live_trace is not None
    assert live.rollback_target is not None
    request = rf.get("/?q=churn")

    for user in (oncall, auditor):
        request.user = user
        context = Context({"request": request})
        row, nothing = (_render("{% board_row status %}", status=status, request=request) for status in (live, empty))
        trace = live.live_trace
        assert row == (
            '<tr><td data-label="Endpoint"><a href="/endpoints/churn-scoring/"><strong>churn-scoring</strong></a></td>'
            '<td data-label="Live release"><a class="release-name" href="/releases/churn-v41/">churn-v41</a> '
            f'{status_badge(lineage.release_status(trace))} <span class="badge">rolled back</span>'
            f"{trace_warnings(trace)}</td>"
            f'<td data-label="Since">{utc(live.live.deployed_at)}</td>'
            f'<td data-label="Deployed by">{escape(live.live.actor)}</td>'
            f'<td data-label="Lineage">{completeness(trace)}</td>'
            f'<td data-label="Rollback target"><a href="/releases/{live.rollback_target.name}/">'
            f"{live.rollback_target.name}</a> {rollback_action(context, live)}</td></tr>"
        )
        # Nothing live: no target, and why, said once (in the action for those who may roll back).
        why = f'<span class="muted">{escape(empty.rollback_blocker)}</span>' if user == auditor else ""
        assert nothing == (
            '<tr><td data-label="Endpoint"><a href="/endpoints/churn-shadow/"><strong>churn-shadow</strong></a></td>'
            '<td colspan="4" class="muted">Nothing deployed</td>'
            f'<td data-label="Rollback target">{why} {rollback_action(context, empty)}</td></tr>'
        )
        # Only those who may roll back see the action; everyone sees the target.
        assert ("Roll back to churn-v40…" in row) is (user == oncall)
        assert ("disabled" in nothing) is (user == oncall)


# Any value a tag puts into markup: text with every character HTML cares about, text already HTML, numbers,
# None, and lazy text (a translation), plain or already HTML.
_lazy_text = lazy(str, str)
_lazy_html = lazy(mark_safe, SafeString)
_values = st.one_of(
    st.text(alphabet=st.sampled_from("<>&\"'` =/aZ09é⚠\u00a0"), max_size=12),
    st.text(max_size=8).map(mark_safe),
    st.integers(),
    st.floats(allow_nan=False),
    st.none(),
    st.text(alphabet="<&'x", max_size=6).map(_lazy_text),
    st.text(alphabet="<b>", max_size=6).map(_lazy_html),
)


@settings(max_examples=300, deadline=None)
@given(args=st.lists(_values, min_size=1, max_size=4), named=_values)
def test_markup_writes_what_format_html_writes(args: list[object], named: object) -> None:
    text = '<span title="{}">' + "{}" * (len(args) - 1) + "</span>{named}"
    ours = markup(text, *args, named=named)
    assert ours == format_html(text, *args, named=named)
    assert isinstance(ours, SafeString)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(_values, _values), max_size=4))
def test_markup_join_writes_what_format_html_join_writes(rows: list[tuple[object, object]]) -> None:
    assert markup_join(" · ", "<b>{}</b>={}", rows) == format_html_join(" · ", "<b>{}</b>={}", rows)


def test_markup_escapes_text_and_keeps_html() -> None:
    assert markup("<i>{}</i>{}", "<script>&\"'", mark_safe("<b>ok</b>")) == (
        "<i>&lt;script&gt;&amp;&quot;&#x27;</i><b>ok</b>"
    )
