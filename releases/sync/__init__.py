"""Adapters that read Git and MLflow and write the chain through the services.

Each adapter is incremental (a watermark per source), idempotent (upserts on natural keys)
and guarded by a per-source lease, so two workers on one source never both write.
"""
