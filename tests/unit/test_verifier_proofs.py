"""The offline verifier's formats: signed notes, checkpoints, tlog proofs and consistency proofs.

The signed-note vector is the one published with Go's golang.org/x/mod/sumdb/note (its ExampleSign),
so our notes are checked against an answer we did not compute.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from audit import merkle, signing, verifier

GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SKEY_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # PRIVATE+KEY+PeterNeumann+c74f20a3+...
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SIGNATURE_LINE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def _go_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(GO_SKEY_SEED)[1:])


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_note_key_and_signature_match_gos_published_example():
    key = _go_key()
    assert verifier.verifier_key("PeterNeumann", _raw(key)) == GO_VKEY
    assert signing.note_signature(GO_TEXT, name="PeterNeumann", key=key) == GO_SIGNATURE_LINE
    note, signed = verifier.verify_note(GO_TEXT + "\n" + GO_SIGNATURE_LINE, [verifier.parse_verifier_key(GO_VKEY)])
    assert note.text == GO_TEXT
    assert [k.name for k in signed] == ["PeterNeumann"]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (GO_TEXT.replace("answer", "answers") + "\n" + GO_SIGNATURE_LINE, "signature by PeterNeumann does not verify"),
        (GO_TEXT + GO_SIGNATURE_LINE, "no blank line"),
        (GO_TEXT + "\n" + GO_SIGNATURE_LINE.replace("\u2014", "-"), "malformed signature line"),
        (GO_TEXT + "\n" + GO_SIGNATURE_LINE.rstrip("\n"), "no blank line"),
        ("a\x07b\n\n" + GO_SIGNATURE_LINE, "control characters"),
    ],
)
def test_a_tampered_or_malformed_note_is_refused(message, error):
    with pytest.raises(verifier.VerificationError, match=error):
        verifier.verify_note(message, [verifier.parse_verifier_key(GO_VKEY)])


def test_signatures_by_unknown_keys_are_ignored_not_trusted():
    other = Ed25519PrivateKey.generate()
    message = GO_TEXT + "\n" + signing.note_signature(GO_TEXT, name="someone", key=other)
    _, signed = verifier.verify_note(message, [verifier.parse_verifier_key(GO_VKEY)])
    assert signed == []


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # hash does not match
        "PeterNeumann+c74f20a3+AhpjZHEHFDw4TEHoMMW84SqogX7FZJqqvywxOIs1stdE",  # not Ed25519
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
    ],
)
def test_bad_verifier_keys_are_refused(vkey):
    with pytest.raises(verifier.VerificationError):
        verifier.parse_verifier_key(vkey)


def test_checkpoint_text_is_origin_size_and_base64_root():
    body = verifier.CheckpointBody("example.com/log", 20852163, bytes(range(32)))
    assert body.text() == "example.com/log\n20852163\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert verifier.parse_checkpoint(body.text()) == body
    assert verifier.parse_checkpoint(body.text() + "extension line\n") == body


@pytest.mark.parametrize(
    "text",
    [
        "log\n012\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "log\n-1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "log\n12\nAAECAwQ=\n",
        "log\n12\n",
        "log\n12\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\nx\n",
    ],
)
def test_malformed_checkpoints_are_refused(text):
    with pytest.raises(verifier.VerificationError):
        verifier.parse_checkpoint(text)


def test_open_checkpoint_wants_the_logs_own_signature():
    log_key, witness = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    text = verifier.CheckpointBody("lineage", 3, bytes(32)).text()
    by_log = text + "\n" + signing.note_signature(text, name="lineage", key=log_key)
    body, _ = verifier.open_checkpoint(by_log, _raw(log_key))
    assert body.size == 3
    with pytest.raises(verifier.VerificationError, match="not signed by the trusted key of lineage"):
        verifier.open_checkpoint(by_log, _raw(witness))
    by_witness_only = text + "\n" + signing.note_signature(text, name="lineage", key=witness)
    with pytest.raises(verifier.VerificationError):
        verifier.open_checkpoint(by_witness_only, _raw(log_key))


def test_tlog_proof_round_trip_in_c2sp_form():
    note = "log\n5\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n\u2014 log AAAA\n"
    proof = [bytes([1]) * 32, bytes([2]) * 32]
    text = verifier.format_tlog_proof(3, proof, note)
    assert text.startswith("c2sp.org/tlog-proof@v1\nindex 3\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n")
    assert verifier.parse_tlog_proof(text) == (3, proof, note)
    extra = text.replace("index 3", "extra aGVsbG8=\nindex 3")
    assert verifier.parse_tlog_proof(extra) == (3, proof, note)
    with pytest.raises(verifier.VerificationError):
        verifier.parse_tlog_proof(text.replace("index 3", "index 03"))


@given(st.integers(min_value=1, max_value=70), st.data())
def test_consistency_proofs_hold_and_any_change_breaks_them(size, data):
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    read = merkle.memory_reader(leaves)
    old = data.draw(st.integers(min_value=1, max_value=size))
    old_root, new_root = merkle.root(leaves[:old]), merkle.root(leaves)
    proof = merkle.consistency_proof(old, size, read)
    assert verifier.verify_consistency(old, size, old_root, new_root, proof)
    if old < size:
        assert not verifier.verify_consistency(old, size, new_root, new_root, proof)
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bent = [*proof[:position], bytes(32), *proof[position + 1 :]]
        assert not verifier.verify_consistency(old, size, old_root, new_root, bent)
        # A history rewritten at any leaf the old tree covers is no longer consistent with it.
        rewritten = list(leaves)
        rewritten[data.draw(st.integers(min_value=0, max_value=old - 1))] = merkle.leaf_hash(b"forged")
        forged_proof = merkle.consistency_proof(old, size, merkle.memory_reader(rewritten))
        assert not verifier.verify_consistency(old, size, old_root, merkle.root(rewritten), forged_proof)
