"""audit_witness: an auditor's key cosigns a checkpoint only when it extends the last one it cosigned."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.db import transaction

from audit import checkpoints, log, signing, verifier, vocabulary
from audit.models import AuditEvent, Checkpoint, Cosignature
from tests.factories import SYSTEM

vocabulary.register("test.witnessed", "An event written by the witness tests.")


def _events(count: int) -> None:
    with transaction.atomic():
        log.record_many([log.PendingEvent("test.witnessed", "thing", str(i)) for i in range(count)], actor=SYSTEM)


def _issue() -> Checkpoint:
    with transaction.atomic():
        return checkpoints.issue_checkpoint()


@pytest.fixture
def witness_key(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "witness.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path, key


def _witness(key_file: Path, state: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(
            "audit_witness", "--key-file", str(key_file), "--state", str(state), "--name", "auditor.example", *args,
            stdout=out, stderr=err,
        )  # fmt: skip
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def _vkey(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return verifier.verifier_key("auditor.example", raw)


@pytest.mark.django_db
def test_the_witness_cosigns_and_keeps_its_state(witness_key, tmp_path: Path, client):
    key_file, key = witness_key
    state = tmp_path / "state"
    _events(4)
    first = _issue()
    code, out, _ = _witness(key_file, state, "--log-key", signing.note_key().vkey)
    assert code == 0
    assert "cosigned checkpoint 4 (first checkpoint witnessed) as auditor.example; kept with the checkpoint" in out
    cosigned = (state / "checkpoint").read_text()
    _, signed = verifier.verify_note(
        cosigned, [verifier.parse_verifier_key(signing.note_key().vkey), verifier.parse_verifier_key(_vkey(key))]
    )
    assert {k.name for k in signed} == {"release-lineage", "auditor.example"}
    assert (state / "log.vkey").read_text() == signing.note_key().vkey + "\n"
    assert Cosignature.objects.get().checkpoint == first
    assert client.get("/audit/checkpoint").content.decode() == cosigned

    _events(3)
    _issue()
    code, out, _ = _witness(key_file, state)
    assert code == 0
    assert "cosigned checkpoint 7 (extends 4)" in out
    assert [
        verifier.parse_checkpoint(verifier.parse_note(n).text).size
        for n in checkpoints.read_log(state / "cosigned.log")
    ] == [4, 7]
    # Nothing new: the same cosignature again, kept once.
    assert _witness(key_file, state)[0] == 0
    assert Cosignature.objects.count() == 2


@pytest.mark.django_db
def test_the_first_run_without_a_key_pins_the_one_the_log_offers(witness_key, tmp_path: Path):
    key_file, _ = witness_key
    _events(2)
    _issue()
    code, out, _ = _witness(key_file, tmp_path / "state")
    assert code == 0
    assert out.startswith(f"pinned to log key {signing.note_key().vkey}; compare it with the key you obtained")


@pytest.mark.django_db
def test_a_rewritten_history_is_not_cosigned(witness_key, tmp_path: Path, behind_the_apps_back):
    """The log's own operator, holding the signing key, rewrites an event and signs a new checkpoint over
    the forged history: every check inside the database passes, the witness refuses."""
    key_file, _ = witness_key
    state = tmp_path / "state"
    _events(10)
    _issue()
    assert _witness(key_file, state, "--log-key", signing.note_key().vkey)[0] == 0
    _events(2)
    prev = AuditEvent.objects.get(seq=4).hash
    rewrite = behind_the_apps_back
    rewrite("UPDATE audit_auditevent SET actor = 'mallory' WHERE seq = 5", None)
    for event in AuditEvent.objects.filter(seq__gte=5).order_by("seq"):
        event.prev_hash = prev
        prev = event.compute_hash()
        rewrite(
            "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE seq = %s", [event.prev_hash, prev, event.seq]
        )
    for sql in ("DELETE FROM audit_cosignature", "DELETE FROM audit_checkpoint", "DELETE FROM audit_treenode"):
        rewrite(sql, None)
    forged = _issue()
    assert forged.size == 12
    code, _, err = _witness(key_file, state)
    assert code == 1
    assert err == (
        "not cosigned: checkpoint 12 does not extend checkpoint 10 the witness cosigned: "
        "the log's history was rewritten\n"
    )
    assert not Cosignature.objects.exists()
    assert verifier.parse_checkpoint(verifier.parse_note((state / "checkpoint").read_text()).text).size == 10


@pytest.mark.django_db
def test_a_log_that_went_back_is_not_cosigned(witness_key, tmp_path: Path, behind_the_apps_back):
    key_file, _ = witness_key
    state = tmp_path / "state"
    _events(5)
    _issue()
    _events(1)
    _issue()
    assert _witness(key_file, state, "--log-key", signing.note_key().vkey)[0] == 0
    behind_the_apps_back("DELETE FROM audit_cosignature", None)
    behind_the_apps_back("DELETE FROM audit_checkpoint WHERE size = 6", None)
    code, _, err = _witness(key_file, state)
    assert code == 1
    assert "is older than the one already witnessed (size 6): the log went back" in err


@pytest.mark.django_db
def test_a_checkpoint_signed_by_another_key_is_not_cosigned(witness_key, tmp_path: Path):
    key_file, _ = witness_key
    _events(2)
    _issue()
    other = verifier.verifier_key("release-lineage", bytes(range(32)))
    code, _, err = _witness(key_file, tmp_path / "state", "--log-key", other)
    assert code == 1
    assert err.startswith("not cosigned: the log's newest checkpoint does not verify")
    code, _, err = _witness(key_file, tmp_path / "state2", "--log-key", signing.note_key().vkey)
    assert code == 0
    code, _, err = _witness(key_file, tmp_path / "state2", "--log-key", other)
    assert code == 1
    assert err.startswith("not cosigned: this witness is pinned to log key")


@pytest.mark.django_db
def test_a_bad_key_file_is_bad_usage(tmp_path: Path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(CommandError, match="--key-file") as refused:
        call_command("audit_witness", "--key-file", str(bad), "--state", str(tmp_path / "s"), stdout=io.StringIO())
    assert refused.value.returncode == 2


def test_a_cosignature_that_does_not_verify_is_not_kept(db):
    _events(2)
    checkpoint = _issue()
    key = Ed25519PrivateKey.generate()
    line = signing.note_signature("release-lineage\n1\nAAAA\n", name="auditor.example", key=key)
    with pytest.raises(checkpoints.CosignatureRefused):
        checkpoints.add_cosignature(checkpoint, witness_key=_vkey(key), signature_line=line)
    assert not Cosignature.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_witness_reads_the_log_over_http(witness_key, tmp_path: Path, live_server):
    key_file, _ = witness_key
    state = tmp_path / "state"
    _events(3)
    _issue()
    assert _witness(key_file, state, "--url", live_server.url)[0] == 0
    _events(2)
    _issue()
    code, out, _ = _witness(key_file, state, "--url", live_server.url)
    assert code == 0
    assert "cosigned checkpoint 5 (extends 3)" in out
    assert Cosignature.objects.filter(checkpoint__size=5).exists()


@pytest.mark.django_db
def test_a_log_that_forked_is_not_cosigned(witness_key, tmp_path: Path, behind_the_apps_back):
    key_file, _ = witness_key
    state = tmp_path / "state"
    _events(6)
    _issue()
    assert _witness(key_file, state, "--log-key", signing.note_key().vkey)[0] == 0
    for sql in (
        "DELETE FROM audit_auditevent WHERE seq = 6",
        "DELETE FROM audit_cosignature",
        "DELETE FROM audit_checkpoint",
        "DELETE FROM audit_treenode",
    ):
        behind_the_apps_back(sql, None)
    _events(1)
    assert _issue().size == 6
    code, _, err = _witness(key_file, state)
    assert code == 1
    assert err == "not cosigned: the log signed two different trees of size 6: it forked\n"
