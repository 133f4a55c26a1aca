"""Our checkpoints and proofs, checked by an implementation we did not write: Go's
golang.org/x/mod/sumdb/note (signed notes) and sumdb/tlog (RFC 6962 proofs), built offline from
Debian's golang-go and golang-golang-x-mod-dev (installed by .ci/run) by tests/interop/tlogcheck.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.db import transaction

from audit import checkpoints, log, signing, verifier, vocabulary
from audit.models import AuditEvent, Checkpoint
from tests.conftest import unavailable
from tests.factories import SYSTEM

SOURCE = Path(__file__).parent / "tlogcheck" / "main.go"
GOPATH = Path("/usr/share/gocode")

vocabulary.register("test.interop", "An event written by the Go interoperability tests.")


@pytest.fixture(scope="session")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        unavailable("needs Go: apt-get install golang-go")
    if not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        unavailable("needs golang.org/x/mod: apt-get install golang-golang-x-mod-dev")
    out = tmp_path_factory.mktemp("go") / "tlogcheck"
    # GOPATH mode against Debian's sources: nothing is downloaded.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(out.parent),
        "GOCACHE": str(out.parent / "cache"),
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOTOOLCHAIN": "local",
    }
    built = subprocess.run(
        [str(go), "build", "-o", str(out), str(SOURCE)], env=env, capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    return out


def _check(binary: Path, request: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary)], input=json.dumps(request), capture_output=True, text=True, check=False, timeout=60
    )


def _events(count: int) -> None:
    with transaction.atomic():
        log.record_many([log.PendingEvent("test.interop", "thing", str(i)) for i in range(count)], actor=SYSTEM)


def _issue() -> Checkpoint:
    with transaction.atomic():
        return checkpoints.issue_checkpoint()


def _record(seq: int) -> str:
    return base64.b64encode(bytes.fromhex(AuditEvent.objects.get(seq=seq).hash)).decode()


@pytest.fixture
def logged(db: Any) -> dict[str, Any]:
    """A log of 37 events with checkpoints at 1, 17 and 37, and the request that checks all of it."""
    _events(1)
    one = _issue()
    _events(16)
    old = _issue()
    _events(20)
    new = _issue()
    proofs = checkpoints.inclusion_proofs([1, 2, 17, 18, 32, 37], new)
    return {
        "log_vkey": signing.note_key().vkey,
        "checkpoint": new.note,
        "inclusion": [{"tlog_proof": proofs[seq], "record": _record(seq)} for seq in proofs],
        "consistency": [
            {"old_checkpoint": old.note, "proof": checkpoints.consistency_proof(17, 37)},
            {"old_checkpoint": one.note, "proof": checkpoints.consistency_proof(1, 37)},
        ],
    }


def test_go_verifies_our_checkpoint_inclusion_and_consistency_proofs(tlogcheck, logged):
    result = _check(tlogcheck, logged)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ok checkpoint release-lineage size 37 signed by release-lineage",
        *(f"ok record {index} included in tree 37" for index in (0, 1, 16, 17, 31, 36)),
        "ok tree 37 extends tree 17",
        "ok tree 37 extends tree 1",
    ]


def test_go_rejects_a_tampered_checkpoint_note(tlogcheck, logged):
    note = logged["checkpoint"]
    text = verifier.parse_note(note).text
    tampered = note.replace(text, text.replace("\n37\n", "\n38\n"))
    result = _check(tlogcheck, {**logged, "checkpoint": tampered, "inclusion": [], "consistency": []})
    assert result.returncode == 1
    assert result.stderr.startswith(f"FAIL: signed note: invalid signature for key {signing.note_key().vkey[:24]}")


def test_go_rejects_a_note_signed_by_another_key(tlogcheck, logged):
    text = verifier.parse_note(logged["checkpoint"]).text
    forged = text + "\n" + signing.note_signature(text, name="release-lineage", key=Ed25519PrivateKey.generate())
    result = _check(tlogcheck, {**logged, "checkpoint": forged, "inclusion": [], "consistency": []})
    assert result.returncode == 1
    assert result.stderr == "FAIL: signed note: note has no verifiable signatures\n"


def test_go_rejects_a_tampered_inclusion_proof(tlogcheck, logged):
    [first, *_] = logged["inclusion"]
    index, proof, note = verifier.parse_tlog_proof(first["tlog_proof"])
    proof[2] = bytes(32)
    bent = {"tlog_proof": verifier.format_tlog_proof(index, proof, note), "record": first["record"]}
    result = _check(tlogcheck, {**logged, "inclusion": [bent], "consistency": []})
    assert result.returncode == 1
    assert result.stderr.startswith("FAIL: inclusion of record 0: ")
    other_record = {"tlog_proof": first["tlog_proof"], "record": base64.b64encode(bytes(32)).decode()}
    assert _check(tlogcheck, {**logged, "inclusion": [other_record], "consistency": []}).returncode == 1


def test_go_rejects_a_tampered_consistency_proof(tlogcheck, logged):
    [first, *_] = logged["consistency"]
    bent = {**first, "proof": [first["proof"][0], base64.b64encode(bytes(32)).decode(), *first["proof"][2:]]}
    result = _check(tlogcheck, {**logged, "inclusion": [], "consistency": [bent]})
    assert result.returncode == 1
    assert result.stderr.startswith("FAIL: consistency of tree 17 with tree 37: ")


def test_go_verifies_a_witness_cosignature(tlogcheck, logged):
    witness = Ed25519PrivateKey.generate()
    raw = witness.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    newest = Checkpoint.objects.get(size=37)
    line = signing.note_signature(verifier.parse_note(newest.note).text, name="auditor.example", key=witness)
    checkpoints.add_cosignature(newest, witness_key=verifier.verifier_key("auditor.example", raw), signature_line=line)
    request = {
        **logged,
        "checkpoint": newest.cosigned_note(),
        "witness_vkeys": [verifier.verifier_key("auditor.example", raw)],
    }
    result = _check(tlogcheck, request)
    assert result.returncode == 0, result.stderr
    assert "ok cosigned by auditor.example" in result.stdout.splitlines()
    stranger = verifier.verifier_key("auditor.example", bytes(range(32)))
    result = _check(tlogcheck, {**request, "witness_vkeys": [stranger]})
    assert result.returncode == 1
    assert result.stderr.startswith("FAIL: signed note: no cosignature by witness auditor.example")


def test_go_verifies_an_exported_evidence_bundle(tlogcheck, db, auditor, ci_account, lead):
    from releases.evidence import export_evidence
    from tests.factories import World

    release = World.create().full_release(42, by=ci_account, approver=lead)
    _, data = export_evidence(release, by=auditor)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        note = bundle.read("checkpoint.note").decode()
        events = json.loads(bundle.read("events.json"))
    request = {
        "log_vkey": signing.note_key().vkey,
        "checkpoint": note,
        "inclusion": [
            {"tlog_proof": e["proof"], "record": base64.b64encode(bytes.fromhex(e["hash"])).decode()} for e in events
        ],
        "consistency": [],
    }
    result = _check(tlogcheck, request)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 + len(events)
