"""Evidence bundle of a release: everything an auditor needs, verifiable offline with audit/verifier.py."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from audit import checkpoints, log, signing, verifier
from audit.log import Actor, actor_label
from audit.models import canonical_json
from releases import lineage
from releases.models import Release
from releases.roles import AUDITORS, ML_LEADS
from releases.services import refusals


def _trace_document(trace: lineage.Trace) -> dict[str, Any]:
    return {
        "release": trace.release.name,
        "status": lineage.release_status(trace).as_dict(),
        "lineage_digest": trace.digest,
        "chain": trace.chain(),
        "links": [
            {
                "key": link.key,
                "label": link.label,
                "present": link.present,
                "identifiers": link.identifiers,
                "explanation": "" if link.present else link.explanation,
                "warnings": link.warnings,
            }
            for link in trace.links
        ],
    }


def _approvals_document(trace: lineage.Trace) -> list[dict[str, Any]]:
    state = lineage.approval_state(trace)
    stale = {approval.pk: changes for approval, changes in state.stale}
    return [
        {
            "approver": approval.approver.get_username(),
            "approver_name": approval.approver_name,
            "decision": approval.decision,
            "meaning": approval.meaning,
            "comment": approval.comment,
            "signed_at": approval.signed_at.isoformat(),
            "signed_digest": approval.signed_digest,
            "counts": approval in state.valid,
            "no_longer_counts_because": stale.get(approval.pk, []),
            "statement": approval.statement().decode(),
            "signature": approval.signature,
        }
        for approval in trace.approvals
    ]


def _deployments_document(trace: lineage.Trace) -> list[dict[str, Any]]:
    return [
        {
            "endpoint": d.endpoint.name,
            "environment": d.endpoint.environment,
            "deployed_at": d.deployed_at.isoformat(),
            "kind": d.kind,
            "actor": d.actor,
            "source": d.source,
            "reason": d.reason,
        }
        for d in trace.deployments
    ]


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
        proofs = checkpoints.inclusion_proofs([e.seq for e in events], checkpoint)
        witnessed = [w.as_dict() for w in checkpoints.witnessed_before(checkpoint)]
    exported_at = timezone.now()
    documents: dict[str, bytes] = {
        "trace.json": _pretty(_trace_document(trace)),
        "approvals.json": _pretty(_approvals_document(trace)),
        "deployments.json": _pretty(_deployments_document(trace)),
        # How long it was live on each endpoint, and what ended each period (often a rollback).
        "periods.json": _pretty([period.as_dict(exported_at) for period in periods]),
        "events.json": _pretty([{"fields": e.hashed_fields(), "hash": e.hash, "proof": proofs[e.seq]} for e in events]),
        "checkpoint.note": checkpoint.cosigned_note().encode(),
        "public_key.pem": signing.public_key_pem().encode(),
        "verify.py": Path(verifier.__file__).read_bytes(),
    }
    if witnessed:
        documents["witnessed.json"] = _pretty(witnessed)
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
        },
    ).encode()
    manifest = canonical_json(
        {
            "release": release.name,
            "exported_at": exported_at.isoformat(),
            "exported_by": actor_label(by),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(documents.items())},
        }
    ).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in sorted(documents.items()):
            bundle.writestr(name, data)
        bundle.writestr(verifier.MANIFEST, manifest)
        bundle.writestr(verifier.MANIFEST_SIGNATURE, signing.sign(manifest) + "\n")
    return f"{release.name}-evidence-{exported_at:%Y%m%dT%H%M%SZ}.zip", buffer.getvalue()


def _pretty(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode()
