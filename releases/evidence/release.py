"""Evidence bundle of one release: everything an auditor needs, verifiable offline with audit/verifier.py."""

from __future__ import annotations

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from audit import checkpoints, log, signing
from audit.log import Actor, actor_label
from releases import lineage
from releases.evidence.bundle import audit_documents, signed_zip
from releases.evidence.documents import release_documents
from releases.models import Release
from releases.roles import AUDITORS, ML_LEADS
from releases.services import refusals


def export_evidence(release: Release, *, by: Actor) -> tuple[str, bytes]:
    """Build the zip for ``release``; the export itself is audited and covered by the signed checkpoint."""
    refusals.check_role("evidence.export_refused", AUDITORS, ML_LEADS, by=by, subject=release, to="export evidence")
    with transaction.atomic():
        trace = lineage.trace(release.name)
        log.record(
            "evidence.exported",
            actor=by,
            subject=release,
            new={"lineage_digest": trace.digest},
        )
        checkpoint = checkpoints.issue_checkpoint()
        periods = lineage.release_periods(trace.release)
        events = list(lineage.release_events(trace, periods).filter(seq__lte=checkpoint.size))
        documents = audit_documents(checkpoint, events)
    exported_at = timezone.now()
    bundle_name = f"{release.name}-evidence-{exported_at:%Y%m%dT%H%M%SZ}.zip"
    documents |= release_documents(trace, periods, exported_at)
    documents["report.html"] = render_to_string(
        "audit/evidence_report.html",
        {
            "trace": trace,
            "approval": lineage.approval_state(trace),
            "status": lineage.release_status(trace),
            "events": events,
            "period_rows": [(p, p.as_dict(exported_at)["duration"]) for p in periods],
            "checkpoint": checkpoint,
            "exported_at": exported_at,
            "exported_by": actor_label(by),
            "key_fingerprint": signing.fingerprint(),
            "bundle_name": bundle_name,
        },
    ).encode()
    head = {"release": release.name, "exported_at": exported_at.isoformat(), "exported_by": actor_label(by)}
    return bundle_name, signed_zip(documents, head)
