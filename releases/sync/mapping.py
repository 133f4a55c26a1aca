"""How MLflow's records map onto the chain. Pure functions: no database, no network.

The tag and param keys are settings (``LINEAGE_MLFLOW_*``). A value that cannot be read
becomes a warning on the run, never an exception: one bad tag must not stop a sync.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from dataclasses import fields as dataclass_fields
from typing import Any

from django.conf import settings

from releases.services import DatasetRef, ModelVersionData, RunData

GIT_COMMIT_TAG = "mlflow.source.git.commit"
CONTEXT_TAG = "mlflow.data.context"
# Large, machine-written tags that add nothing to the trace.
SKIPPED_TAGS = frozenset({"mlflow.log-model.history"})
_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")
_DATASET_KEY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*):(?P<version>[1-9][0-9]*)$")


def from_millis(value: int | None) -> datetime.datetime | None:
    if value is None:
        return None
    return datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)


def _commit(tags: dict[str, str], warnings: list[str]) -> str:
    key = settings.LINEAGE_MLFLOW_COMMIT_TAG
    for source in (key, GIT_COMMIT_TAG):
        value = tags.get(source, "").strip()
        if not value:
            continue
        if _SHA.match(value):
            return value.lower()
        warnings.append(f"tag {source}={value!r} is not a commit sha (7 to 40 hex characters)")
    return ""


def _declared_datasets(tags: dict[str, str], warnings: list[str]) -> list[str]:
    key = settings.LINEAGE_MLFLOW_DATASET_TAG
    raw = tags.get(key, "")
    declared: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if _DATASET_KEY.match(item):
            declared.append(item)
        else:
            warnings.append(f"tag {key}={item!r} is not name:version (e.g. churn-train:17)")
    return declared


def _dataset_inputs(run: Any, declared: list[str], warnings: list[str]) -> list[DatasetRef]:
    """Dataset versions from MLflow dataset inputs, matched to a declared version by dataset name."""
    by_name = {key.rpartition(":")[0]: key for key in declared}
    refs: list[DatasetRef] = []
    inputs = getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []
    for item in inputs:
        dataset = item.dataset
        context = next((t.value for t in item.tags or [] if t.key == CONTEXT_TAG), "") or "training"
        name = (dataset.name or "").strip()
        key = name if _DATASET_KEY.match(name) else by_name.get(name, "")
        if not key:
            warnings.append(
                f"dataset input {name or '(unnamed)'!r} (digest {dataset.digest}) names no version; "
                f"name it name:version or add tag {settings.LINEAGE_MLFLOW_DATASET_TAG}={name}:<version>"
            )
            continue
        refs.append(DatasetRef(key=key, context=context[:40], digest=dataset.digest or "", source=dataset.source or ""))
    return refs


def run_data(run: Any, experiment_names: dict[str, str]) -> RunData:
    """The RunData for an MLflow run, with every unreadable value turned into a warning."""
    info, data = run.info, run.data
    tags = {k: v for k, v in (data.tags or {}).items() if k not in SKIPPED_TAGS}
    params = dict(data.params or {})
    warnings: list[str] = []
    commit = _commit(tags, warnings)
    declared = _declared_datasets(tags, warnings)
    refs = _dataset_inputs(run, declared, warnings)
    # A declared version that an input already names (in any context) is that input, not a second,
    # "training" use: dataset_version=churn-train:18,churn-eval:3 plus an evaluation input of churn-eval:3.
    covered = {ref.key for ref in refs}
    refs = [DatasetRef(key=key) for key in declared if key not in covered] + refs
    return RunData(
        run_id=info.run_id,
        experiment_id=str(info.experiment_id),
        experiment_name=experiment_names.get(str(info.experiment_id), ""),
        name=info.run_name or "",
        status=info.status or "",
        user=info.user_id or "",
        start_time=from_millis(info.start_time),
        end_time=from_millis(info.end_time),
        params=params,
        metrics=dict(data.metrics or {}),
        tags=tags,
        commit_sha=commit,
        feature_view=params.get(settings.LINEAGE_MLFLOW_FEATURE_PARAM, "").strip(),
        datasets=refs,
        warnings=warnings,
    )


def fingerprint(data: RunData) -> str:
    """A digest of everything the sync reads from a run: equal digests mean nothing to write."""
    # The same JSON as json.dumps(asdict(data)), built without asdict's deep copy of every value,
    # which cost more than the rest of a no-change sync; unchanged digests keep stored ones valid.
    fields = {name: getattr(data, name) for name in _RUN_FIELDS}
    fields["datasets"] = [vars(ref) for ref in data.datasets]
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


_RUN_FIELDS = tuple(field.name for field in dataclass_fields(RunData))


def model_version_data(version: Any) -> ModelVersionData:
    return ModelVersionData(
        name=version.name,
        version=int(version.version),
        source_run_id=version.run_id or "",
        artifact_uri=version.source or "",
        aliases=tuple(sorted(version.aliases or [])),
        tags=dict(version.tags or {}),
        created_at=from_millis(version.creation_timestamp),
    )
