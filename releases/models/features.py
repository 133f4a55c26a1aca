"""The features link: feature pipelines and their numbered versions (``customer_features_v5``)."""

from __future__ import annotations

import re

from django.core.validators import MinValueValidator
from django.db import models

from releases.models.base import version_number
from releases.models.code import Commit, name_validator

FEATURE_VIEW_RE = re.compile(r"^(?P<pipeline>[A-Za-z][A-Za-z0-9_]*?)_v(?P<version>[1-9][0-9]*)$")


class FeaturePipeline(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FeaturePipelineVersionQuerySet(models.QuerySet["FeaturePipelineVersion"]):
    def by_key(self, key: str) -> FeaturePipelineVersionQuerySet:
        """The version named like ``customer_features_v5`` (empty when malformed)."""
        match = FEATURE_VIEW_RE.match(key)
        number = version_number(match["version"]) if match else None
        if match is None or number is None:
            return self.none()
        return self.filter(pipeline__name=match["pipeline"], version=number)


class FeaturePipelineVersion(models.Model):
    pipeline = models.ForeignKey(FeaturePipeline, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    commit = models.ForeignKey(Commit, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FeaturePipelineVersionQuerySet.as_manager()

    class Meta:
        ordering = ["pipeline", "-version"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "version"], name="feature_version_unique")]

    def __str__(self) -> str:
        return self.key

    @property
    def key(self) -> str:
        return f"{self.pipeline.name}_v{self.version}"
