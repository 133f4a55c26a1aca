"""verify.py as an auditor runs it: their own copy, pinned to the key they obtained out of band.

Each attack here passed the verifier before keys were pinned and zips were read strictly: a bundle
signed end to end with another key, a zip holding two entries of one name, a swapped bundled verifier.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.test import Client

from audit import signing, verifier
from releases.evidence import export_evidence, standards
from tests.factories import World

REPOSITORY_VERIFIER = Path(verifier.__file__)


@pytest.fixture
def released(db, ci_account, lead, release_manager):
    world = World.create()
    release = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    world.deploy(world.endpoint(), release, by=release_manager)
    return release


@pytest.fixture
def bundle(tmp_path: Path, auditor, released) -> Path:
    _, data = export_evidence(released, by=auditor)
    path = tmp_path / "churn-v42-evidence.zip"
    path.write_bytes(data)
    return path


@pytest.fixture
def server_key_pem(db) -> bytes:
    return signing.public_key_pem().encode()


def run_verifier(*args: str | Path, script: Path = REPOSITORY_VERIFIER) -> subprocess.CompletedProcess[str]:
    """The auditor's own copy (the repository file), in a fresh interpreter that cannot see Django."""
    return subprocess.run(
        [sys.executable, "-I", str(script), *map(str, args)], capture_output=True, text=True, check=False
    )


def read(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as bundle:
        return {info.filename: bundle.read(info) for info in bundle.infolist()}


def write(path: Path, files: dict[str, bytes] | list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in files.items() if isinstance(files, dict) else files:
            bundle.writestr(name, data)
    return path


def re_sign_manifest(files: dict[str, bytes], key: Ed25519PrivateKey) -> None:
    """What an attacker with their own key does after editing files: new sums, new manifest signature."""
    manifest = json.loads(files["MANIFEST.json"])
    covered = set(files) - {"MANIFEST.json", "MANIFEST.sig"}
    manifest["files"] = {name: hashlib.sha256(files[name]).hexdigest() for name in sorted(covered)}
    files["MANIFEST.json"] = verifier.canonical_json(manifest).encode()
    files["MANIFEST.sig"] = key.sign(files["MANIFEST.json"]).hex().encode() + b"\n"


def pem_of(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def genuine_key_then_another(server_key_pem: bytes, settings: Any, tmp_path: Path) -> Iterator[bytes]:
    """The genuine key's PEM; everything signed after it is signed with another key, as a forger's copy would."""
    signing.private_key.cache_clear()
    settings.LINEAGE_SIGNING_KEY_FILE = tmp_path / "forger.pem"
    settings.LINEAGE_SIGNING_KEY_AUTOCREATE = True
    yield server_key_pem
    signing.private_key.cache_clear()


# Key pinning


def test_the_fingerprint_is_the_sha256_of_the_der_public_key(server_key_pem, tmp_path: Path):
    pem = tmp_path / "key.pem"
    pem.write_bytes(server_key_pem)
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(pem), "-outform", "DER"], capture_output=True, check=True
    ).stdout
    assert signing.fingerprint() == hashlib.sha256(der).hexdigest() == verifier.key_fingerprint(server_key_pem)
    spaced = ":".join(signing.fingerprint()[i : i + 2] for i in range(0, 64, 2)).upper()
    assert verifier.normalise_fingerprint(f"SHA256:{spaced}") == signing.fingerprint()


def test_audit_key_prints_the_fingerprint_and_the_pem(server_key_pem):
    out = io.StringIO()
    call_command("audit_key", stdout=out)
    text = out.getvalue()
    assert f"fingerprint (sha256 of the DER public key): {signing.fingerprint()}\n" in text
    assert f"python verify.py --key {signing.fingerprint()} BUNDLE.zip" in text
    assert server_key_pem.decode() in text


def test_without_a_trusted_key_the_verifier_refuses_in_one_line(bundle: Path):
    result = run_verifier(bundle)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("verify.py: refusing to verify without the key that must have signed")
    with pytest.raises(verifier.VerificationError, match="no trusted key given"):
        verifier.verify_bundle(read(bundle))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key", "abc123"], "verify.py: --key: a key fingerprint is the 64 hex digits of a SHA-256"),
        (["--key-file", "/nonexistent.pem"], "verify.py: --key-file /nonexistent.pem: "),
        (["--key", "0" * 64, "--trust-bundled-key"], "verify.py: argument --trust-bundled-key: not allowed with"),
    ],
)
def test_bad_key_arguments_exit_2_with_one_line(bundle: Path, args: list[str], message: str):
    result = run_verifier(*args, bundle)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_pinned_by_fingerprint_or_pem_a_genuine_bundle_verifies(bundle: Path, server_key_pem, tmp_path: Path):
    key_file = tmp_path / "lineage.pem"
    key_file.write_bytes(server_key_pem)
    for pin in (["--key", signing.fingerprint()], ["--key-file", key_file]):
        result = run_verifier(*pin, bundle)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"ok  signed with the key you trust ({signing.fingerprint()})"
        assert lines[-1] == "VERIFIED"
        # The bundle's copy of the verifier is this very file: nothing to warn about.
        assert "differs from this verifier" not in result.stdout


def test_a_bundle_signed_end_to_end_with_another_key_is_refused_by_the_pinned_key(
    tmp_path: Path, genuine_key_then_another: bytes, ci_account, lead, release_manager, auditor
):
    server_key_pem = genuine_key_then_another
    trusted = verifier.key_fingerprint(server_key_pem)
    # Every signature in this bundle (approval, checkpoint, manifest) is made with the forger's key.
    world = World.create()
    release = world.full_release(42, by=ci_account, approver=lead)
    world.deploy(world.endpoint(), release, by=release_manager)
    _, data = export_evidence(release, by=auditor)
    forged = tmp_path / "forged.zip"
    forged.write_bytes(data)
    forger = signing.fingerprint()
    assert forger != trusted
    key_file = tmp_path / "lineage.pem"
    key_file.write_bytes(server_key_pem)

    for pin in (["--key", trusted], ["--key-file", key_file]):
        result = run_verifier(*pin, forged)
        assert result.returncode == 1
        assert result.stderr == (
            f"NOT VERIFIED: public_key.pem: the bundle was signed with key {forger}, "
            f"not with the key you trust ({trusted})\n"
        )
    # Internally the forgery is perfect: trusting the key it carries, it verifies, and says what that is worth.
    result = run_verifier("--trust-bundled-key", forged)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("WARNING: the key was taken from the bundle itself")
    assert result.stdout.splitlines()[-1] == f"VERIFIED; {verifier.NOTHING_PROVED_ABOUT_SIGNER}"
    assert "nothing was proved about who signed it" in result.stdout


def test_a_re_signed_bundle_that_keeps_the_genuine_public_key_is_refused(bundle: Path):
    files = read(bundle)
    files["trace.json"] = files["trace.json"].replace(b"churn-train:18", b"churn-train:17")
    re_sign_manifest(files, Ed25519PrivateKey.generate())
    result = run_verifier("--key", signing.fingerprint(), write(bundle.with_name("edited.zip"), files))
    assert result.returncode == 1
    assert result.stderr == "NOT VERIFIED: MANIFEST.json: signature does not verify\n"


# A swapped bundled verifier


def test_a_swapped_bundled_verifier_does_not_fool_the_auditors_own_copy(bundle: Path):
    liar = b'print("ok  everything checked")\nprint("VERIFIED")\n'
    files = read(bundle)
    files["verify.py"] = liar
    forger = Ed25519PrivateKey.generate()
    files["public_key.pem"] = pem_of(forger)
    re_sign_manifest(files, forger)
    swapped = write(bundle.with_name("swapped.zip"), files)
    bundled_copy = bundle.with_name("verify.py")
    bundled_copy.write_bytes(liar)

    # What an auditor told to run the bundled verifier would have seen.
    assert run_verifier(swapped, script=bundled_copy).stdout.endswith("VERIFIED\n")

    result = run_verifier("--key", signing.fingerprint(), swapped)
    assert result.returncode == 1
    own = hashlib.sha256(REPOSITORY_VERIFIER.read_bytes()).hexdigest()
    assert result.stdout == (
        f"note: the verify.py inside this bundle (sha256 {hashlib.sha256(liar).hexdigest()}) differs from this "
        f"verifier (sha256 {own}): only this one was run; do not run the bundled copy\n"
    )
    assert result.stderr.startswith("NOT VERIFIED: public_key.pem: the bundle was signed with key ")

    # Swapped without re-signing, the manifest names the file.
    files = read(bundle)
    files["verify.py"] = liar
    result = run_verifier("--key", signing.fingerprint(), write(bundle.with_name("swapped2.zip"), files))
    assert result.returncode == 1
    assert result.stderr == "NOT VERIFIED: verify.py does not match its sha256 in the manifest\n"


def test_the_bundled_verifier_is_the_repository_file_and_labelled_a_convenience_copy(bundle: Path):
    copy = read(bundle)["verify.py"]
    assert copy == REPOSITORY_VERIFIER.read_bytes()
    assert b"Run your own copy of this file" in copy
    assert b"for convenience only" in copy


# Reading the zip strictly


def test_a_zip_with_two_entries_of_one_name_is_refused_naming_it(bundle: Path):
    genuine = read(bundle)
    forged_trace = genuine["trace.json"].replace(b"churn-train:18", b"churn-train:17")
    # zipfile (and so the old verifier) keeps the last entry; unzip shows, or overwrites with, either.
    entries = [("trace.json", forged_trace), *genuine.items()]
    doubled = bundle.with_name("doubled.zip")
    with pytest.warns(UserWarning, match="Duplicate name"):
        write(doubled, entries)
    result = run_verifier("--key", signing.fingerprint(), doubled)
    assert result.returncode == 1
    assert result.stderr == "NOT VERIFIED: zip entry 'trace.json' appears twice: the zip can be read two ways\n"


def test_names_that_one_disk_would_merge_are_refused(bundle: Path):
    genuine = read(bundle)
    entries = [*genuine.items(), ("Trace.JSON", b"{}")]
    result = run_verifier("--key", signing.fingerprint(), write(bundle.with_name("case.zip"), entries))
    assert result.returncode == 1
    assert result.stderr == (
        "NOT VERIFIED: zip entry 'Trace.JSON' appears and as 'trace.json': the zip can be read two ways\n"
    )


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("../verify.py", "is an unsafe path"),
        ("/etc/cron.d/evil", "is an unsafe path"),
        ("reports\\..\\..\\evil.py", "is an unsafe path"),
        ("C:evil.py", "is an unsafe path"),
        (".hidden", "is an unsafe path"),
        ("attestations/", "is a directory where a file is expected"),
        (_symlink("approvals2.json"), "is a symbolic link or special file where a file is expected"),
    ],
    ids=["dotdot", "absolute", "backslash", "drive", "hidden", "directory", "symlink"],
)
def test_unsafe_entries_are_refused_naming_the_entry(bundle: Path, entry: str | zipfile.ZipInfo, problem: str):
    name = entry.filename if isinstance(entry, zipfile.ZipInfo) else entry
    hostile = write(bundle.with_name("hostile.zip"), [*read(bundle).items(), (entry, b"/etc/passwd")])
    result = run_verifier("--key", signing.fingerprint(), hostile)
    assert result.returncode == 1
    assert result.stderr.startswith(f"NOT VERIFIED: zip entry {name!r} {problem}")


def test_a_name_cut_short_by_nul_is_refused(bundle: Path):
    # zipfile reads a name only up to NUL, so "trace.json\0x" would pass for a second trace.json.
    data = write(bundle.with_name("nul.zip"), [*read(bundle).items(), ("trace.jsonQx", b"{}")]).read_bytes()
    nul = bundle.with_name("nul2.zip")
    nul.write_bytes(data.replace(b"trace.jsonQx", b"trace.json\x00x"))
    result = run_verifier("--key", signing.fingerprint(), nul)
    assert result.returncode == 1
    assert result.stderr.startswith("NOT VERIFIED: zip entry 'trace.json\\x00x' is an unsafe path")


def test_an_entry_the_manifest_does_not_list_is_refused_naming_it(bundle: Path):
    result = run_verifier(
        "--key", signing.fingerprint(), write(bundle.with_name("extra.zip"), {**read(bundle), "notes.txt": b"x"})
    )
    assert result.returncode == 1
    assert result.stderr == "NOT VERIFIED: files not covered by the manifest: notes.txt\n"


def test_an_unreadable_file_exits_2(tmp_path: Path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    result = run_verifier("--key", "0" * 64, junk)
    assert result.returncode == 2
    assert result.stderr.startswith(f"verify.py: cannot read {junk}: ")


# Where auditors get the key and their own verifier


def test_release_page_shows_the_key_fingerprint_and_the_verifier_address(client: Client, auditor, released):
    client.force_login(auditor)
    page = client.get("/releases/churn-v42/").content.decode()
    assert f"python verify.py --key {signing.fingerprint()} BUNDLE.zip" in page
    assert 'href="/audit/verify.py"' in page


def test_evidence_report_names_the_key_and_says_to_run_your_own_verifier(auditor, released):
    _, data = export_evidence(released, by=auditor)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        report = bundle.read("report.html").decode()
    assert f"<code>{signing.fingerprint()}</code>" in report
    assert f"python verify.py --key {signing.fingerprint()} THIS.zip" in report
    assert "the copy in this bundle is for convenience only" in report


def test_the_app_serves_the_current_verifier_as_plain_text(client: Client, auditor):
    client.force_login(auditor)
    response = client.get("/audit/verify.py")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == REPOSITORY_VERIFIER.read_bytes()
    assert client.post("/audit/verify.py").status_code == 405


def test_the_verifier_address_needs_a_signed_in_person(client: Client, db):
    response = client.get("/audit/verify.py")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# Approvals as in-toto statements in DSSE envelopes (intoto/)

ENVELOPE = "intoto/approval-1-lead.dsse.json"


def _with_envelope(files: dict[str, bytes], envelope: dict[str, Any]) -> dict[str, bytes]:
    """``files`` with the lead's envelope replaced and the manifest re-signed with the genuine server key,
    as if the server itself had written it: only the envelope check stands in the way."""
    edited = {**files, ENVELOPE: json.dumps(envelope).encode()}
    re_sign_manifest(edited, signing.private_key())
    return edited


def _statement(files: dict[str, bytes]) -> dict[str, Any]:
    return json.loads(base64.b64decode(json.loads(files[ENVELOPE])["payload"]))


def test_an_envelope_whose_payload_was_changed_is_refused(bundle: Path):
    files = read(bundle)
    statement = _statement(files)
    statement["predicate"]["meaning"] = "Reviewed"
    envelope = json.loads(files[ENVELOPE])
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    edited = write(bundle.with_name("payload.zip"), _with_envelope(files, envelope))
    result = run_verifier("--key", signing.fingerprint(), edited)
    assert result.returncode == 1
    assert result.stderr == (
        f"NOT VERIFIED: {ENVELOPE}: no signature by the trusted key verifies over the envelope's payload\n"
    )


def test_an_envelope_signed_with_another_key_is_refused(bundle: Path):
    files = read(bundle)
    envelope = json.loads(files[ENVELOPE])
    payload = base64.b64decode(envelope["payload"])
    other = Ed25519PrivateKey.generate()
    # The right keyid, a signature over the right PAE, by a key that is not the server's.
    envelope["signatures"][0]["sig"] = base64.b64encode(
        other.sign(verifier.dsse_pae(envelope["payloadType"], payload))
    ).decode()
    with pytest.raises(verifier.VerificationError, match="no signature by the trusted key verifies"):
        verifier.verify_bundle(_with_envelope(files, envelope), trusted_key_pem=signing.public_key_pem().encode())
    # And the genuine envelopes do not verify against a key the auditor did not name.
    with pytest.raises(verifier.VerificationError, match="no signature by the trusted key verifies"):
        verifier.check_attestations(files, pem_of(other))


@pytest.mark.parametrize(
    ("field", "value", "differs"),
    [
        ("decision", "rejected", "decision"),
        ("lineageDigest", "sha256:" + "0" * 64, "lineage digest"),
        ("signer", {"username": "lead", "name": "Omar Second"}, "signer's name"),
    ],
)
def test_a_statement_that_disagrees_with_approvals_json_is_refused(bundle: Path, field: str, value: Any, differs: str):
    files = read(bundle)
    statement = _statement(files)
    statement["predicate"][field] = value
    # Genuinely signed, yet not what approvals.json records.
    edited = _with_envelope(files, standards.dsse_envelope(statement))
    with pytest.raises(verifier.VerificationError, match=rf"the statement's {differs} differs from approvals\.json"):
        verifier.verify_bundle(edited, trusted_key_pem=signing.public_key_pem().encode())


def test_a_decision_without_its_statement_is_refused(bundle: Path):
    files = read(bundle)
    statement = _statement(files)
    statement["predicate"]["signer"]["username"] = "lead2"
    with pytest.raises(verifier.VerificationError, match=r"is not one of the decisions in approvals\.json"):
        verifier.check_attestations(
            _with_envelope(files, standards.dsse_envelope(statement)), signing.public_key_pem().encode()
        )
    approvals = json.loads(files["approvals.json"])
    approvals.append({**approvals[0], "signed_at": "2026-11-27T08:00:00+00:00"})
    with pytest.raises(verifier.VerificationError, match="the decision by lead at 2026-11-27T08:00:00"):
        verifier.check_attestations(
            {**files, "approvals.json": json.dumps(approvals).encode()}, signing.public_key_pem().encode()
        )


def test_attestations_are_checked_inside_a_release_folder_too(bundle: Path):
    files = {f"churn-v42/{name}": data for name, data in read(bundle).items()}
    assert verifier.check_attestations(files, signing.public_key_pem().encode(), prefix="churn-v42/") == [
        "1 in-toto statement(s) in DSSE envelopes signed with the trusted key agree with approvals.json"
    ]
