"""Evidence bundles: exported through the page and the command, verified offline by the shipped verifier."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from audit import checkpoints, log, signing, verifier
from audit.models import AuditEvent, Checkpoint
from releases import services
from releases.models import DatasetVersion, Release
from tests.factories import World


@pytest.fixture
def released(db, ci_account, lead, release_manager):
    world = World.create()
    release = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    world.deploy(world.endpoint(), release, by=release_manager)
    return release


def pinned_key() -> bytes:
    """The key an auditor pins, obtained out of band (manage.py audit_key)."""
    return signing.public_key_pem().encode()


def _verify(files: dict[str, bytes]) -> list[str]:
    """Check a bundle the way an auditor does: against the server's key, never the one inside the bundle."""
    return verifier.verify_bundle(files, trusted_key_pem=signing.public_key_pem().encode())


def _files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}


def test_auditor_exports_a_bundle_that_verifies(client: Client, auditor, released):
    client.force_login(auditor)
    response = client.post("/releases/churn-v42/evidence/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="churn-v42-evidence-')
    files = _files(response.content)
    assert set(files) == {
        "MANIFEST.json",
        "MANIFEST.sig",
        "trace.json",
        "approvals.json",
        "deployments.json",
        "periods.json",
        "events.json",
        "checkpoint.note",
        "public_key.pem",
        "report.html",
        "verify.py",
        # The standard forms (test_evidence_standards.py).
        "intoto/approval-1-lead.dsse.json",
        "cyclonedx/bom.json",
        "openlineage/events.json",
    }
    checked = _verify(files)
    assert checked[0] == f"signed with the key you trust ({signing.fingerprint()})"
    assert checked[1] == "12 files match the signed manifest"
    assert (
        "approved by Lena Lead (Approved for production): signature valid, counts for the chain as it stands" in checked
    )
    trace = json.loads(files["trace.json"])
    assert trace["chain"]["datasets"][0]["key"] == "churn-train:18"
    actions = [e["fields"]["action"] for e in json.loads(files["events.json"])]
    assert "release.approved" in actions
    assert "evidence.exported" in actions
    assert b"Release evidence: churn-v42" in files["report.html"]
    export = AuditEvent.objects.get(action="evidence.exported")
    assert export.actor == "auditor"
    assert Checkpoint.objects.get().size == AuditEvent.objects.count()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (
            lambda f: f.__setitem__("trace.json", f["trace.json"].replace(b"churn-train:18", b"churn-train:17")),
            "trace.json does not match",
        ),
        (lambda f: f.__setitem__("MANIFEST.sig", b"00" * 64), "MANIFEST.json: signature does not verify"),
        (lambda f: f.pop("deployments.json"), "deployments.json is listed in the manifest but missing"),
        (lambda f: f.__setitem__("extra.txt", b"x"), "files not covered by the manifest: extra.txt"),
    ],
)
def test_a_tampered_bundle_fails_verification(auditor, released, tamper, message):
    from releases.evidence import export_evidence

    _, data = export_evidence(released, by=auditor)
    files = _files(data)
    tamper(files)
    with pytest.raises(verifier.VerificationError, match=message):
        _verify(files)


def test_forged_event_is_caught_even_with_a_re_signed_manifest(auditor, released):
    """An attacker without the server key cannot alter an event: its inclusion proof no longer holds."""
    from releases.evidence import export_evidence

    _, data = export_evidence(released, by=auditor)
    files = _files(data)
    events = json.loads(files["events.json"])
    events[0]["fields"]["reason"] = "forged"
    import hashlib

    events[0]["hash"] = hashlib.sha256(verifier.canonical_json(events[0]["fields"]).encode()).hexdigest()
    with pytest.raises(verifier.VerificationError):
        _verify({**files, "events.json": json.dumps(events).encode()})


def test_standalone_verifier_runs_without_django(tmp_path: Path, auditor, released):
    out = io.StringIO()
    call_command("export_evidence", "churn-v42", "--out", str(tmp_path / "bundle.zip"), "--as", "auditor", stdout=out)
    bundle = tmp_path / "bundle.zip"
    verify = tmp_path / "verify.py"
    verify.write_bytes(zipfile.ZipFile(bundle).read("verify.py"))
    result = subprocess.run(
        [sys.executable, "-I", str(verify), "--key", signing.fingerprint(), str(bundle)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("VERIFIED")
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(broken, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(
                name,
                data.replace(b"Approved for production", b"Approved for testing!!!")
                if name == "approvals.json"
                else data,
            )
    result = subprocess.run(
        [sys.executable, "-I", str(verify), "--key", signing.fingerprint(), str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("NOT VERIFIED: approvals.json does not match")


def test_stale_approval_is_marked_in_the_bundle(auditor, lead, released):
    from releases.evidence import export_evidence

    services.quarantine_dataset_version(
        DatasetVersion.objects.by_key("churn-train:18").get(), by=lead, reason="bad labels"
    )
    _, data = export_evidence(Release.objects.get(name="churn-v42"), by=auditor)
    files = _files(data)
    [approval] = json.loads(files["approvals.json"])
    assert approval["counts"] is False
    assert approval["no_longer_counts_because"] == ["dataset churn-train:18 status changed from active to quarantined"]
    checked = _verify(files)
    changed = "dataset churn-train:18 status changed from active to quarantined"
    assert any(line.endswith(f"signature valid, approval no longer counts: {changed}") for line in checked)
    assert checked[-1].startswith("release status: Approval invalidated")


def test_export_is_refused_to_on_call(client: Client, oncall, released):
    client.force_login(oncall)
    assert client.post("/releases/churn-v42/evidence/").status_code == 403
    assert not AuditEvent.objects.filter(action="evidence.exported").exists()


def test_checkpoint_is_reused_when_nothing_was_added(released):
    first = checkpoints.issue_checkpoint()
    assert checkpoints.issue_checkpoint().pk == first.pk
    assert Checkpoint.objects.count() == 1


def _cosign(key: Ed25519PrivateKey, name: str = "auditor.example") -> str:
    """Cosign the newest checkpoint as a witness would (audit_witness), returning the witness's verifier key."""
    checkpoint = checkpoints.latest()
    assert checkpoint is not None
    text = verifier.parse_note(checkpoint.note).text
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    vkey = verifier.verifier_key(name, raw)
    line = signing.note_signature(text, name=name, key=key)
    checkpoints.add_cosignature(checkpoint, witness_key=vkey, signature_line=line)
    return vkey


@pytest.fixture
def witnessed(released) -> str:
    with transaction.atomic():
        checkpoints.issue_checkpoint()
    return _cosign(Ed25519PrivateKey.generate())


def test_a_bundle_can_require_a_witness_cosignature(auditor, witnessed, tmp_path):
    from releases.evidence import export_evidence

    _, data = export_evidence(Release.objects.get(name="churn-v42"), by=auditor)
    files = _files(data)
    assert "witnessed.json" in files
    checked = verifier.verify_bundle(files, witness_keys=[witnessed], trusted_key_pem=pinned_key())
    size = Checkpoint.objects.filter(cosignatures__isnull=False).get().size
    assert f"witness auditor.example cosigned checkpoint {size}, which covers the release's events" in checked
    assert any(
        "no witness key given to check" in line for line in verifier.verify_bundle(files, trusted_key_pem=pinned_key())
    )
    stranger = verifier.verifier_key("auditor.example", bytes(range(32)))
    with pytest.raises(verifier.VerificationError, match="no checkpoint in the bundle is cosigned by witness"):
        verifier.verify_bundle(files, witness_keys=[stranger], trusted_key_pem=pinned_key())

    # The same from the command line, as an auditor runs their own copy of verify.py.
    bundle, key = tmp_path / "bundle.zip", tmp_path / "key.pem"
    bundle.write_bytes(data)
    key.write_bytes(pinned_key())
    for witness, code, words in ((witnessed, 0, "cosigned checkpoint"), (stranger, 1, "no checkpoint in the bundle")):
        run = subprocess.run(
            [sys.executable, "-I", verifier.__file__, "--key-file", str(key), "--witness-key", witness, str(bundle)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == code, run.stdout + run.stderr
        assert words in run.stdout + run.stderr


def test_a_required_witness_must_have_seen_the_releases_events(auditor, release_manager, witnessed):
    from releases.evidence import export_evidence

    services.retire_release(Release.objects.get(name="churn-v42"), by=release_manager, reason="superseded")
    retired = AuditEvent.objects.get(action="release.retired")
    _, data = export_evidence(Release.objects.get(name="churn-v42"), by=auditor)
    with pytest.raises(verifier.VerificationError, match=rf"audit event #{retired.seq} \(release.retired\) is newer"):
        verifier.verify_bundle(_files(data), witness_keys=[witnessed], trusted_key_pem=pinned_key())


def test_a_bundle_without_a_witnessed_checkpoint_fails_the_requirement(auditor, released):
    from releases.evidence import export_evidence

    _, data = export_evidence(released, by=auditor)
    files = _files(data)
    assert "witnessed.json" not in files
    key = verifier.verifier_key("auditor.example", bytes(range(32)))
    with pytest.raises(verifier.VerificationError, match="no checkpoint in the bundle is cosigned by witness"):
        verifier.verify_bundle(files, witness_keys=[key], trusted_key_pem=pinned_key())


def test_a_witnessed_checkpoint_the_bundle_does_not_extend_is_refused(auditor, witnessed):
    from releases.evidence import export_evidence

    _, data = export_evidence(Release.objects.get(name="churn-v42"), by=auditor)
    files = _files(data)
    entries = json.loads(files["witnessed.json"])
    entries[0]["consistency_proof"] = [base64.b64encode(bytes(32)).decode() for _ in entries[0]["consistency_proof"]]
    log_key = signing.public_key_raw()
    with pytest.raises(verifier.VerificationError, match="does not extend witnessed checkpoint"):
        verifier.check_audit_events({**files, "witnessed.json": json.dumps(entries).encode()}, log_key)


def test_event_proofs_are_c2sp_tlog_proofs_against_the_bundles_checkpoint(auditor, released):
    from releases.evidence import export_evidence

    _, data = export_evidence(released, by=auditor)
    files = _files(data)
    [first, *_] = json.loads(files["events.json"])
    index, proof, note = verifier.parse_tlog_proof(first["proof"])
    assert first["proof"].startswith(f"c2sp.org/tlog-proof@v1\nindex {first['fields']['seq'] - 1}\n")
    assert note == files["checkpoint.note"].decode()
    body = verifier.parse_checkpoint(verifier.parse_note(note).text)
    assert verifier.verify_inclusion(
        index, body.size, verifier.leaf_hash(bytes.fromhex(first["hash"])), proof, body.root
    )


def test_a_bundle_exported_before_a_superuser_rewrite_keeps_the_truth(auditor, released, behind_the_apps_back):
    """Rewriting an approval's actor (hashes recomputed) after a checkpoint: the next export is refused,
    because no checkpoint is signed over a rewritten log, and the bundle from before still verifies."""
    from releases.evidence import export_evidence

    _, before = export_evidence(released, by=auditor)
    approval = AuditEvent.objects.get(action="release.approved")
    prev = AuditEvent.objects.get(seq=approval.seq - 1).hash
    # An insider with the owner's password, triggers lifted, recomputing the chain from there on.
    behind_the_apps_back("UPDATE audit_auditevent SET actor = 'lead2' WHERE seq = %s", [approval.seq])
    for event in AuditEvent.objects.filter(seq__gte=approval.seq).order_by("seq"):
        event.prev_hash = prev
        prev = event.compute_hash()
        behind_the_apps_back(
            "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE seq = %s", [event.prev_hash, prev, event.seq]
        )
    with pytest.raises(log.LogBroken, match="the log was rewritten"):
        export_evidence(Release.objects.get(name="churn-v42"), by=auditor)
    events = {e["fields"]["seq"]: e for e in json.loads(_files(before)["events.json"])}
    assert events[approval.seq]["fields"]["actor"] == "lead"
    assert verifier.verify_bundle(_files(before), trusted_key_pem=pinned_key())
