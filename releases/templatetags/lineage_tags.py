"""Template filters and tags for the pages: UTC times with relative hints, and the small SVG charts."""

from __future__ import annotations

import datetime
import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django import template
from django.http import HttpRequest
from django.utils import timezone
from django.utils.safestring import SafeString

from audit import signing, vocabulary
from releases.lineage import EndpointStatus, MetricSeries, ReleaseStatus, Trace, release_status
from releases.lineage.paging import Page
from releases.models import Deployment
from releases.roles import may_act_as
from releases.templatetags.addresses import address
from releases.web_links import safe_href

register = template.Library()


def markup(template_text: str, /, *args: object, **kwargs: object) -> SafeString:
    """``format_html`` as the tags here need it: every argument escaped unless it is already HTML (has
    ``__html__``, as ``SafeString`` does), then put in its place. The same output as Django's (a test
    compares them), without its lazy-text wrappers around each escape: they were a tenth of the board's
    processor time, called some 700 times a page."""
    return SafeString(
        template_text.format(*map(_escaped, args), **{name: _escaped(value) for name, value in kwargs.items()})
    )


def markup_join(separator: str, template_text: str, rows: Iterable[Iterable[object]]) -> SafeString:
    """``format_html_join``: ``template_text`` filled from each row by ``markup``, joined by ``separator``."""
    return SafeString(separator.join(markup(template_text, *row) for row in rows))


def _escaped(value: object) -> str:
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return html.escape(str(value))


@register.filter
def ago(value: datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    """'3 h ago', 'in 5 min', 'just now': a hint next to an absolute UTC time."""
    if value is None:
        return ""
    seconds = int(((now or timezone.now()) - value).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        return "just now"
    for size, unit in ((86400 * 365, "y"), (86400 * 30, "mo"), (86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            amount = f"{seconds // size} {unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return "just now"  # pragma: no cover - the loop always returns for seconds >= 60


@register.filter
def utc(value: datetime.datetime | None) -> SafeString:
    """A <time> element in UTC with its relative hint: 2024-05-01 12:00 UTC (3 h ago)."""
    if value is None:
        return markup('<span class="muted">{}</span>', "unknown")
    value = value.astimezone(datetime.UTC)
    seconds = value.strftime("%Y-%m-%d %H:%M:%S")
    # Every part is written from the datetime (digits, "-", ":", "+", "T", spaces) or is one of ``ago``'s own
    # words: nothing to escape, so no escaping pass (a board shows 25 times, a release page up to a hundred).
    return SafeString(
        f'<time datetime="{value.isoformat()}" title="{seconds} UTC">{seconds[:16]} UTC</time> '
        f'<span class="ago">{ago(value)}</span>'
    )


@register.simple_tag(takes_context=True)
def query_with(context: template.Context, **changes: Any) -> str:
    """The current query string with some parameters replaced (for pagination links)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        params[key] = str(value)
    return "?" + params.urlencode()


@register.simple_tag
def model_version_url(model: str, version: int) -> str:
    """The model page at the page of versions that starts with ``version``, scrolled to it: a model's
    versions are paged newest first, so an older version is not on the first page."""
    return address("releases:model", model) + f"?before={version + 1}#v{version}"


@register.filter
def thousands(value: int) -> str:
    """A count as people read it: 12,500."""
    return f"{value:,}"


def _query(request: HttpRequest, changes: dict[str, object | None], anchor: str) -> str:
    """The current query string with ``changes`` made (None removes a parameter), then ``#anchor``."""
    params = request.GET.copy()
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + params.urlencode() + (f"#{anchor}" if anchor else "")


@register.inclusion_tag("releases/_pager.html", takes_context=True)
def pager(context: template.Context, page: Page[Any], noun: str, param: str = "", anchor: str = "") -> dict[str, Any]:
    """Where a page is in its list ("51 to 100 of 10,000 runs") with links to the pages either side, the
    rest of the query string kept.

    A numbered page is linked by ``param``; a keyset page by ``after`` (the newer page ends at its first
    row) and ``before`` (the older page starts after its last). Nothing shows when the list fits one page.
    """
    request = context["request"]
    previous = following = ""
    if page.number is not None:
        if page.has_previous:
            previous = _query(request, {param: page.number - 1 if page.number > 2 else None}, anchor)
        if page.has_next:
            following = _query(request, {param: page.number + 1}, anchor)
    else:
        if page.has_previous and page.first is not None:
            previous = _query(request, {"after": page.first[-1], "before": None}, anchor)
        if page.has_next and page.last is not None:
            following = _query(request, {"before": page.last[-1], "after": None}, anchor)
    return {
        "page": page,
        "noun": noun if page.total == 1 else f"{noun}s",
        "previous": previous,
        "next": following,
        "newest": _query(request, {"before": None, "after": None}, anchor) if page.number is None else "",
    }


# Chain diagram ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainNode:
    key: str
    label: str
    state: str
    text: str
    more: str
    url: str
    x: int
    y: int
    explanation: str


def _node_url(key: str, trace: Trace) -> str:
    if key == "code" and trace.commit is not None:
        return address("releases:commit", trace.commit.sha)
    if key == "data" and trace.dataset_inputs:
        dv = _training_first(trace)[0].dataset_version
        return address("releases:dataset_version", dv.dataset.name, dv.version)
    if key in ("features", "experiment") and trace.run is not None:
        return address("releases:run", trace.run.run_id)
    if key == "model":
        mv = trace.model_version
        return model_version_url(mv.registered_model.name, mv.version)
    if key == "deployment" and trace.deployed_to:
        return address("releases:endpoint", trace.deployed_to[0])
    return ""


def _training_first(trace: Trace) -> list[Any]:
    """Dataset inputs with the training data first: that is what people look for in the diagram."""
    return sorted(trace.dataset_inputs, key=lambda item: item.context != "training")


def _short(key: str, identifiers: list[str], trace: Trace, width: int) -> str:
    if not identifiers:
        return "missing"
    first = identifiers[0]
    if key == "code":
        return first[: 10 if width < 30 else 16]
    if key == "data":
        return _training_first(trace)[0].dataset_version.key
    if key == "experiment":
        return first[:12]
    return first if len(first) <= width else first[: width - 1] + "…"


SHORT_LABELS = {
    "code": "Git commit",
    "data": "Dataset",
    "features": "Features",
    "experiment": "MLflow run",
    "model": "Model version",
    "deployment": "Endpoint",
}


@dataclass(frozen=True)
class ChainDrawing:
    """One drawing of the chain diagram: where each part of a node sits, relative to the node's corner."""

    name: str
    view_box: str
    width: int
    height: int
    text_x: int
    label_y: int
    text_y: int
    # The state line: where it sits and how it is anchored; what a complete link reads; "+2 more" or not.
    state_x: int
    state_y: int
    state_end: bool
    complete: str
    more: bool
    # The arrow to the next node, from and to, and its marker's id.
    edge: tuple[int, int, int, int]
    arrow: str
    # From one node to the next; the characters of a node's text.
    step: tuple[int, int]
    text_width: int


WIDE = ChainDrawing(
    "wide", "0 0 1150 100", 170, 80, 12, 22, 46, 12, 67, False, "✓ complete", True, (172, 40, 188, 40),
    "chain-arrow", (190, 0), 20,
)  # fmt: skip
TALL = ChainDrawing(
    "tall", "0 0 360 504", 340, 64, 14, 24, 48, 326, 24, True, "✓", False, (170, 66, 170, 82),
    "chain-arrow-v", (0, 84), 36,
)  # fmt: skip


def chain_nodes(trace: Trace) -> tuple[list[ChainNode], list[ChainNode]]:
    """The six links as nodes of the two drawings: a wide row for laptops, a column for phones."""
    placed: dict[ChainDrawing, list[ChainNode]] = {WIDE: [], TALL: []}
    for index, link in enumerate(trace.links):
        more = f"+{len(link.identifiers) - 1} more" if len(link.identifiers) > 1 else ""
        common = {
            "key": link.key,
            "label": SHORT_LABELS[link.key],
            "state": link.state,
            "more": more,
            "url": _node_url(link.key, trace) if link.present else "",
            "explanation": "; ".join(link.warnings) if link.warnings else ("" if link.present else link.explanation),
        }
        for drawing, nodes in placed.items():
            text = "not yet" if link.not_yet else _short(link.key, link.identifiers, trace, drawing.text_width)
            dx, dy = drawing.step
            nodes.append(ChainNode(x=10 + index * dx, y=10 + index * dy, text=text, **common))
    return placed[WIDE], placed[TALL]


# What a state other than complete reads as under a node's text.
_STATE_WORDS = {"warning": "⚠ warning", "missing": "✕ missing", "pending": "… after approval"}


def _svg_node(node: ChainNode, shape: SafeString) -> SafeString:
    """One node: a link to the page of what it names when there is one, its tooltip, then its ``shape``."""
    tooltip = markup(
        "<title>{}: {}{}</title>", node.label, node.state, f" — {node.explanation}" if node.explanation else ""
    )
    attributes = markup('class="chain-node node-{}" data-link="{}"', node.state, node.key)
    if node.url:
        return markup('<a href="{}" {}>{}{}</a>', safe_href(node.url), attributes, tooltip, shape)
    return markup("<g {}>{}{}</g>", attributes, tooltip, shape)


@register.simple_tag
def chain_diagram(trace: Trace) -> SafeString:
    """The six links as boxes joined by arrows, twice: a wide row for laptops, a column for phones.

    Drawn in Python rather than a template: a release's page shows it on every view, and twelve nodes of
    template variables cost more than the rest of the chain's markup."""
    wide, tall = chain_nodes(trace)
    return markup(
        '<figure class="chain-diagram" aria-label="Release chain: six links">{}{}</figure>',
        _draw(WIDE, wide),
        _draw(TALL, tall),
    )


def _draw(drawing: ChainDrawing, nodes: list[ChainNode]) -> SafeString:
    arrow = drawing.arrow  # the marker every edge of this drawing ends with
    parts = [
        markup(
            '<title id="chain-{}-title">Chain: {}</title>',
            drawing.name,
            ", ".join(f"{n.label} {n.state}" for n in nodes),
        ),
        markup(
            '<defs><marker id="{}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8a94a6"/></marker></defs>',
            arrow,
        ),
    ]
    x1, y1, x2, y2 = drawing.edge
    for number, n in enumerate(nodes):
        if number < len(nodes) - 1:
            parts.append(
                markup(
                    '<line x1="{}" y1="{}" x2="{}" y2="{}" class="chain-edge" marker-end="url(#{})"/>',
                    n.x + x1,
                    n.y + y1,
                    n.x + x2,
                    n.y + y2,
                    arrow,
                )
            )
        state = _STATE_WORDS.get(n.state, drawing.complete) + (f" · {n.more}" if drawing.more and n.more else "")
        shape = markup(
            '<rect x="{}" y="{}" width="{}" height="{}" rx="8"/>'
            '<text x="{tx}" y="{}" class="node-label">{}</text>'
            '<text x="{tx}" y="{}" class="node-text">{}</text>'
            '<text x="{}" y="{}" class="node-state"{}>{}</text>',
            n.x,
            n.y,
            drawing.width,
            drawing.height,
            n.y + drawing.label_y,
            n.label,
            n.y + drawing.text_y,
            n.text,
            n.x + drawing.state_x,
            n.y + drawing.state_y,
            SafeString(' text-anchor="end"') if drawing.state_end else "",
            state,
            tx=n.x + drawing.text_x,
        )
        parts.append(_svg_node(n, shape))
    return markup(
        '<svg class="chain-{}" viewBox="{}" role="img" aria-labelledby="chain-{}-title">{}</svg>',
        drawing.name,
        drawing.view_box,
        drawing.name,
        markup_join("", "{}", ((part,) for part in parts)),
    )


# Deployment timeline ------------------------------------------------------------------------

PALETTE = ("#1f5fbf", "#2e8b57", "#8a4fbf", "#c27c0e", "#20808d", "#b8466e")
# Releases drawn, newest first; older history stays in the table under the chart.
TIMELINE_LANES = 12


@dataclass(frozen=True)
class TimelineShape:
    """One drawing of the timeline: its width in SVG units, the label column, and how many characters fit there.

    Each drawing is scaled evenly to the width it is shown at (no stretching), so the labels keep
    their shape: 13 units is about 15 px on a laptop (the wide one) and 12.5 px on a phone (the narrow one).
    """

    width: int
    label_width: int
    label_chars: int


TIMELINE_WIDE = TimelineShape(width=1000, label_width=150, label_chars=20)
TIMELINE_NARROW = TimelineShape(width=360, label_width=112, label_chars=13)
LANE_HEIGHT = 26


def _timeline_events(deployments: list[Deployment]) -> list[Deployment]:
    """Oldest first, from the deployment after which at most TIMELINE_LANES releases appear."""
    events = sorted(deployments, key=lambda d: (d.deployed_at, d.pk))
    seen: set[int] = set()
    for index in range(len(events) - 1, -1, -1):
        seen.add(events[index].release_id)
        if len(seen) > TIMELINE_LANES:
            return events[index + 1 :]
    return events


def _timeline_drawing(
    shape: TimelineShape, events: list[Deployment], now: datetime.datetime, marker: datetime.datetime | None
) -> dict[str, Any]:
    start = events[0].deployed_at
    span = max((now - start).total_seconds(), 1.0)
    left = shape.label_width + 8
    usable = shape.width - left - 6

    def x_of(when: datetime.datetime) -> float:
        return left + usable * max(0.0, min(1.0, (when - start).total_seconds() / span))

    lanes: dict[int, dict[str, Any]] = {}
    for index, event in enumerate(events):
        lane = lanes.get(event.release_id)
        if lane is None:
            name = event.release.name
            lane = lanes[event.release_id] = {
                "name": name,
                "label": name if len(name) <= shape.label_chars else name[: shape.label_chars - 1] + "…",
                "url": address("releases:release", name),
                "colour": PALETTE[len(lanes) % len(PALETTE)],
                "y": 6 + len(lanes) * LANE_HEIGHT,
                "bars": [],
                "live": False,
            }
        end = events[index + 1].deployed_at if index + 1 < len(events) else now
        x1, x2 = x_of(event.deployed_at), x_of(end)
        lane["bars"].append(
            {
                "x": round(x1, 1),
                "width": round(max(x2 - x1, 2.0), 1),
                "event": event,
                "rollback": event.kind == Deployment.Kind.ROLLBACK,
            }
        )
        lane["live"] = index + 1 == len(events)
    height = 12 + len(lanes) * LANE_HEIGHT
    return {
        "shape": shape,
        "lanes": list(lanes.values()),
        "height": height,
        "axis_x": left,
        "axis_y": height - 4,
        "marker_x": round(x_of(marker), 1) if marker is not None and marker >= start else None,
    }


@register.inclusion_tag("releases/_deployment_timeline.html")
def deployment_timeline(deployments: list[Deployment], marker: datetime.datetime | None = None) -> dict[str, Any]:
    """One lane per release, a bar for each time it was live (until the next deployment replaced it).

    Drawn twice like the chain diagram, wide for laptops and narrow for phones, so the release
    names stay readable and never overlap at either width.
    """
    events = _timeline_events(deployments)
    if not events:
        return {"drawings": []}
    now = timezone.now()
    return {
        "drawings": [
            {**_timeline_drawing(TIMELINE_WIDE, events, now, marker), "css": "tl-wide"},
            {**_timeline_drawing(TIMELINE_NARROW, events, now, marker), "css": "tl-narrow"},
        ],
        "start": events[0].deployed_at,
        "now": now,
        "shown_all": len(events) == len(deployments),
    }


# Metric chart -------------------------------------------------------------------------------


@register.inclusion_tag("releases/_metric_chart.html")
def metric_chart(series: MetricSeries) -> dict[str, Any]:
    """One metric across model versions as a small line chart; worse-than-before points in red."""
    width, height, pad = 320, 124, 24
    values = [p.value for p in series.points]
    low, high = min(values), max(values)
    spread = (high - low) or abs(high) or 1.0
    count = len(series.points)
    points = []
    for index, point in enumerate(series.points):
        x = pad + (width - 2 * pad) * (index / (count - 1) if count > 1 else 0.5)
        y = height - pad - 8 - (height - 2 * pad - 8) * ((point.value - low) / spread if high != low else 0.5)
        points.append({"x": round(x, 1), "y": round(y, 1), "point": point})
    return {
        "series": series,
        "points": points,
        "polyline": " ".join(f"{p['x']},{p['y']}" for p in points),
        "width": width,
        "height": height,
        "low": low,
        "high": high,
        "last": series.points[-1],
    }


@register.filter
def describe_action(action: str) -> str:
    """An audit action in plain words, from the audit vocabulary."""
    return vocabulary.describe(action)


@register.simple_tag
def signing_key_fingerprint() -> str:
    """The fingerprint auditors pin the evidence verifier to (verify.py --key)."""
    return signing.fingerprint()


@register.simple_tag
def status_badge(status: ReleaseStatus) -> SafeString:
    """A release's one status as a badge (``lineage.release_status``), its detail as the tooltip."""
    if status.detail:
        return markup('<span class="state state-{}" title="{}">{}</span>', status.key, status.detail, status.label)
    return markup('<span class="state state-{}">{}</span>', status.key, status.label)


@register.simple_tag
def completeness(trace: Trace) -> SafeString:
    """Links present of those expected by now; the tooltip explains each gap and what is still to come."""
    done, expected = trace.completeness
    gaps, upcoming = trace.gaps, trace.upcoming
    return markup(
        '<span class="completeness{}" title="{}">{}/{} links{}</span>',
        " incomplete" if gaps else "",
        "".join(f"{link.explanation} " for link in gaps) + "".join(link.explanation for link in upcoming),
        done,
        expected,
        "".join(f" · {link.label.lower()} pending" for link in upcoming),
    )


@register.simple_tag
def trace_warnings(trace: Trace) -> SafeString:
    """Every warning of every link of the trace, one line each (a quarantined input, a moved tag...)."""
    return markup_join("", '<div class="warning">⚠ {}</div>', ((w,) for link in trace.links for w in link.warnings))


@register.simple_tag(takes_context=True)
def board_row(context: template.Context, status: EndpointStatus) -> SafeString:
    """One endpoint's row on the board: the endpoint, its live release with its one status, warnings, since when,
    by whom and its lineage, then the rollback target and the action. Built here rather than in the board's
    template: the board shows 25 rows a page, and the template engine's lookups cost 0.5 ms a row, four
    times the tags they call (the same ones, so a badge, a time or a button is still written once)."""
    request: HttpRequest = context["request"]
    endpoint, live, trace = status.endpoint, status.live, status.live_trace
    cells = [
        markup(
            '<td data-label="Endpoint"><a href="{}"><strong>{}</strong></a></td>',
            address("releases:endpoint", endpoint.name),
            endpoint.name,
        )
    ]
    if live is not None and trace is not None:
        cells.append(
            markup(
                '<td data-label="Live release"><a class="release-name" href="{}">{}</a> {}{}{}</td>'
                '<td data-label="Since">{}</td><td data-label="Deployed by">{}</td><td data-label="Lineage">{}</td>',
                address("releases:release", live.release.name),
                live.release.name,
                status_badge(release_status(trace)),
                SafeString(' <span class="badge">rolled back</span>') if live.kind == Deployment.Kind.ROLLBACK else "",
                trace_warnings(trace),
                utc(live.deployed_at),
                live.actor,
                completeness(trace),
            )
        )
    else:
        cells.append(SafeString('<td colspan="4" class="muted">Nothing deployed</td>'))
    target = status.rollback_target
    if target is not None:
        shown = markup('<a href="{}">{}</a>', address("releases:release", target.name), target.name)
    elif not may_act_as(request.user, "on-call", "ml-leads"):
        shown = markup('<span class="muted">{}</span>', status.rollback_blocker)
    else:
        shown = SafeString("")
    cells.append(markup('<td data-label="Rollback target">{} {}</td>', shown, rollback_action(context, status)))
    return markup("<tr>{}</tr>", SafeString("".join(cells)))


@register.simple_tag(takes_context=True)
def rollback_action(context: template.Context, status: EndpointStatus) -> SafeString:
    """For on-call engineers and ML leads: the button that rolls the endpoint back to its rollback target,
    or a disabled one saying why there is none (``status.rollback_blocker``). Nothing for anyone else."""
    request: HttpRequest = context["request"]
    if not may_act_as(request.user, "on-call", "ml-leads"):
        return SafeString("")
    if status.rollback_target is not None:
        return markup(
            '<div class="rollback-action"><a class="button danger" href="{}?next={}">Roll back to {}…</a></div>',
            address("releases:rollback", status.endpoint.name),
            quote(request.get_full_path(), safe="/"),
            status.rollback_target.name,
        )
    return markup(
        '<div class="rollback-action"><button type="button" class="button" disabled aria-describedby="{0}">'
        'Roll back</button> <span class="muted small" id="{0}">Cannot roll back: {1}</span></div>',
        f"no-rollback-{status.endpoint.pk}",
        status.rollback_blocker,
    )
