"""Evidence bundles: signed zips an auditor verifies offline with audit/verifier.py."""

from releases.evidence.release import export_evidence

__all__ = ["export_evidence"]
