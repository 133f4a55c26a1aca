"""The standard forms inside every evidence bundle, checked by the libraries that define them, not by ours:
securesystemslib (DSSE), in-toto-attestation (Statement v1), cyclonedx-python-lib (CycloneDX 1.6 JSON
schema) and openlineage-python (its typed run events: the package ships no JSON schema to validate with).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import tomllib
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import ComponentType
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from django.contrib.auth.models import Group, User
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated import (
    dataset_type_dataset,
    dataset_version_dataset,
    job_type_job,
    source_code_location_job,
    tags_dataset,
    tags_run,
)
from openlineage.client.serde import Serde
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError as DsseVerificationError
from securesystemslib.signer import SSlibKey

from audit import signing, verifier
from releases import lineage, services
from releases.evidence import export_evidence, standards
from releases.evidence.standards import PRODUCER, PRODUCT_VERSION
from releases.models import DatasetVersion, Release
from releases.roles import ML_LEADS
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, World, approve, content_hash, reject

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def released(db, ci_account, lead, release_manager) -> Release:
    world = World.create()
    release = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    world.deploy(world.endpoint(), release, by=release_manager)
    return release


def _files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}


@pytest.fixture
def bundle(auditor, released) -> dict[str, bytes]:
    _, data = export_evidence(released, by=auditor)
    return _files(data)


def server_key() -> SSlibKey:
    """The server's public key as securesystemslib reads it, under the keyid an auditor pins: its fingerprint."""
    return SSlibKey.from_crypto(signing.public_key(), keyid=signing.fingerprint())


def in_toto_statement(payload: bytes) -> Statement:
    """The payload read by the in-toto attestation framework's own model (unknown fields refused) and validated."""
    statement = Statement.copy_from_pb(json_format.Parse(payload, statement_pb2.Statement()))
    statement.validate()
    return statement


# in-toto statements in DSSE envelopes


@pytest.fixture
def rejected_then_approved(db, ci_account, lead) -> Release:
    """churn-v42 rejected by a lead whose username no file name may hold as it is, then approved by another."""
    dana = User.objects.create_user("dana+ml@example.com", "dana@example.com", PASSWORD, first_name="Dana")
    dana.groups.add(Group.objects.get_or_create(name=ML_LEADS)[0])
    world = World.create()
    world.dataset("churn-train:18")
    model_version = world.model_version(
        "churn-model/42", commit=world.commit("churn v42"), datasets=("churn-train:18",)
    )
    release, _ = services.create_release(
        name="churn-v42",
        model_version=model_version.key,
        validation_report_uri="s3://r.html",
        submit=True,
        by=ci_account,
    )
    reject(release, by=dana, comment="the AUC gain is within noise")
    services.submit_release(release, by=ci_account)
    approve(release, by=lead, meaning="Reviewed")
    release.refresh_from_db()
    return release


def test_each_decision_is_a_dsse_envelope_securesystemslib_verifies_with_the_server_key(
    auditor, rejected_then_approved
):
    _, data = export_evidence(rejected_then_approved, by=auditor)
    files = _files(data)
    names = sorted(name for name in files if name.startswith("intoto/"))
    # In the order of approvals.json; "+" and "@" are not in any bundle's file names.
    assert names == ["intoto/approval-1-dana_ml_example.com.dsse.json", "intoto/approval-2-lead.dsse.json"]
    decisions = []
    for name in names:
        envelope = Envelope.from_dict(json.loads(files[name]))
        assert envelope.payload_type == "application/vnd.in-toto+json"
        assert set(envelope.verify([server_key()], threshold=1)) == {signing.fingerprint()}
        # The check can fail: another key under the same keyid does not verify.
        stranger = SSlibKey.from_crypto(Ed25519PrivateKey.generate().public_key(), keyid=signing.fingerprint())
        with pytest.raises(DsseVerificationError):
            envelope.verify([stranger], threshold=1)
        predicate = json.loads(envelope.payload)["predicate"]
        decisions.append((predicate["signer"]["username"], predicate["decision"], predicate["meaning"]))
    assert decisions == [
        ("dana+ml@example.com", "rejected", "Rejected"),
        ("lead", "approved", "Reviewed"),
    ]
    approvals = json.loads(files["approvals.json"])
    assert [(a["approver"], a["decision"], a["meaning"]) for a in approvals] == decisions
    checked = verifier.verify_bundle(files, trusted_key_pem=signing.public_key_pem().encode())
    assert "2 in-toto statement(s) in DSSE envelopes signed with the trusted key agree with approvals.json" in checked


def test_the_statement_is_an_in_toto_statement_about_the_model_and_its_datasets(bundle, released):
    trace = lineage.trace(released.name)
    envelope = Envelope.from_dict(json.loads(bundle["intoto/approval-1-lead.dsse.json"]))
    statement = in_toto_statement(envelope.payload)
    assert statement.pb.type == "https://in-toto.io/Statement/v1"
    assert statement.pb.predicate_type == verifier.RELEASE_APPROVAL_PREDICATE
    subjects = [(s.name, dict(s.digest)) for s in statement.pb.subject]
    dataset = DatasetVersion.objects.by_key("churn-train:18").get()
    assert subjects == [
        # The registry holds no hash of the artifact: the model is named with the signed chain's digest.
        ("models:/churn-model/42", {"lineageSha256": trace.digest.removeprefix("sha256:")}),
        ("churn-train:18", {"sha256": dataset.content_hash.removeprefix("sha256:")}),
    ]
    predicate = json.loads(envelope.payload)["predicate"]
    [approval] = json.loads(bundle["approvals.json"])
    assert predicate == {
        "release": "churn-v42",
        "lineageDigest": trace.digest,
        "decision": "approved",
        "meaning": "Approved for production",
        "comment": "",
        "signer": {"username": "lead", "name": "Lena Lead"},
        "signedAt": approval["signed_at"],
    }
    assert predicate["lineageDigest"] == approval["signed_digest"] == json.loads(bundle["trace.json"])["lineage_digest"]


@pytest.mark.parametrize(
    ("breaking", "message"),
    [
        (lambda s: s.update(subject=[]), "At least one subject required"),
        (lambda s: s["subject"][0].pop("digest"), "At least one digest required"),
        (lambda s: s.update(predicateType=""), "Predicate type required"),
    ],
    ids=["no-subject", "subject-without-digest", "no-predicate-type"],
)
def test_in_toto_validation_refuses_a_broken_statement(
    bundle, breaking: Callable[[dict[str, Any]], None], message: str
):
    statement = json.loads(Envelope.from_dict(json.loads(bundle["intoto/approval-1-lead.dsse.json"])).payload)
    breaking(statement)
    with pytest.raises(ValueError, match=message):
        in_toto_statement(json.dumps(statement).encode())


def test_a_stale_approval_still_attests_the_chain_it_signed(auditor, lead, released):
    signed = lineage.trace(released.name).digest
    services.quarantine_dataset_version(
        DatasetVersion.objects.by_key("churn-train:18").get(), by=lead, reason="bad labels"
    )
    _, data = export_evidence(Release.objects.get(name="churn-v42"), by=auditor)
    files = _files(data)
    assert json.loads(files["trace.json"])["lineage_digest"] != signed
    payload = Envelope.from_dict(json.loads(files["intoto/approval-1-lead.dsse.json"])).payload
    assert in_toto_statement(payload).pb.subject[0].digest["lineageSha256"] == signed.removeprefix("sha256:")
    assert json.loads(payload)["predicate"]["lineageDigest"] == signed
    checked = verifier.verify_bundle(files, trusted_key_pem=signing.public_key_pem().encode())
    assert "1 in-toto statement(s) in DSSE envelopes signed with the trusted key agree with approvals.json" in checked


# CycloneDX ML-BOM


def test_the_bom_is_a_valid_cyclonedx_1_6_ml_bom_of_the_model_and_its_datasets(auditor, bundle, released):
    text = bundle["cyclonedx/bom.json"].decode()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = Bom.from_json(json.loads(text))
    model = bom.metadata.component
    assert (model.type, model.name, model.version) == (ComponentType.MACHINE_LEARNING_MODEL, "churn-model", "42")
    dataset = DatasetVersion.objects.by_key("churn-train:18").get()
    assert [(c.type, c.name, c.version, [h.content for h in c.hashes]) for c in bom.components] == [
        (ComponentType.DATA, "churn-train", "18", [dataset.content_hash.removeprefix("sha256:")])
    ]
    document = json.loads(text)
    trace = lineage.trace(released.name)
    card = document["metadata"]["component"]["modelCard"]
    assert card["modelParameters"]["datasets"] == [{"ref": "dataset:churn-train:18"}]
    assert card["quantitativeAnalysis"]["performanceMetrics"] == [{"type": "auc", "value": "0.85"}]
    [workflow] = document["formulation"][0]["workflows"]
    assert workflow["uid"] == trace.run.run_id
    assert {"name": "release-lineage:git-commit", "value": trace.commit_sha} in workflow["properties"]
    # The same release with the same chain is the same BOM, exported again.
    expected = uuid.uuid5(uuid.NAMESPACE_URL, f"{PRODUCER}#churn-v42@{trace.digest}")
    assert document["serialNumber"] == f"urn:uuid:{expected}"
    _, again = export_evidence(released, by=auditor)
    assert json.loads(_files(again)["cyclonedx/bom.json"])["serialNumber"] == document["serialNumber"]


@pytest.mark.parametrize(
    ("breaking", "message"),
    [
        (lambda b: b["components"][0]["hashes"][0].update(content="sha256:00"), "does not match"),
        (lambda b: b["metadata"]["component"].update(type="ml-model"), "is not one of"),
        (lambda b: b["metadata"]["component"].update(model_card={}), "Additional properties are not allowed"),
        (lambda b: b.update(serialNumber="churn-v42"), "does not match"),
    ],
    ids=["hash-with-prefix", "unknown-component-type", "unknown-field", "serial-not-a-urn-uuid"],
)
def test_cyclonedx_strict_validation_refuses_a_broken_bom(
    bundle, breaking: Callable[[dict[str, Any]], None], message: str
):
    bom = json.loads(bundle["cyclonedx/bom.json"])
    breaking(bom)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom))
    assert error is not None
    assert message in str(error)


def test_a_dataset_uri_with_a_space_is_written_as_a_valid_iri(db, ci_account, lead, auditor):
    world = World.create()
    services.register_dataset_version(
        name="churn-train", version=19, uri="s3://data/churn train/19.csv", content_hash=content_hash("19"), by=SYSTEM
    )
    model_version = world.model_version("churn-model/43", commit=world.commit("v43"), datasets=("churn-train:19",))
    release = world.approved_release("churn-v43", model_version, by=ci_account, approver=lead)
    _, data = export_evidence(release, by=auditor)
    text = _files(data)["cyclonedx/bom.json"].decode()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    [component] = json.loads(text)["components"]
    assert component["data"][0]["contents"]["url"] == "s3://data/churn%20train/19.csv"


# OpenLineage


def _facet(cls: type, data: dict[str, Any], **items: type) -> Any:
    """A facet as openlineage-python's typed class, which sets its own _schemaURL; unknown fields raise."""
    fields = {key: value for key, value in data.items() if key not in ("_producer", "_schemaURL")}
    for key, item in items.items():
        fields[key] = [item(**entry) for entry in fields[key]]
    return cls(**fields, producer=data["_producer"])


_RUN_FACETS = {"tags": lambda d: _facet(tags_run.TagsRunFacet, d, tags=tags_run.TagsRunFacetFields)}
_JOB_FACETS = {
    "jobType": lambda d: _facet(job_type_job.JobTypeJobFacet, d),
    "sourceCodeLocation": lambda d: _facet(source_code_location_job.SourceCodeLocationJobFacet, d),
}
_DATASET_FACETS = {
    "version": lambda d: _facet(dataset_version_dataset.DatasetVersionDatasetFacet, d),
    "datasetType": lambda d: _facet(dataset_type_dataset.DatasetTypeDatasetFacet, d),
    "tags": lambda d: _facet(tags_dataset.TagsDatasetFacet, d, tags=tags_dataset.TagsDatasetFacetFields),
}


def _facets(kinds: dict[str, Callable[[dict[str, Any]], Any]], data: dict[str, Any]) -> dict[str, Any]:
    return {key: kinds[key](value) for key, value in data.items()}


def openlineage_event(data: dict[str, Any]) -> RunEvent:
    """One event built as openlineage-python's typed RunEvent: its validators check the run id is a UUID,
    the time a date-time and the event type one of the spec's; a field it does not know raises."""
    event = copy.deepcopy(data)
    event.pop("schemaURL")
    run, job, inputs, outputs = (event.pop(key) for key in ("run", "job", "inputs", "outputs"))
    return RunEvent(
        **event
        | {
            "eventType": RunState(event["eventType"]),
            "run": Run(**run | {"facets": _facets(_RUN_FACETS, run["facets"])}),
            "job": Job(**job | {"facets": _facets(_JOB_FACETS, job["facets"])}),
            "inputs": [InputDataset(**d | {"facets": _facets(_DATASET_FACETS, d["facets"])}) for d in inputs],
            "outputs": [OutputDataset(**d | {"facets": _facets(_DATASET_FACETS, d["facets"])}) for d in outputs],
        }
    )


def test_openlineage_events_are_openlineage_python_run_events_of_the_training_run(bundle, released):
    events = json.loads(bundle["openlineage/events.json"])
    for event in events:
        # Written back by the library, each event is what the bundle holds: every field, schemaURL and
        # facet _schemaURL is one openlineage-python writes for the spec version it implements.
        assert Serde.to_dict(openlineage_event(event)) == event
    trace = lineage.trace(released.name)
    start, complete = events
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    for event in events:
        assert event["producer"] == PRODUCER
        assert event["run"]["runId"] == str(uuid.UUID(hex=trace.run.run_id))
        assert (event["job"]["namespace"], event["job"]["name"]) == ("mlflow://mlflow", "customer_features_v5")
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [("s3://data", "churn-train/18.parquet")]
        tags = {t["key"]: t["value"] for t in event["inputs"][0]["facets"]["tags"]["tags"]}
        assert tags["content_hash"] == DatasetVersion.objects.by_key("churn-train:18").get().content_hash
    assert start["outputs"] == []
    assert [(d["name"], d["facets"]["datasetType"]["datasetType"]) for d in complete["outputs"]] == [
        ("churn-model/42", "MODEL")
    ]
    assert complete["job"]["facets"]["sourceCodeLocation"]["version"] == trace.commit_sha


@pytest.mark.parametrize(
    ("breaking", "error", "message"),
    [
        (lambda e: e["run"].update(runId="mlflow-run-42"), ValueError, "badly formed hexadecimal UUID"),
        (lambda e: e.update(eventTime="2026-11-27"), ValueError, "has to contain time"),
        (lambda e: e.update(eventType="FINISHED"), ValueError, "is not a valid EventType"),
        (lambda e: e["job"].pop("name"), TypeError, "missing 1 required positional argument: 'name'"),
        (lambda e: e["job"]["facets"]["jobType"].update(processing="BATCH"), TypeError, "unexpected keyword"),
    ],
    ids=["run-id-not-a-uuid", "date-without-time", "unknown-event-type", "job-without-name", "unknown-facet-field"],
)
def test_openlineage_python_refuses_a_broken_event(
    bundle, breaking: Callable[[dict[str, Any]], None], error: type[Exception], message: str
):
    event = json.loads(bundle["openlineage/events.json"])[0]
    breaking(event)
    with pytest.raises(error, match=message):
        openlineage_event(event)


def test_a_wrong_facet_schema_url_is_caught_by_the_round_trip(bundle):
    event = json.loads(bundle["openlineage/events.json"])[0]
    event["job"]["facets"]["jobType"]["_schemaURL"] = "https://openlineage.io/spec/facets/1-0-0/JobTypeJobFacet.json"
    assert Serde.to_dict(openlineage_event(event)) != event


def test_a_chain_without_run_or_data_still_gives_valid_documents(db, ci_account):
    """A model version registered with no run (its chain incomplete): a valid BOM with no formulation, and
    no run events, rather than invented ones."""
    world = World.create()
    services.register_model_version(world.server, services.ModelVersionData(name="fraud-model", version=8), by=SYSTEM)
    services.create_release(name="fraud-v8", model_version="fraud-model/8", by=ci_account)
    documents = standards.standard_documents(lineage.trace("fraud-v8"))
    assert set(documents) == {"cyclonedx/bom.json", "openlineage/events.json"}
    text = documents["cyclonedx/bom.json"].decode()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    assert "formulation" not in json.loads(text)
    assert json.loads(documents["openlineage/events.json"]) == []


# Who wrote them


def test_the_producer_names_this_product_and_its_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == PRODUCT_VERSION
    assert f"pkg:generic/release-lineage@{version}" == PRODUCER


def test_the_envelope_is_signed_over_the_dsse_pae(bundle):
    """The PAE the verifier and the server share is DSSE's, byte for byte as securesystemslib builds it."""
    envelope = json.loads(bundle["intoto/approval-1-lead.dsse.json"])
    assert envelope["signatures"][0]["keyid"] == signing.fingerprint()
    payload = base64.b64decode(envelope["payload"])
    assert verifier.dsse_pae(envelope["payloadType"], payload) == Envelope.from_dict(envelope).pae()
