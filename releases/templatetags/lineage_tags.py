"""Template filters and tags for the pages: UTC times with relative hints, and the small SVG charts."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit import signing, vocabulary
from releases.lineage import MetricSeries, Trace
from releases.models import Deployment

register = template.Library()


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
        return format_html('<span class="muted">{}</span>', "unknown")
    value = value.astimezone(datetime.UTC)
    return format_html(
        '<time datetime="{}" title="{}">{} UTC</time> <span class="ago">{}</span>',
        value.isoformat(),
        value.strftime("%Y-%m-%d %H:%M:%S UTC"),
        value.strftime("%Y-%m-%d %H:%M"),
        ago(value),
    )


@register.simple_tag(takes_context=True)
def query_with(context: template.Context, **changes: Any) -> str:
    """The current query string with some parameters replaced (for pagination links)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        params[key] = str(value)
    return "?" + params.urlencode()


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
        return reverse("releases:commit", args=[trace.commit.sha])
    if key == "data" and trace.dataset_inputs:
        dv = _training_first(trace)[0].dataset_version
        return reverse("releases:dataset_version", args=[dv.dataset.name, dv.version])
    if key in ("features", "experiment") and trace.run is not None:
        return reverse("releases:run", args=[trace.run.run_id])
    if key == "model":
        mv = trace.model_version
        return reverse("releases:model", args=[mv.registered_model.name]) + f"#v{mv.version}"
    if key == "deployment" and trace.deployments:
        return reverse("releases:endpoint", args=[trace.deployments[0].endpoint.name])
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


@register.inclusion_tag("releases/_chain_diagram.html")
def chain_diagram(trace: Trace) -> dict[str, Any]:
    """The six links as boxes joined by arrows, twice: a wide row for laptops, a column for phones."""
    links = trace.links
    wide = []
    tall = []
    for index, link in enumerate(links):
        more = f"+{len(link.identifiers) - 1} more" if len(link.identifiers) > 1 else ""
        common = {
            "key": link.key,
            "label": SHORT_LABELS[link.key],
            "state": link.state,
            "more": more,
            "url": _node_url(link.key, trace) if link.present else "",
            "explanation": "; ".join(link.warnings) if link.warnings else ("" if link.present else link.explanation),
        }
        wide.append(ChainNode(x=10 + index * 190, y=10, text=_short(link.key, link.identifiers, trace, 20), **common))
        tall.append(ChainNode(x=10, y=10 + index * 84, text=_short(link.key, link.identifiers, trace, 36), **common))
    return {"wide": wide, "tall": tall}


# Deployment timeline ------------------------------------------------------------------------

TIMELINE_WIDTH = 1000
PALETTE = ("#1f5fbf", "#2e8b57", "#8a4fbf", "#c27c0e", "#20808d", "#b8466e")


@register.inclusion_tag("releases/_deployment_timeline.html")
def deployment_timeline(deployments: list[Deployment], marker: datetime.datetime | None = None) -> dict[str, Any]:
    """Each deployment as a bar from when it went live to when the next one replaced it (newest right)."""
    events = sorted(deployments, key=lambda d: (d.deployed_at, d.pk))
    if not events:
        return {"bars": [], "width": TIMELINE_WIDTH}
    now = timezone.now()
    start = events[0].deployed_at
    span = max((now - start).total_seconds(), 1.0)
    left, usable = 10, TIMELINE_WIDTH - 20

    def x_of(when: datetime.datetime) -> float:
        return left + usable * max(0.0, min(1.0, (when - start).total_seconds() / span))

    colours: dict[int, str] = {}
    bars = []
    for index, event in enumerate(events):
        end = events[index + 1].deployed_at if index + 1 < len(events) else now
        x1, x2 = x_of(event.deployed_at), x_of(end)
        colour = colours.setdefault(event.release_id, PALETTE[len(colours) % len(PALETTE)])
        bars.append(
            {
                "x": round(x1, 1),
                "width": round(max(x2 - x1, 2.0), 1),
                "colour": colour,
                "event": event,
                "label": event.release.name if x2 - x1 > 8 * len(event.release.name) else "",
                "rollback": event.kind == Deployment.Kind.ROLLBACK,
                "url": reverse("releases:release", args=[event.release.name]),
            }
        )
    return {
        "bars": bars,
        "width": TIMELINE_WIDTH,
        "start": start,
        "now": now,
        "marker_x": round(x_of(marker), 1) if marker is not None and marker >= start else None,
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
