"""A release's evidence in the standard forms other tools read, beside the product's own JSON.

- ``intoto/approval-<n>-<username>.dsse.json``: each signed decision (approval or rejection), in the order
  of approvals.json, as an in-toto Statement v1 in a DSSE envelope signed with the server's Ed25519 key.
- ``cyclonedx/bom.json``: a CycloneDX 1.6 ML-BOM: the model version, the dataset versions it was trained
  and evaluated on with their hashes, and the training run as the BOM's formulation.
- ``openlineage/events.json``: the training run as OpenLineage run events, a JSON list: START, then the
  COMPLETE, FAIL or ABORT that MLflow's run status says (none while it still runs).

Each document is plain JSON built from the trace; the libraries that define these formats check them in
the tests and on the auditor's side (README, "Checking a bundle with standard tools"), never here.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from django.utils import timezone

from audit import signing, verifier
from releases import lineage
from releases.models import Approval, DatasetVersion, ExperimentRun

PRODUCT = "release-lineage"
# Kept equal to pyproject.toml's version by a test.
PRODUCT_VERSION = "0.1.0"
# Who wrote a document: a package URL naming this product and its version.
PRODUCER = f"pkg:generic/{PRODUCT}@{PRODUCT_VERSION}"

OPENLINEAGE_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
# The facets used here, as openlineage-python's typed classes name their schemas (a test holds them equal).
OPENLINEAGE_FACET_SCHEMAS = {
    "jobType": "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "sourceCodeLocation": (
        "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet"
    ),
    "runTags": "https://openlineage.io/spec/facets/1-0-0/TagsRunFacet.json#/$defs/TagsRunFacet",
    "datasetTags": "https://openlineage.io/spec/facets/1-0-0/TagsDatasetFacet.json#/$defs/TagsDatasetFacet",
    "version": (
        "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
    ),
    "datasetType": (
        "https://openlineage.io/spec/facets/1-0-1/DatasetTypeDatasetFacet.json#/$defs/DatasetTypeDatasetFacet"
    ),
}
# MLflow's final run statuses, as OpenLineage event types.
_FINAL_EVENT = {"FINISHED": "COMPLETE", "FAILED": "FAIL", "KILLED": "ABORT"}
_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_MLFLOW_RUN_ID = re.compile(r"[0-9a-f]{32}")
# Characters left as they are when a stored URI is written where the format asks for an IRI reference.
_IRI_SAFE = ":/?#[]@!$&'()*+,;=%~"


def standard_documents(trace: lineage.Trace) -> dict[str, bytes]:
    """The release's in-toto attestations, CycloneDX ML-BOM and OpenLineage run events, by file name."""
    documents = {name: _json(envelope) for name, envelope in approval_envelopes(trace).items()}
    documents["cyclonedx/bom.json"] = _json(cyclonedx_bom(trace))
    documents["openlineage/events.json"] = _json(openlineage_events(trace))
    return documents


# in-toto


def approval_envelopes(trace: lineage.Trace) -> dict[str, dict[str, Any]]:
    """Each decision on the release as a signed DSSE envelope, numbered in the order of approvals.json."""
    return {
        f"{verifier.ATTESTATIONS}approval-{number}-{_file_name_part(approval.approver.get_username())}.dsse.json": (
            dsse_envelope(approval_statement(trace, approval))
        )
        for number, approval in enumerate(trace.approvals, start=1)
    }


def approval_statement(trace: lineage.Trace, approval: Approval) -> dict[str, Any]:
    """An in-toto Statement v1 of one decision: about the model version and the datasets of the chain as
    it was signed, saying who decided what, meaning what, on which lineage digest, when."""
    signed = approval.signed_chain
    datasets = {item["key"]: item["content_hash"] for item in signed.get("datasets", [])}
    subject = [
        {
            "name": f"models:/{trace.model_version.key}",
            "digest": {verifier.LINEAGE_DIGEST_ALGORITHM: approval.signed_digest.removeprefix("sha256:")},
        },
        *(
            {"name": key, "digest": {"sha256": content_hash.removeprefix("sha256:")}}
            for key, content_hash in sorted(datasets.items())
        ),
    ]
    return {
        "_type": verifier.INTOTO_STATEMENT_V1,
        "subject": subject,
        "predicateType": verifier.RELEASE_APPROVAL_PREDICATE,
        "predicate": {
            "release": trace.release.name,
            "lineageDigest": approval.signed_digest,
            "decision": approval.decision,
            "meaning": approval.meaning,
            "comment": approval.comment,
            "signer": {"username": approval.approver.get_username(), "name": approval.approver_name},
            "signedAt": approval.signed_at.isoformat(),
        },
    }


def dsse_envelope(statement: dict[str, Any]) -> dict[str, Any]:
    """``statement`` signed by the server's key over the DSSE pre-authentication encoding."""
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    signature = signing.private_key().sign(verifier.dsse_pae(verifier.DSSE_PAYLOAD_TYPE, payload))
    return {
        "payloadType": verifier.DSSE_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": signing.fingerprint(), "sig": base64.b64encode(signature).decode()}],
    }


# CycloneDX


def cyclonedx_bom(trace: lineage.Trace) -> dict[str, Any]:
    """A CycloneDX 1.6 ML-BOM of the release's model version, its dataset versions and its training run."""
    model_ref = _model_ref(trace)
    dataset_refs = [_dataset_ref(version) for version in trace.dataset_versions]
    bom: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        # The same release with the same chain is the same BOM, whenever it is exported.
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{PRODUCER}#{trace.release.name}@{trace.digest}')}",
        "version": 1,
        "metadata": {
            "timestamp": timezone.now().isoformat(timespec="seconds"),
            "tools": {"components": [{"type": "application", "name": PRODUCT, "version": PRODUCT_VERSION}]},
            "component": _model_component(trace, dataset_refs),
        },
        "components": [_dataset_component(trace, version) for version in trace.dataset_versions],
        "dependencies": [{"ref": model_ref, "dependsOn": dataset_refs}, *({"ref": ref} for ref in dataset_refs)],
    }
    if trace.run is not None:
        bom["formulation"] = [_training_formula(trace, trace.run, dataset_refs)]
    return bom


def _model_ref(trace: lineage.Trace) -> str:
    return f"model:{trace.model_version.key}"


def _dataset_ref(version: DatasetVersion) -> str:
    return f"dataset:{version.key}"


def _model_component(trace: lineage.Trace, dataset_refs: list[str]) -> dict[str, Any]:
    version, run, commit = trace.model_version, trace.run, trace.commit
    registered = version.registered_model
    references = []
    if version.artifact_uri:
        references.append(
            _reference("distribution", version.artifact_uri, "Model artifact; the registry records no hash of it")
        )
    if run is not None and run.url:
        references.append(_reference("build-meta", run.url, f"MLflow run {run.run_id}"))
    if commit is not None and commit.url:
        references.append(_reference("vcs", commit.url, f"Git commit {commit.sha}"))
    if trace.release.validation_report_uri:
        references.append(_reference("quality-metrics", trace.release.validation_report_uri, "Validation report"))
    card: dict[str, Any] = {}
    if dataset_refs:
        card["modelParameters"] = {"datasets": [{"ref": ref} for ref in dataset_refs]}
    if run is not None and run.metrics:
        card["quantitativeAnalysis"] = {
            "performanceMetrics": [{"type": name, "value": str(value)} for name, value in sorted(run.metrics.items())]
        }
    if registered.purpose:
        card["considerations"] = {"useCases": [registered.purpose]}
    if run is not None and run.params:
        card["properties"] = _properties((f"param:{name}", value) for name, value in sorted(run.params.items()))
    tag = trace.release.git_tag
    component: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": _model_ref(trace),
        "name": registered.name,
        "version": str(version.version),
        **({"description": registered.description} if registered.description else {}),
        **({"externalReferences": references} if references else {}),
        "properties": _properties(
            [
                ("release", trace.release.name),
                ("lineage-digest", trace.digest),
                ("model-version", version.key),
                ("source-run-id", version.source_run_id),
                ("git-commit", trace.commit_sha),
                ("git-tag", tag.name if tag else ""),
                ("feature-pipeline-version", trace.feature_version.key if trace.feature_version else ""),
                ("owner", registered.owner),
            ]
        ),
    }
    if card:
        component["modelCard"] = card
    return component


def _dataset_component(trace: lineage.Trace, version: DatasetVersion) -> dict[str, Any]:
    contexts = sorted({item.context for item in trace.dataset_inputs if item.dataset_version_id == version.pk})
    return {
        "type": "data",
        "bom-ref": _dataset_ref(version),
        "name": version.dataset.name,
        "version": str(version.version),
        "hashes": [{"alg": "SHA-256", "content": version.content_hash.removeprefix("sha256:")}],
        "data": [{"type": "dataset", "name": version.key, "contents": {"url": _iri(version.uri)}}],
        "properties": _properties(
            [
                *(("context", context) for context in contexts),
                ("status", version.status),
                ("status-reason", version.status_reason),
                ("changed-in-place", version.mutation_detail if version.mutated else ""),
                ("size-bytes", "" if version.size_bytes is None else str(version.size_bytes)),
            ]
        ),
    }


def _training_formula(trace: lineage.Trace, run: ExperimentRun, dataset_refs: list[str]) -> dict[str, Any]:
    started, ended = _run_times(trace, run)
    commit = trace.commit
    workflow: dict[str, Any] = {
        "bom-ref": f"run:{run.server.name}:{run.run_id}",
        "uid": run.run_id,
        "name": run.name or run.run_id,
        "taskTypes": ["build"],
        "timeStart": started.isoformat(),
        **({"timeEnd": ended.isoformat()} if run.status in _FINAL_EVENT else {}),
        **({"inputs": [{"resource": {"ref": ref}} for ref in dataset_refs]} if dataset_refs else {}),
        "outputs": [{"type": "artifact", "resource": {"ref": _model_ref(trace)}}],
        "properties": _properties(
            [
                ("mlflow-server", run.server.name),
                ("mlflow-experiment", run.experiment_name),
                ("mlflow-run-status", run.status),
                ("git-commit", trace.commit_sha),
                ("feature-pipeline-version", trace.feature_version.key if trace.feature_version else ""),
            ]
        ),
    }
    if commit is not None and commit.url:
        workflow["resourceReferences"] = [
            {"externalReference": _reference("vcs", commit.url, f"Git commit {commit.sha}")}
        ]
    return {"bom-ref": f"training:{run.server.name}:{run.run_id}", "workflows": [workflow]}


def _reference(kind: str, url: str, comment: str) -> dict[str, str]:
    return {"type": kind, "url": _iri(url), "comment": comment}


def _properties(pairs: Iterable[tuple[str, Any]]) -> list[dict[str, str]]:
    """CycloneDX properties under this product's name, leaving out the empty ones."""
    return [{"name": f"{PRODUCT}:{name}", "value": str(value)} for name, value in pairs if value not in ("", None)]


def _iri(uri: str) -> str:
    # A stored URI may hold a space or another character an IRI reference cannot: percent-encode only those.
    return quote(uri, safe=_IRI_SAFE)


# OpenLineage


def openlineage_events(trace: lineage.Trace) -> list[dict[str, Any]]:
    """The training run as OpenLineage run events: its input datasets, the feature pipeline as the job,
    the model version as the output. No run, no events."""
    run = trace.run
    if run is None:
        return []
    started, ended = _run_times(trace, run)
    namespace = f"mlflow://{run.server.name}"
    inputs = [_openlineage_input(trace, version) for version in trace.dataset_versions]
    base = {
        "producer": PRODUCER,
        "schemaURL": OPENLINEAGE_EVENT_SCHEMA,
        "run": {"runId": _openlineage_run_id(namespace, run.run_id), "facets": {"tags": _run_tags(trace, run)}},
        "job": _openlineage_job(trace, run, namespace),
        "inputs": inputs,
    }
    events = [{**base, "eventType": "START", "eventTime": started.isoformat(), "outputs": []}]
    final = _FINAL_EVENT.get(run.status)
    if final is not None:
        events.append(
            {
                **base,
                "eventType": final,
                "eventTime": ended.isoformat(),
                "outputs": [_openlineage_output(trace, namespace)],
            }
        )
    return events


def _openlineage_run_id(namespace: str, run_id: str) -> str:
    """MLflow's run id is a UUID written as 32 hex digits; any other id gets a UUID derived from it."""
    if _MLFLOW_RUN_ID.fullmatch(run_id):
        return str(uuid.UUID(hex=run_id))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{run_id}"))


def _openlineage_job(trace: lineage.Trace, run: ExperimentRun, namespace: str) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "jobType": _facet("jobType", {"processingType": "BATCH", "integration": "MLFLOW"}),
    }
    commit, tag = trace.commit, trace.release.git_tag
    if commit is not None and commit.url:
        location = {"type": "git", "url": commit.url, "repoUrl": commit.repository.url, "version": commit.sha}
        facets["sourceCodeLocation"] = _facet("sourceCodeLocation", location | ({"tag": tag.name} if tag else {}))
    # The job is the feature pipeline version the run trained on; a run without one is named by its experiment.
    name = trace.feature_version.key if trace.feature_version else run.experiment_name or run.run_id
    return {"namespace": namespace, "name": name, "facets": facets}


def _run_tags(trace: lineage.Trace, run: ExperimentRun) -> dict[str, Any]:
    tags = [
        ("mlflow.run_id", run.run_id),
        ("mlflow.run_name", run.name),
        ("mlflow.experiment", run.experiment_name),
        ("git_commit", trace.commit_sha),
        ("release", trace.release.name),
        ("lineage_digest", trace.digest),
    ]
    return _facet(
        "runTags", {"tags": [{"key": key, "value": value, "source": PRODUCT} for key, value in tags if value]}
    )


def _openlineage_input(trace: lineage.Trace, version: DatasetVersion) -> dict[str, Any]:
    namespace, name = _dataset_location(version.uri)
    contexts = sorted({item.context for item in trace.dataset_inputs if item.dataset_version_id == version.pk})
    tags = [
        ("dataset_version", version.key),
        ("content_hash", version.content_hash),
        ("status", version.status),
        *(("mlflow.context", context) for context in contexts),
    ]
    return {
        "namespace": namespace,
        "name": name,
        "facets": {
            "version": _facet("version", {"datasetVersion": str(version.version)}),
            "tags": _facet("datasetTags", {"tags": [{"key": k, "value": v, "source": PRODUCT} for k, v in tags]}),
        },
        "inputFacets": {},
    }


def _openlineage_output(trace: lineage.Trace, namespace: str) -> dict[str, Any]:
    version = trace.model_version
    return {
        "namespace": namespace,
        "name": version.key,
        "facets": {
            "datasetType": _facet("datasetType", {"datasetType": "MODEL"}),
            "version": _facet("version", {"datasetVersion": str(version.version)}),
        },
        "outputFacets": {},
    }


def _facet(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": OPENLINEAGE_FACET_SCHEMAS[kind], **fields}


def _dataset_location(uri: str) -> tuple[str, str]:
    """OpenLineage's naming of a stored dataset: ``scheme://authority`` and the path (``s3://bucket``,
    ``key/in/bucket``), or ``file`` and the path for a local file."""
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]  # never a password, if a URI carried one
    if parts.scheme and host:
        return f"{parts.scheme}://{host}", parts.path.lstrip("/") or "/"
    if parts.scheme in ("", "file"):
        return "file", parts.path
    return parts.scheme, parts.path


def _run_times(trace: lineage.Trace, run: ExperimentRun) -> tuple[datetime.datetime, datetime.datetime]:
    """When the run started and ended as MLflow reported them, each standing in for the other when missing,
    and the release's creation when MLflow reported neither."""
    started = run.start_time or run.end_time or trace.release.created_at
    return started, run.end_time or started


def _file_name_part(text: str) -> str:
    """``text`` as it may appear in a bundle's file name (the verifier's safe-name rule)."""
    return _UNSAFE_IN_FILE_NAME.sub("_", text)


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode()
