"""Evidence for a period: the population of production changes an auditor samples from, and each
release's full record, in one signed bundle that verify.py checks like a release's.

The bundle holds ``population.json`` (and ``population.csv``): every deployment and rollback in the period
on the chosen environments, with who, when and why, what it replaced and the approvals in force; then,
under ``releases/NAME/``, the files a release's own bundle carries; ``events.json`` holds every release's
audit events (each with its inclusion proof) and the export's own event; ``report.html`` is for people.

A large period is prepared by a worker (``request_period_evidence``, then ``build_requested_evidence``)
and kept for download until it expires; the command builds it in-process.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from audit import checkpoints, log, signing
from audit.log import Actor, actor_label
from audit.models import AuditEvent
from audit.trail import csv_lines
from releases import dispatch, lineage
from releases.errors import InvalidInput, LineageError, PermissionRefused
from releases.evidence.bundle import audit_documents, signed_zip
from releases.evidence.documents import pretty, release_documents
from releases.models import EvidenceExport
from releases.roles import AUDITORS, ML_LEADS, require_role
from releases.services import refusals

# Sequence numbers fetched per query: well under PostgreSQL's 65,535 parameters a statement.
EVENTS_PER_QUERY = 10_000
POPULATION_COLUMNS = (
    "deployed_at",
    "kind",
    "environment",
    "endpoint",
    "release",
    "replaced",
    "actor",
    "source",
    "reason",
    "approved_when_deployed",
    "approvals_in_force",
    "lineage_digest",
)
Progress = Callable[[int, int], None]


class PeriodBundle(NamedTuple):
    """A period's bundle: its file name and bytes, and how many changes and releases it holds."""

    filename: str
    data: bytes
    changes: int
    releases: int


def period_key(period: lineage.Period) -> str:
    """How the audit log names a period: an ISO 8601 interval."""
    return f"{period.since.isoformat()}/{period.until.isoformat()}"


def _population(period: lineage.Period, environments: Sequence[str], *, by: Actor) -> list[lineage.Change]:
    """The period's population, refused (and the refusal recorded) when the role or the population is wrong."""
    key = period_key(period)
    with refusals.recorded("evidence.export_refused", by=by, object_type="evidence", object_key=key):
        require_role(by, AUDITORS, ML_LEADS, to="export evidence")
        changes = lineage.population(period, environments)
        if not changes:
            raise _nothing_to_export(period, environments)
    return changes


def _nothing_to_export(period: lineage.Period, environments: Sequence[str]) -> InvalidInput:
    return InvalidInput(
        f"No deployment or rollback on {' or '.join(environments)} endpoints from {period.label}: "
        "there is nothing to export for this period.",
        rule="empty_population",
    )


def export_period_evidence(
    period: lineage.Period,
    environments: Sequence[str],
    *,
    by: Actor,
    progress: Progress | None = None,
) -> PeriodBundle:
    """Build the period's bundle; the export is audited and covered by the checkpoint the bundle carries.

    ``progress(done, total)`` is told after each release's record is read.
    """
    changes = _population(period, environments, by=by)
    traces = list({change.trace.release.pk: change.trace for change in changes}.values())
    exported_at = timezone.now()
    documents: dict[str, bytes] = {}
    seqs: set[int] = set()
    for done, trace in enumerate(traces, start=1):
        periods = lineage.release_periods(trace.release)
        folder = f"releases/{trace.release.name}/"
        for name, data in release_documents(trace, periods, exported_at).items():
            documents[folder + name] = data
        seqs.update(lineage.release_events(trace, periods).values_list("seq", flat=True))
        if progress is not None:
            progress(done, len(traces))
    population = [change.as_dict() for change in changes]
    documents["population.json"] = pretty({"period": _period_document(period, environments), "changes": population})
    documents["population.csv"] = "".join(csv_lines(POPULATION_COLUMNS, map(_csv_row, population))).encode()
    with transaction.atomic():
        own = log.record(
            "evidence.exported",
            actor=by,
            object_type="evidence",
            object_key=period_key(period),
            new={
                **_period_document(period, environments),
                "changes": len(changes),
                "releases": len(traces),
                "population_sha256": hashlib.sha256(documents["population.json"]).hexdigest(),
            },
        )
        checkpoint = checkpoints.issue_checkpoint()
        seqs.add(own.seq)
        events = _events(sorted(seq for seq in seqs if seq <= checkpoint.size))
        documents |= audit_documents(checkpoint, events)
    name = (
        f"evidence-{'-'.join(environments)}-{period.since:%Y%m%d}-{period.until:%Y%m%d}"
        f"-{exported_at:%Y%m%dT%H%M%SZ}.zip"
    )
    rollbacks = sum(1 for change in changes if change.deployment.kind == "rollback")
    approved = sum(1 for change in changes if change.approved_when_deployed)
    documents["report.html"] = render_to_string(
        "audit/period_report.html",
        {
            "period": period,
            "environments": environments,
            "changes": changes,
            "rollbacks": rollbacks,
            "approved": approved,
            "unapproved": len(changes) - approved,
            "traces": traces,
            "checkpoint": checkpoint,
            "exported_at": exported_at,
            "exported_by": actor_label(by),
            "key_fingerprint": signing.fingerprint(),
            "bundle_name": name,
            "events": len(events),
        },
    ).encode()
    head = {
        "kind": "period",
        "period": _period_document(period, environments),
        "releases": [trace.release.name for trace in traces],
        "exported_at": exported_at.isoformat(),
        "exported_by": actor_label(by),
    }
    return PeriodBundle(name, signed_zip(documents, head), len(changes), len(traces))


def _period_document(period: lineage.Period, environments: Sequence[str]) -> dict[str, Any]:
    return {"from": period.since.isoformat(), "to": period.until.isoformat(), "environments": list(environments)}


def _csv_row(change: dict[str, Any]) -> list[object]:
    approvals = "; ".join(
        f"{a['approver_name']} ({a['meaning']}) {a['signed_at']}{'' if a['counts_now'] else ' [no longer counts]'}"
        for a in change["approvals_in_force"]
    )
    return [change[column] if column != "approvals_in_force" else approvals for column in POPULATION_COLUMNS]


def _events(seqs: list[int]) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    for start in range(0, len(seqs), EVENTS_PER_QUERY):
        events.extend(AuditEvent.objects.filter(seq__in=seqs[start : start + EVENTS_PER_QUERY]).order_by("seq"))
    return events


def request_period_evidence(period: lineage.Period, environments: Sequence[str], *, by: Actor) -> EvidenceExport:
    """Ask a worker to prepare the period's bundle; the request is audited and the page follows it."""
    key = period_key(period)
    with refusals.recorded("evidence.export_refused", by=by, object_type="evidence", object_key=key):
        require_role(by, AUDITORS, ML_LEADS, to="export evidence")
        if not isinstance(by, User):
            raise PermissionRefused("only a signed-in person can ask for a bundle to be prepared for them")
        if not lineage.changes_in(period, environments).exists():
            raise _nothing_to_export(period, environments)
    with transaction.atomic():
        export = EvidenceExport.objects.create(
            requested_by=by, since=period.since, until=period.until, environments=list(environments)
        )
        log.record("evidence.requested", actor=by, subject=export, new=_period_document(period, environments))
        dispatch.after_commit(dispatch.BUILD_EVIDENCE, str(export.pk))
    return export


def build_requested_evidence(export_id: str) -> EvidenceExport | None:
    """The worker's half of a request: build the bundle as the person who asked (their role checked again),
    keep it until it expires, and tell the page how far it has got. A refusal is kept as the reason."""
    export = EvidenceExport.objects.select_related("requested_by").filter(pk=export_id).first()
    if export is None or not export.in_progress:
        return export
    EvidenceExport.objects.filter(pk=export.pk).update(state=EvidenceExport.State.RUNNING)

    def progress(done: int, total: int) -> None:
        EvidenceExport.objects.filter(pk=export.pk).update(releases_done=done, releases_total=total)

    period = lineage.Period(export.since, export.until)
    try:
        bundle = export_period_evidence(period, export.environments, by=export.requested_by, progress=progress)
    except LineageError as refused:
        _finish(export, state=EvidenceExport.State.FAILED, error=refused.message)
        return export
    except Exception:
        _finish(export, state=EvidenceExport.State.FAILED, error="The bundle could not be built; see the worker log.")
        raise
    export.bundle.save(f"{export.pk}.zip", ContentFile(bundle.data), save=False)
    _finish(
        export,
        state=EvidenceExport.State.READY,
        # The counts of the bundle itself, not the period read again: a backfill since must not show.
        changes=bundle.changes,
        releases_total=bundle.releases,
        bundle=export.bundle.name,
        filename=bundle.filename,
        size=len(bundle.data),
        sha256=hashlib.sha256(bundle.data).hexdigest(),
        expires_at=timezone.now() + datetime.timedelta(hours=settings.LINEAGE_EVIDENCE_KEEP_HOURS),
    )
    return export


def _finish(export: EvidenceExport, **fields: Any) -> None:
    fields["finished_at"] = timezone.now()
    EvidenceExport.objects.filter(pk=export.pk).update(**fields)
    for name, value in fields.items():
        setattr(export, name, value)


def expire_bundles(now: datetime.datetime | None = None) -> int:
    """Delete the files of prepared bundles past their expiry; the rows stay, marked expired."""
    now = now or timezone.now()
    expired = 0
    for export in EvidenceExport.objects.filter(state=EvidenceExport.State.READY, expires_at__lte=now):
        if export.bundle:
            export.bundle.delete(save=False)
        expired += EvidenceExport.objects.filter(pk=export.pk).update(state=EvidenceExport.State.EXPIRED, bundle="")
    return expired
