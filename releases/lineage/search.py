"""The search box: what a typed identifier names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from releases.models import (
    Commit,
    DatasetVersion,
    Endpoint,
    ExperimentRun,
    ModelVersion,
    RegisteredModel,
    Release,
)

HEX_RE = re.compile(r"^[0-9a-fA-F]{4,40}$")


@dataclass(frozen=True)
class SearchHit:
    """Something a search box entry names: its kind ("release", "dataset_version", ...) and key."""

    kind: str
    key: str
    label: str
    anchor: str = ""


def resolve(query: str, limit: int = 10) -> list[SearchHit]:
    """Pages a typed identifier may name: release, `dataset:version`, `model/version`, sha prefix, run id.

    At most six queries, whatever matches.
    """
    text = query.strip()
    if not text:
        return []
    hits: list[SearchHit] = []
    if ":" in text:
        for dv in DatasetVersion.objects.by_key(text).select_related("dataset")[:1]:
            hits.append(SearchHit("dataset_version", dv.key, f"Dataset version {dv.key}"))
    if "/" in text:
        for mv in ModelVersion.objects.by_key(text).select_related("registered_model")[:1]:
            hits.append(SearchHit("model", mv.registered_model.name, f"Model version {mv.key}", f"v{mv.version}"))
    for name in Release.objects.filter(name__iexact=text).values_list("name", flat=True)[:1]:
        hits.append(SearchHit("release", name, f"Release {name}"))
    for name in Endpoint.objects.filter(name__iexact=text).values_list("name", flat=True)[:1]:
        hits.append(SearchHit("endpoint", name, f"Endpoint {name}"))
    for name in RegisteredModel.objects.filter(name__iexact=text).values_list("name", flat=True)[:1]:
        hits.append(SearchHit("model", name, f"Registered model {name}"))
    if HEX_RE.match(text):
        for commit in Commit.objects.by_prefix(text).select_related("repository")[:limit]:
            hits.append(SearchHit("commit", commit.sha, f"Commit {commit.short_sha} in {commit.repository.name}"))
    if len(text) >= 4 and " " not in text:
        for run in ExperimentRun.objects.filter(run_id__startswith=text).order_by("run_id")[:limit]:
            hits.append(SearchHit("run", run.run_id, f"MLflow run {run.name or run.run_id} ({run.run_id})"))
    return hits
