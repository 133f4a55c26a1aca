"""Writes for the features link: feature pipeline versions, named as runs name them (``customer_features_v5``)."""

from __future__ import annotations

from django.db import transaction

from releases.errors import InvalidInput
from releases.models import FeaturePipeline, FeaturePipelineVersion
from releases.models.base import version_number
from releases.models.features import FEATURE_VIEW_RE
from releases.services.code import resolve_commit


def feature_pipeline_version(key: str, *, commit_sha: str = "") -> FeaturePipelineVersion:
    """The feature pipeline version named ``customer_features_v5``, created on first mention."""
    match = FEATURE_VIEW_RE.match(key)
    number = version_number(match["version"]) if match else None
    if match is None or number is None:
        raise InvalidInput(f"feature view {key!r} is not of the form <pipeline>_v<N>")
    with transaction.atomic():
        pipeline, _ = FeaturePipeline.objects.get_or_create(name=match["pipeline"])
        version, created = FeaturePipelineVersion.objects.get_or_create(
            pipeline=pipeline, version=number, defaults={"commit": resolve_commit(commit_sha)}
        )
        if not created and version.commit_id is None and commit_sha:
            commit = resolve_commit(commit_sha)
            if commit is not None:
                version.commit = commit
                version.save(update_fields=["commit"])
    return version
