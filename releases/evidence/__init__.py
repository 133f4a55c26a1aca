"""Evidence bundles: signed zips an auditor verifies offline with audit/verifier.py."""

from releases.evidence.period import (
    build_requested_evidence,
    expire_bundles,
    export_period_evidence,
    request_period_evidence,
)
from releases.evidence.release import export_evidence

__all__ = [
    "build_requested_evidence",
    "expire_bundles",
    "export_evidence",
    "export_period_evidence",
    "request_period_evidence",
]
