"""What an announced audit event says outside the product: a stable JSON document, or a Slack message.

Each outbound event is one audit event (``audit.vocabulary.OUTBOUND_EVENTS``): who, when and why come
from the event itself; the names around it (the release's model version, the endpoint's environment)
from the rows it is about, as they stand when it is announced. A failed verification of the log is
announced once per incident: while an earlier failure is still unacknowledged, the alarm is already up.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.urls import reverse

from audit.models import AuditEvent, VerificationRun
from audit.vocabulary import ANNOUNCED
from releases import lineage
from releases.models import DatasetVersion, Endpoint, Release

# The document's shape; a change that removes or renames a field gets a new number.
DOCUMENT_VERSION = 1
# Reasons and errors are cut in the one-line summary (the document keeps the whole reason).
SUMMARY_REASON_CHARS = 300
# Releases named in a quarantine's details, at most.
RELEASES_LISTED = 50


@dataclass(frozen=True)
class Announcement:
    """One audit event as it is announced: its type, a title and a one-line summary, and the names it is about."""

    type: str
    title: str
    summary: str
    event: AuditEvent
    release: str | None = None
    model_version: str | None = None
    lineage_digest: str | None = None
    endpoint: str | None = None
    environment: str | None = None
    dataset_version: str | None = None
    source: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # Pages on this site about it, the one to open first (the event's own page is added to the document);
    # absolute when LINEAGE_BASE_URL is set, else paths.
    links: dict[str, str] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """The JSON document a ``json`` subscription receives: every key always present (null when not about it)."""
        event = self.event
        return {
            "version": DOCUMENT_VERSION,
            "type": self.type,
            "title": self.title,
            "summary": self.summary,
            "occurred_at": _utc(event.at),
            "actor": event.actor,
            "reason": event.reason,
            "release": self.release,
            "model_version": self.model_version,
            "lineage_digest": self.lineage_digest,
            "endpoint": self.endpoint,
            "environment": self.environment,
            "dataset_version": self.dataset_version,
            "source": self.source,
            "details": self.details,
            "links": {**self.links, "audit_event": absolute(reverse("releases:audit_event", args=[event.seq]))},
            "audit_event": {
                "seq": event.seq,
                "action": event.action,
                "object_type": event.object_type,
                "object_key": event.object_key,
                "hash": event.hash,
            },
        }

    def slack(self) -> dict[str, Any]:
        """The message a ``slack`` subscription receives: Slack's ``text`` and ``blocks``, its mrkdwn escaped."""
        heading = f"*{_mrkdwn(self.title)}*\n{_mrkdwn(self.summary)}"
        context = [f"`{self.type}`", f"{self.event.at:%Y-%m-%d %H:%M} UTC", f"audit event #{self.event.seq}"]
        page = next(iter(self.links.values()), "")
        if page.startswith(("http://", "https://")):
            context.append(f"<{page}|Open in release lineage>")
        return {
            "text": _mrkdwn(f"{self.title}: {self.summary}"),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": heading[:3000]}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
            ],
        }


def announcement(event: AuditEvent) -> Announcement | None:
    """How ``event`` is announced, or None when it is not (not an announced action, or an incident already told)."""
    event_type = ANNOUNCED.get(event.action)
    if event_type is None:
        return None
    if event_type == "audit.verification_failed" and not _opens_incident(event):
        return None
    return _BUILDERS[event_type](event_type, event)


def absolute(path: str) -> str:
    """A path on this site as a link in a message: under LINEAGE_BASE_URL when it is set."""
    return f"{settings.LINEAGE_BASE_URL}{path}"


def _utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _mrkdwn(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>): a reason typed by a person must stay text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_REASON_CHARS else text[: SUMMARY_REASON_CHARS - 1] + "…"


def _because(reason: str) -> str:
    return f": {_cut(reason)}" if reason.strip() else ""


def _opens_incident(event: AuditEvent) -> bool:
    """A failed verification starts an incident unless an earlier failure is still unacknowledged."""
    run = (event.new or {}).get("run") if isinstance(event.new, dict) else None
    if not isinstance(run, int):
        return True
    return not VerificationRun.objects.filter(ok=False, acknowledgment__isnull=True, pk__lt=run).exists()


def _release_fields(name: str) -> dict[str, Any]:
    release = Release.objects.select_related("model_version__registered_model").filter(name=name).first()
    links = {"release": absolute(reverse("releases:release", args=[name]))}
    if release is None:
        return {"release": name, "links": links}
    return {
        "release": name,
        "model_version": release.model_version.key,
        "lineage_digest": release.lineage_digest or None,
        "links": links,
    }


def _release_event(title: str, summary: Callable[[AuditEvent], str]) -> Callable[[str, AuditEvent], Announcement]:
    def build(event_type: str, event: AuditEvent) -> Announcement:
        fields = _release_fields(event.object_key)
        if event_type == "release.submitted":
            fields["links"]["approvals"] = absolute(reverse("releases:approvals"))
        return Announcement(type=event_type, title=title, summary=summary(event), event=event, **fields)

    return build


def _deployment(event_type: str, event: AuditEvent) -> Announcement:
    new = event.new if isinstance(event.new, dict) else {}
    name = event.object_key
    release = str(new.get("release", "")) or None
    endpoint = Endpoint.objects.filter(name=name).first()
    environment = endpoint.environment if endpoint else None
    where = f"{name} ({environment})" if environment else name
    if event_type == "deployment.rolled_back":
        title = "Rolled back"
        summary = f"{where} was rolled back to {release} by {event.actor}{_because(event.reason)}"
    else:
        title = "Deployed"
        summary = f"{release} is live on {where}, deployed by {event.actor}{_because(event.reason)}"
    around = _release_fields(release) if release else {"links": {}}
    return Announcement(
        type=event_type,
        title=title,
        summary=summary,
        event=event,
        release=release,
        model_version=around.get("model_version"),
        lineage_digest=around.get("lineage_digest"),
        endpoint=name,
        environment=environment,
        details={"kind": new.get("kind"), "source": new.get("source"), "deployed_at": new.get("deployed_at")},
        links={"endpoint": absolute(reverse("releases:endpoint", args=[name])), **around["links"]},
    )


def _quarantine(event_type: str, event: AuditEvent) -> Announcement:
    key = event.object_key
    version = DatasetVersion.objects.by_key(key).select_related("dataset").first()
    using = (
        list(lineage.releases_using([version]).order_by("name").values_list("name", flat=True)[:RELEASES_LISTED])
        if version is not None
        else []
    )
    links: dict[str, str] = {}
    if version is not None:
        links["dataset_version"] = absolute(
            reverse("releases:dataset_version", args=[version.dataset.name, version.version])
        )
    return Announcement(
        type=event_type,
        title="Dataset quarantined",
        summary=f"{key} was quarantined by {event.actor}{_because(event.reason)}",
        event=event,
        dataset_version=key,
        details={"releases_using": using},
        links=links,
    )


def _sync(event_type: str, event: AuditEvent) -> Announcement:
    new = event.new if isinstance(event.new, dict) else {}
    kind = event.object_type.removesuffix("_source")
    source = f"{kind} source {event.object_key}"
    minutes = new.get("minutes")
    if event_type == "sync.failing":
        title = "Sync failing"
        summary = (
            f"Sync of {source} has failed for {minutes} minutes "
            f"({new.get('failures_in_a_row')} attempts in a row){_because(event.reason)}"
        )
    else:
        title = "Sync recovered"
        summary = f"Sync of {source} works again" + (f" after failing for {minutes} minutes" if minutes else "")
    return Announcement(
        type=event_type,
        title=title,
        summary=summary,
        event=event,
        source=event.object_key,
        details={"kind": kind, **new},
        links={"sync": absolute(reverse("releases:sync"))},
    )


def _verification(event_type: str, event: AuditEvent) -> Announcement:
    new = event.new if isinstance(event.new, dict) else {}
    where = f" at event #{new['broken_seq']}" if new.get("broken_seq") is not None else ""
    return Announcement(
        type=event_type,
        title="Audit log verification failed",
        summary=f"Audit log verification failed{where}: {_cut(str(new.get('problem', '')))}",
        event=event,
        details={"broken_seq": new.get("broken_seq"), "problem": new.get("problem"), "run": new.get("run")},
        links={"audit_trail": absolute(reverse("releases:audit_events"))},
    )


_BUILDERS: dict[str, Callable[[str, AuditEvent], Announcement]] = {
    "release.submitted": _release_event(
        "Waiting for a signature", lambda e: f"{e.object_key} is waiting for a signature (submitted by {e.actor})"
    ),
    "release.approved": _release_event(
        "Approved", lambda e: f"{e.object_key} is approved: it has every signature it needs (last by {e.actor})"
    ),
    "release.rejected": _release_event(
        "Rejected", lambda e: f"{e.object_key} was rejected by {e.actor}{_because(e.reason)}"
    ),
    "release.approval_invalidated": _release_event(
        "Approval invalidated", lambda e: f"{e.object_key} lost its approval{_because(e.reason)}"
    ),
    "deployment.deployed": _deployment,
    "deployment.rolled_back": _deployment,
    "dataset_version.quarantined": _quarantine,
    "sync.failing": _sync,
    "sync.recovered": _sync,
    "audit.verification_failed": _verification,
}
