"""The documents that describe one release inside an evidence bundle, whether it is exported alone or as
one of a period's population: its trace, approvals, deployments and live periods."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

from releases import lineage
from releases.evidence.standards import standard_documents


def trace_document(trace: lineage.Trace) -> dict[str, Any]:
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


def approvals_document(trace: lineage.Trace) -> list[dict[str, Any]]:
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


def deployments_document(trace: lineage.Trace) -> list[dict[str, Any]]:
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


def release_documents(
    trace: lineage.Trace, periods: Sequence[lineage.ReleasePeriod], exported_at: datetime.datetime
) -> dict[str, bytes]:
    """A release's own files, by name within its folder of the bundle."""
    return {
        "trace.json": pretty(trace_document(trace)),
        "approvals.json": pretty(approvals_document(trace)),
        "deployments.json": pretty(deployments_document(trace)),
        # How long it was live on each endpoint, and what ended each period (often a rollback).
        "periods.json": pretty([period.as_dict(exported_at) for period in periods]),
        # The same evidence in the standard forms auditors' tools read (standards.py).
        **standard_documents(trace),
    }


def pretty(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode()
