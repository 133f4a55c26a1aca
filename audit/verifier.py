#!/usr/bin/env python3
"""Verify a release evidence bundle offline: needs only Python 3.10+ and the `cryptography` package.

    python verify.py --key FINGERPRINT churn-v42-evidence.zip
    python verify.py --key-file lineage-signing-key.pem churn-v42-evidence.zip

Run your own copy of this file (from the project's repository, or from the app at /audit/verify.py),
not the copy inside the bundle you are checking: a bundle's own verifier could say anything. The copy
every bundle carries is there for convenience only.

The key that must have signed the bundle comes from you, obtained out of band (`manage.py audit_key` on
the server, the evidence section of a release page): --key takes its fingerprint, the SHA-256 (hex) of
the key's DER SubjectPublicKeyInfo, the same as
`openssl pkey -pubin -in public_key.pem -outform DER | sha256sum`; --key-file takes its PEM. Without
either the verifier refuses; --trust-bundled-key checks the bundle against the key it carries, which
proves the bundle is intact but nothing about who signed it.

Checks, in order: the zip itself (no duplicate, unlisted, directory, link or unsafe entry); the bundle's
key against the one you trust; every file against the signed manifest; the manifest signature; the
signed audit checkpoint (a C2SP signed note, checkpoint.note); each audit event's hash and its Merkle
inclusion proof (c2sp.org/tlog-proof) against the checkpoint; that the checkpoint extends the witnessed
ones (witnessed.json, RFC 6962 consistency proofs); each approval's Ed25519 signature; each approval's
in-toto statement (intoto/, a DSSE envelope) against approvals.json; and the release's lineage digest
against its recorded chain. A period's bundle (its signed manifest says "kind": "period")
is checked the same way for each of its releases (releases/NAME/), then its population: each deployment
and rollback names a checked release by its digest and is an event of the signed log, each approval it
lists as in force is a checked signature made before it, and the log's export event names population.json.
Exit 0 when everything holds, 1 naming the first thing that does not, 2 on bad arguments or an
unreadable file.

This file must not import Django or anything from the project: it is shipped inside each bundle.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import re
import stat
import sys
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

MANIFEST = "MANIFEST.json"
MANIFEST_SIGNATURE = "MANIFEST.sig"
PUBLIC_KEY = "public_key.pem"
BUNDLED_VERIFIER = "verify.py"
# Each part of an entry's path: a plain file name, nothing a filesystem or unzip could read otherwise.
_SAFE_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_-])?")
# Far above any real bundle; a zip declaring more is refused before anything is decompressed.
MAX_BUNDLE_BYTES = 1 << 30
NOTHING_PROVED_ABOUT_SIGNER = (
    "the key was taken from the bundle itself (--trust-bundled-key): this shows the bundle is intact, "
    "nothing was proved about who signed it"
)


class VerificationError(Exception):
    pass


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def approval_statement(
    *, release: str, approver: str, decision: str, meaning: str, lineage_digest: str, signed_at: str
) -> bytes:
    """The exact bytes the server's key signs for a decision on a release: what every verifier rebuilds."""
    return canonical_json(
        {
            "release": release,
            "approver": approver,
            "decision": decision,
            "meaning": meaning,
            "lineage_digest": lineage_digest,
            "signed_at": signed_at,
        }
    ).encode()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` put leaf hash ``leaf`` at ``index`` under ``expected_root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: does ``proof`` show the tree of ``first`` leaves is a prefix of ``second``'s?"""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        # Every tree extends the empty one; there is nothing to prove.
        return not proof
    path = list(proof)
    if not path:
        return False
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


# Signed notes (c2sp.org/signed-note) and checkpoints (c2sp.org/tlog-checkpoint): the text form Go's
# golang.org/x/mod/sumdb/note and other transparency-log tools read.
NOTE_ED25519 = 0x01
_SIGNATURE_START = "\u2014 "
_MAX_SIGNATURES = 100


# DER SubjectPublicKeyInfo of an Ed25519 key, before its 32 raw bytes (RFC 8410).
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def key_fingerprint(public_key: bytes) -> str:
    """What an auditor pins: SHA-256 (hex) of the key's DER SubjectPublicKeyInfo, the same as
    `openssl pkey -pubin -in key.pem -outform DER | sha256sum`. Takes the PEM or the raw 32-byte key."""
    if len(public_key) == 32:
        return hashlib.sha256(_ED25519_SPKI_PREFIX + public_key).hexdigest()
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    try:
        key = load_pem_public_key(public_key)
    except ValueError as exc:
        raise VerificationError("not a PEM public key") from exc
    return hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def valid_key_name(name: str) -> bool:
    """A note key name: not empty, no spaces, no plus sign (it separates the parts of a verifier key)."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def note_key_hash(name: str, public_key: bytes) -> int:
    """The 4-byte key hash a signature line starts with: SHA-256(name || LF || 0x01 || key), first 4 bytes."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([NOTE_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def verifier_key(name: str, public_key: bytes) -> str:
    """The note verifier key: ``<name>+<hex key hash>+<base64(0x01 || public key)>``."""
    encoded = base64.b64encode(bytes([NOTE_ED25519]) + public_key).decode()
    return f"{name}+{note_key_hash(name, public_key):08x}+{encoded}"


@dataclass(frozen=True)
class NoteKey:
    """A public key a note may be signed with, under its name."""

    name: str
    public_key: bytes

    @property
    def key_hash(self) -> int:
        return note_key_hash(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        return verifier_key(self.name, self.public_key)


def parse_verifier_key(vkey: str) -> NoteKey:
    """Read a verifier key string; refuse one whose hash does not match its name and key."""
    name, _, rest = vkey.strip().partition("+")
    key_hash, _, encoded = rest.partition("+")
    if not valid_key_name(name) or len(key_hash) != 8 or not encoded:
        raise VerificationError(f"not a note verifier key: {vkey!r}")
    try:
        decoded = base64.b64decode(encoded, validate=True)
        expected = int(key_hash, 16)
    except ValueError as exc:
        raise VerificationError(f"not a note verifier key: {vkey!r}") from exc
    if len(decoded) != 33 or decoded[0] != NOTE_ED25519:
        raise VerificationError(f"{name}: only Ed25519 note keys are supported")
    key = NoteKey(name, decoded[1:])
    if key.key_hash != expected:
        raise VerificationError(f"{name}: the key hash in the verifier key does not match the key")
    return key


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: int
    signature: bytes

    def line(self) -> str:
        encoded = base64.b64encode(self.key_hash.to_bytes(4, "big") + self.signature).decode()
        return f"{_SIGNATURE_START}{self.name} {encoded}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]

    def __str__(self) -> str:
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)


def parse_note(message: str) -> Note:
    """Split a signed note into its text and signature lines (not yet checked)."""
    if any(ord(c) < 0x20 and c != "\n" for c in message):
        raise VerificationError("signed note holds control characters")
    if not message.endswith("\n") or "\n\n" not in message:
        raise VerificationError("not a signed note: no blank line before the signatures")
    cut = message.rindex("\n\n")
    text, block = message[: cut + 1], message[cut + 2 :]
    lines = block.splitlines(keepends=True)
    if not lines or len(lines) > _MAX_SIGNATURES:
        raise VerificationError("signed note has no signature lines, or too many")
    signatures = []
    for line in lines:
        name, _, encoded = line.removeprefix(_SIGNATURE_START).removesuffix("\n").partition(" ")
        if not line.startswith(_SIGNATURE_START) or not line.endswith("\n") or not valid_key_name(name):
            raise VerificationError(f"malformed signature line in signed note: {line!r}")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise VerificationError(f"malformed signature line in signed note: {line!r}") from exc
        if len(raw) < 5:
            raise VerificationError(f"malformed signature line in signed note: {line!r}")
        signatures.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return Note(text, tuple(signatures))


def verify_note(message: str, keys: Sequence[NoteKey]) -> tuple[Note, list[NoteKey]]:
    """Check every signature made by one of ``keys``; returns the note and the keys that signed it.

    A signature by a known key that does not verify fails the whole note (as Go's note.Open does);
    signatures by keys not given are ignored, not trusted, and a key that signed twice counts once.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    note = parse_note(message)
    signed: list[NoteKey] = []
    for sig in note.signatures:
        for key in keys:
            if key.name != sig.name or key.key_hash != sig.key_hash:
                continue
            try:
                Ed25519PublicKey.from_public_bytes(key.public_key).verify(sig.signature, note.text.encode())
            except (InvalidSignature, ValueError) as exc:
                raise VerificationError(f"signed note: the signature by {key.name} does not verify") from exc
            if key not in signed:
                signed.append(key)
    return note, signed


@dataclass(frozen=True)
class CheckpointBody:
    """A tlog-checkpoint's text: the log's name (origin), its size and the Merkle root at that size."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def parse_checkpoint(text: str) -> CheckpointBody:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        raise VerificationError("not a checkpoint: it needs origin, size and root hash lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or not size.isascii() or (size.startswith("0") and size != "0"):
        raise VerificationError(f"checkpoint size {size!r} is not a decimal number")
    try:
        decoded = base64.b64decode(root, validate=True)
    except ValueError as exc:
        raise VerificationError("checkpoint root is not base64") from exc
    if len(decoded) != 32:
        raise VerificationError("checkpoint root is not a SHA-256 hash")
    return CheckpointBody(origin, int(size), decoded)


def open_checkpoint(message: str, log_key: bytes, witnesses: Sequence[NoteKey] = ()) -> tuple[CheckpointBody, Note]:
    """A checkpoint note signed by the log's key (named after the checkpoint's origin); also checks
    any signatures by ``witnesses``. Raises unless the log's signature is there and verifies."""
    note = parse_note(message)
    body = parse_checkpoint(note.text)
    log = NoteKey(body.origin, log_key)
    _, signed = verify_note(message, [log, *witnesses])
    if log not in signed:
        raise VerificationError(f"checkpoint of {body.size} events is not signed by the trusted key of {body.origin}")
    return body, note


TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"


def format_tlog_proof(index: int, proof: Sequence[bytes], checkpoint_note: str) -> str:
    """An inclusion proof in c2sp.org/tlog-proof form: header, index, hashes, blank line, checkpoint."""
    hashes = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    return f"{TLOG_PROOF_HEADER}\nindex {index}\n{hashes}\n{checkpoint_note}"


def parse_tlog_proof(text: str) -> tuple[int, list[bytes], str]:
    """(index, hashes, checkpoint note) of a c2sp.org/tlog-proof; the extra line, if any, is not trusted."""
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != TLOG_PROOF_HEADER:
        raise VerificationError("not a c2sp.org/tlog-proof@v1 proof")
    lines = lines[1:]
    if lines and lines[0].startswith("extra "):
        lines = lines[1:]
    if not lines or not lines[0].startswith("index "):
        raise VerificationError("tlog proof has no index line")
    index = lines[0].removeprefix("index ")
    if not index.isdigit() or not index.isascii() or (index.startswith("0") and index != "0"):
        raise VerificationError(f"tlog proof index {index!r} is not a decimal number")
    try:
        hashes = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except ValueError as exc:
        raise VerificationError("tlog proof hash is not base64") from exc
    if any(len(h) != 32 for h in hashes):
        raise VerificationError("tlog proof hash is not a SHA-256 hash")
    return int(index), hashes, note


def normalise_fingerprint(text: str) -> str:
    """The 64 lowercase hex digits of a fingerprint typed as hex, SHA256:hex or with colons; ValueError otherwise."""
    digits = re.sub(r"[\s:]", "", text.strip().lower().removeprefix("sha256:"))
    if not re.fullmatch(r"[0-9a-f]{64}", digits):
        raise ValueError("a key fingerprint is the 64 hex digits of a SHA-256 (see manage.py audit_key)")
    return digits


def _check_signature(public_key_pem: bytes, message: bytes, signature_hex: str, what: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationError("the signing key is not an Ed25519 key")
    try:
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError) as exc:
        raise VerificationError(f"{what}: signature does not verify") from exc


def check_signed_decision(raw_key: bytes, *, release: str, approver: str, decision: str, signed: Any) -> str:
    """Check a decision's fields as an audit event carries them against its signature by ``raw_key``.

    ``decision`` comes from the event's action, not from the fields; returns the signature (hex).
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        statement = approval_statement(
            release=release,
            approver=approver,
            decision=decision,
            meaning=signed["meaning"],
            lineage_digest=signed["lineage_digest"],
            signed_at=signed["signed_at"],
        )
        signature = signed["signature"]
        Ed25519PublicKey.from_public_bytes(raw_key).verify(bytes.fromhex(signature), statement)
    except (KeyError, TypeError, ValueError, AttributeError, InvalidSignature) as exc:
        raise VerificationError(f"{decision} of {release} by {approver}: the signature does not verify") from exc
    return str(signature)


def trusted_key(
    files: dict[str, bytes],
    *,
    trusted_key_pem: bytes | None = None,
    trusted_fingerprint: str | None = None,
    trust_bundled_key: bool = False,
) -> tuple[bytes, str]:
    """The key every signature in the bundle is checked with, and a line saying where it came from.

    The bundle's own public_key.pem is used only when it is the key the auditor named (by PEM or by
    fingerprint), or when the auditor explicitly chose to trust it.
    """
    if PUBLIC_KEY not in files:
        raise VerificationError(f"{PUBLIC_KEY} is missing from the bundle")
    bundled = files[PUBLIC_KEY]
    try:
        bundled_fingerprint = key_fingerprint(bundled)
    except VerificationError as exc:
        raise VerificationError(f"{PUBLIC_KEY}: {exc}") from exc
    if trusted_key_pem is not None:
        expected = key_fingerprint(trusted_key_pem)
    elif trusted_fingerprint is not None:
        expected = normalise_fingerprint(trusted_fingerprint)
    elif trust_bundled_key:
        return bundled, f"WARNING: {NOTHING_PROVED_ABOUT_SIGNER} (key {bundled_fingerprint})"
    else:
        raise VerificationError("no trusted key given: name the key that must have signed (--key or --key-file)")
    if bundled_fingerprint != expected:
        raise VerificationError(
            f"{PUBLIC_KEY}: the bundle was signed with key {bundled_fingerprint}, "
            f"not with the key you trust ({expected})"
        )
    return (trusted_key_pem if trusted_key_pem is not None else bundled), f"signed with the key you trust ({expected})"


def _raw_public_key(public_key_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    key = load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationError("public_key.pem is not an Ed25519 key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_audit_events(files: dict[str, bytes], log_key: bytes, *, witness_keys: Sequence[str] = ()) -> list[str]:
    """The audit part of a bundle: the checkpoint note signed by ``log_key`` (raw Ed25519 key), each event's
    hash and its c2sp.org/tlog-proof inclusion proof against that checkpoint, and the witnesses required."""
    body, note = open_checkpoint(files["checkpoint.note"].decode(), log_key)
    checked = [f"checkpoint of {body.size} events signed by {body.origin} (key sha256:{key_fingerprint(log_key)})"]
    events = json.loads(files["events.json"])
    for event in events:
        fields = event["fields"]
        seq = fields["seq"]
        if hashlib.sha256(canonical_json(fields).encode()).hexdigest() != event["hash"]:
            raise VerificationError(f"audit event #{seq} does not match its hash")
        index, proof, proof_note = parse_tlog_proof(event["proof"])
        if index != seq - 1 or parse_note(proof_note).text != note.text:
            raise VerificationError(f"audit event #{seq}: its proof is not for entry {seq - 1} of the checkpoint")
        if not verify_inclusion(index, body.size, leaf_hash(bytes.fromhex(event["hash"])), proof, body.root):
            raise VerificationError(f"audit event #{seq} is not in the signed audit log")
    checked.append(f"{len(events)} audit events hash correctly and are included in the signed log")
    witnessed = json.loads(files["witnessed.json"]) if "witnessed.json" in files else []
    checked.extend(_check_witnesses(witnessed, body, log_key, [parse_verifier_key(k) for k in witness_keys], events))
    return checked


def _check_witnesses(
    witnessed: list[dict[str, Any]],
    anchor: CheckpointBody,
    log_key: bytes,
    witnesses: list[NoteKey],
    events: list[dict[str, Any]],
) -> list[str]:
    """Each witnessed checkpoint must be the log's, and the bundle's checkpoint must extend it; each
    required witness must have cosigned one that covers the release's events (all but the export's own)."""
    newest: dict[NoteKey, int] = {}
    for entry in witnessed:
        body, _ = open_checkpoint(entry["checkpoint"], log_key)
        _, signed = verify_note(entry["checkpoint"], witnesses)
        proof = [base64.b64decode(h, validate=True) for h in entry["consistency_proof"]]
        extends = verify_consistency(body.size, anchor.size, body.root, anchor.root, proof)
        if body.origin != anchor.origin or not extends:
            raise VerificationError(f"the bundle's checkpoint does not extend witnessed checkpoint {body.size}")
        for witness in signed:
            newest[witness] = max(newest.get(witness, 0), body.size)
    checked = []
    if witnessed and not witnesses:
        sizes = ", ".join(str(parse_checkpoint(parse_note(e["checkpoint"]).text).size) for e in witnessed)
        checked.append(f"the checkpoint extends witnessed checkpoint(s) {sizes} (no witness key given to check)")
    for witness in witnesses:
        if witness not in newest:
            raise VerificationError(f"no checkpoint in the bundle is cosigned by witness {witness.name}")
        size = newest[witness]
        for event in events:
            fields = event["fields"]
            if fields["seq"] > size and fields["action"] != "evidence.exported":
                raise VerificationError(
                    f"audit event #{fields['seq']} ({fields['action']}) is newer than the checkpoint witness "
                    f"{witness.name} cosigned (size {size}); export again after the witness has run"
                )
        checked.append(f"witness {witness.name} cosigned checkpoint {size}, which covers the release's events")
    return checked


def verify_bundle(
    files: dict[str, bytes],
    *,
    trusted_key_pem: bytes | None = None,
    trusted_fingerprint: str | None = None,
    trust_bundled_key: bool = False,
    witness_keys: Sequence[str] = (),
) -> list[str]:
    """Check a bundle given as {name: content}. Returns what was checked; raises on the first failure.

    Every signature is checked with the key the caller trusts (``trusted_key_pem`` or
    ``trusted_fingerprint``); without one the bundle is refused unless ``trust_bundled_key``.
    ``witness_keys`` (note verifier keys) are witnesses whose cosignature the auditor requires.
    """
    checked: list[str] = []
    for required in (MANIFEST, MANIFEST_SIGNATURE, PUBLIC_KEY):
        if required not in files:
            raise VerificationError(f"{required} is missing from the bundle")
    public_key, key_line = trusted_key(
        files,
        trusted_key_pem=trusted_key_pem,
        trusted_fingerprint=trusted_fingerprint,
        trust_bundled_key=trust_bundled_key,
    )
    checked.append(key_line)
    _check_signature(public_key, files[MANIFEST], files[MANIFEST_SIGNATURE].decode().strip(), "MANIFEST.json")
    manifest = json.loads(files[MANIFEST])
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise VerificationError(f"{MANIFEST} does not list the bundle's files")
    for name, expected in sorted(manifest["files"].items()):
        if name not in files:
            raise VerificationError(f"{name} is listed in the manifest but missing")
        if hashlib.sha256(files[name]).hexdigest() != expected:
            raise VerificationError(f"{name} does not match its sha256 in the manifest")
    extra = set(files) - set(manifest["files"]) - {MANIFEST, MANIFEST_SIGNATURE}
    if extra:
        raise VerificationError(f"files not covered by the manifest: {', '.join(sorted(extra))}")
    checked.append(f"{len(manifest['files'])} files match the signed manifest")

    checked.extend(check_audit_events(files, _raw_public_key(public_key), witness_keys=witness_keys))

    if manifest.get("kind") == "period":
        checked.extend(check_period(files, public_key, manifest))
    else:
        checked.extend(check_release(files, public_key))
    return checked


def check_release(files: dict[str, bytes], public_key: bytes, prefix: str = "") -> list[str]:
    """One release's record (its files under ``prefix``): the chain hashes to its lineage digest, and each
    approval's signature holds over what it says was signed."""
    checked: list[str] = []
    trace = json.loads(files[prefix + "trace.json"])
    digest = "sha256:" + hashlib.sha256(canonical_json(trace["chain"]).encode()).hexdigest()
    if digest != trace["lineage_digest"]:
        raise VerificationError(f"{prefix}trace.json: the chain does not hash to its lineage digest")
    checked.append(f"lineage digest {digest} matches the recorded chain of {trace['release']}")

    for approval in json.loads(files[prefix + "approvals.json"]):
        _check_signature(
            public_key, approval["statement"].encode(), approval["signature"], f"approval by {approval['approver']}"
        )
        statement = json.loads(approval["statement"])
        for key in ("decision", "meaning", "signed_at"):
            if statement[key] != approval[key]:
                raise VerificationError(f"approval by {approval['approver']}: {key} differs from what was signed")
        who = f"{approval['decision']} by {approval['approver_name']} ({approval['meaning']})"
        if approval["signed_digest"] != digest:
            changes = "; ".join(approval.get("no_longer_counts_because") or ["the chain changed since it was signed"])
            checked.append(f"{who}: signature valid, approval no longer counts: {changes}")
        else:
            checked.append(f"{who}: signature valid, counts for the chain as it stands")
    checked.extend(check_attestations(files, public_key, prefix))
    status = trace.get("status") or {}
    checked.append(
        f"release status: {status.get('label', 'unknown')}" + (f" ({status['detail']})" if status.get("detail") else "")
    )
    return checked


def _moment(text: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise VerificationError(f"population: {text!r} is not a moment in ISO 8601") from None


# The audit actions that record a deployment or a rollback on an endpoint.
DEPLOYMENT_ACTIONS = ("deployment.recorded", "deployment.backfilled", "deployment.rolled_back")


def check_period(files: dict[str, bytes], public_key: bytes, manifest: dict[str, Any]) -> list[str]:
    """A period's bundle: each release's record as above; each member of the population names a release
    of the bundle by its checked digest, is a deployment or rollback the signed log recorded, and lists as
    in force only approvals of that release whose signatures were checked and that came before it; and the
    export's own event, in the signed log, names this very population."""
    releases = manifest.get("releases")
    if not isinstance(releases, list) or "population.json" not in files:
        raise VerificationError("a period bundle must list its releases and carry population.json")
    checked: list[str] = []
    digests: dict[str, str] = {}
    approvals: dict[str, set[tuple[str, str, str]]] = {}
    for name in releases:
        prefix = f"releases/{name}/"
        if prefix + "trace.json" not in files:
            raise VerificationError(f"release {name} is listed but its record ({prefix}) is missing")
        lines = check_release(files, public_key, prefix)
        checked.extend(f"{name}: {line}" for line in lines)
        trace = json.loads(files[prefix + "trace.json"])
        if trace["release"] != name:
            raise VerificationError(f"{prefix}trace.json is the record of {trace['release']}, not of {name}")
        digests[name] = trace["lineage_digest"]
        approvals[name] = {
            (a["approver"], a["signed_at"], a["signed_digest"])
            for a in json.loads(files[prefix + "approvals.json"])
            if a["decision"] == "approved"
        }
    population = json.loads(files["population.json"])
    events = [event["fields"] for event in json.loads(files["events.json"])]
    recorded = {
        (e["object_key"], e["new"].get("release"), e["new"].get("deployed_at"), e["new"].get("kind"))
        for e in events
        if e["action"] in DEPLOYMENT_ACTIONS and e["object_type"] == "endpoint" and isinstance(e["new"], dict)
    }
    for change in population["changes"]:
        what = f"{change['kind']} of {change['release']} on {change['endpoint']} at {change['deployed_at']}"
        if digests.get(change["release"]) != change["lineage_digest"]:
            raise VerificationError(f"population: {what} does not match the record of {change['release']}")
        if (change["endpoint"], change["release"], change["deployed_at"], change["kind"]) not in recorded:
            raise VerificationError(f"population: {what} is not among the signed log's events")
        for approval in change["approvals_in_force"]:
            signed = (approval["approver"], approval["signed_at"], approval["signed_digest"])
            before = _moment(approval["signed_at"]) <= _moment(change["deployed_at"])
            if signed not in approvals[change["release"]] or not before:
                raise VerificationError(
                    f"population: {what} lists an approval by {approval['approver']} that is not a checked "
                    "signature made before it"
                )
    population_sha256 = hashlib.sha256(files["population.json"]).hexdigest()
    exports = [
        e
        for e in events
        if e["action"] == "evidence.exported" and (e["new"] or {}).get("population_sha256") == population_sha256
    ]
    if not exports:
        raise VerificationError("population.json is not the population the signed log says was exported")
    period = population["period"]
    checked.append(
        f"population of {len(population['changes'])} deployment(s) and rollback(s) from {period['from']} to "
        f"{period['to']} ({', '.join(period['environments'])}): each recorded in the signed log, "
        f"{len(releases)} release record(s) checked, exported as event #{exports[0]['seq']}"
    )
    return checked


# Approvals in the form supply-chain tools read: each decision also as an in-toto Statement v1 in a DSSE
# envelope (github.com/secure-systems-lab/dsse), signed with the same key as everything else.
ATTESTATIONS = "intoto/"
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
INTOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
# Our own predicate type (README, "Checking a bundle with standard tools"). The .invalid top-level domain
# (RFC 2606) can never be registered by anyone, so the name is ours alone; it names a format, not a page.
RELEASE_APPROVAL_PREDICATE = "https://release-lineage.invalid/attestation/release-approval/v1"
# The model version's subject digest: lowercase hex SHA-256 of the canonical lineage chain as signed,
# which names the version, its artifact URI and its source run. The registry records no hash of the
# artifact's bytes, so a standard name such as "sha256" would claim something nobody measured.
LINEAGE_DIGEST_ALGORITHM = "lineageSha256"


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes an envelope's signatures are over."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _dsse_base64(text: str) -> bytes:
    # DSSE allows standard or URL-safe base64.
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return base64.b64decode(text, altchars=b"-_", validate=True)


def open_envelope(data: bytes, public_key_pem: bytes, name: str) -> dict[str, Any]:
    """The in-toto Statement in a DSSE envelope, once a signature by the trusted key verifies over its PAE."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        envelope = json.loads(data)
        payload_type = envelope["payloadType"]
        payload = _dsse_base64(envelope["payload"])
        signatures = [_dsse_base64(signature["sig"]) for signature in envelope["signatures"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VerificationError(f"{name} is not a DSSE envelope") from exc
    if payload_type != DSSE_PAYLOAD_TYPE:
        raise VerificationError(f"{name}: payload type {payload_type!r} is not {DSSE_PAYLOAD_TYPE}")
    key = Ed25519PublicKey.from_public_bytes(_raw_public_key(public_key_pem))
    pae = dsse_pae(payload_type, payload)
    for signature in signatures:
        try:
            key.verify(signature, pae)
        except InvalidSignature:
            continue
        break
    else:
        raise VerificationError(f"{name}: no signature by the trusted key verifies over the envelope's payload")
    try:
        statement = json.loads(payload)
    except ValueError as exc:
        raise VerificationError(f"{name}: the signed payload is not JSON") from exc
    if not isinstance(statement, dict) or statement.get("_type") != INTOTO_STATEMENT_V1:
        raise VerificationError(f"{name}: the signed payload is not an in-toto Statement v1")
    subject = statement.get("subject")
    if not isinstance(subject, list) or not subject or not all(_is_subject(item) for item in subject):
        raise VerificationError(f"{name}: the statement's subject is not a list of names with digests")
    if statement.get("predicateType") != RELEASE_APPROVAL_PREDICATE or not isinstance(statement.get("predicate"), dict):
        raise VerificationError(f"{name}: the statement is not a release approval ({RELEASE_APPROVAL_PREDICATE})")
    return statement


def _is_subject(item: Any) -> bool:
    digest = item.get("digest") if isinstance(item, dict) else None
    return isinstance(digest, dict) and bool(digest) and all(isinstance(v, str) for v in digest.values())


def check_attestations(files: dict[str, bytes], public_key_pem: bytes, prefix: str = "") -> list[str]:
    """Every ``{prefix}intoto/*.dsse.json`` envelope: its Ed25519 signature over the PAE by the trusted key,
    and its statement's predicate (release, lineage digest, decision, meaning, signer) against the decision
    ``{prefix}approvals.json`` records, one envelope for each decision."""
    folder = f"{prefix}{ATTESTATIONS}"
    names = sorted(name for name in files if name.startswith(folder) and name.endswith(".dsse.json"))
    approvals = json.loads(files[f"{prefix}approvals.json"])
    if not names:
        # Bundles exported before approvals were also written as in-toto statements; the signed manifest
        # shows nothing was taken out.
        return [f"no in-toto attestations beside {prefix}approvals.json to check"] if approvals else []
    unmatched = {(approval["approver"], approval["signed_at"]): approval for approval in approvals}
    for name in names:
        statement = open_envelope(files[name], public_key_pem, name)
        predicate = statement["predicate"]
        signer = predicate.get("signer") if isinstance(predicate.get("signer"), dict) else {}
        approval = unmatched.pop((signer.get("username"), predicate.get("signedAt")), None)
        if approval is None:
            raise VerificationError(
                f"{name}: the statement is not one of the decisions in {prefix}approvals.json, or repeats one"
            )
        recorded = json.loads(approval["statement"])
        for what, stated, expected in (
            ("release", predicate.get("release"), recorded["release"]),
            ("lineage digest", predicate.get("lineageDigest"), approval["signed_digest"]),
            ("decision", predicate.get("decision"), approval["decision"]),
            ("meaning", predicate.get("meaning"), approval["meaning"]),
            ("signer's name", signer.get("name"), approval["approver_name"]),
        ):
            if stated != expected:
                raise VerificationError(f"{name}: the statement's {what} differs from {prefix}approvals.json")
        model_digests = [item["digest"].get(LINEAGE_DIGEST_ALGORITHM) for item in statement["subject"]]
        if approval["signed_digest"].removeprefix("sha256:") not in model_digests:
            raise VerificationError(f"{name}: no subject carries the signed lineage digest")
    if unmatched:
        approver, signed_at = next(iter(unmatched))
        raise VerificationError(f"the decision by {approver} at {signed_at} has no in-toto attestation in {folder}")
    return [
        f"{len(names)} in-toto statement(s) in DSSE envelopes signed with the trusted key agree with approvals.json"
    ]


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an entry cannot be one of a bundle's files, or None when it can."""
    # zipfile cuts a name at NUL; the original keeps what unzip would see.
    name = info.orig_filename
    parts = name.removesuffix("/").split("/") if info.is_dir() else name.split("/")
    if "\x00" in name or not all(_SAFE_PART.fullmatch(part) for part in parts):
        return "is an unsafe path (absolute, '..', backslash, NUL or an unusual character)"
    if info.is_dir():
        return "is a directory where a file is expected"
    # Unix file type bits; none at all (Python's writestr) means a plain file, as unzip reads it.
    kind = stat.S_IFMT(info.external_attr >> 16)
    if info.create_system == 3 and kind and kind != stat.S_IFREG:
        return "is a symbolic link or special file where a file is expected"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def read_zip(path: str | Path) -> dict[str, bytes]:
    """The bundle's files by name, refusing any zip whose entries could be read two ways.

    ``unzip`` and this verifier must see the same bytes under each name: a name given twice (or twice
    up to case and Unicode normalisation, which a case-insensitive disk merges), a directory, a link,
    or a path that could land outside the folder it is unpacked into is refused, naming the entry.
    """
    with zipfile.ZipFile(path) as bundle:
        entries = bundle.infolist()
        seen: dict[str, str] = {}
        for info in entries:
            problem = _entry_problem(info)
            if problem:
                raise VerificationError(f"zip entry {info.orig_filename!r} {problem}")
            folded = unicodedata.normalize("NFC", info.filename).casefold()
            if folded in seen:
                first = seen[folded]
                same = "twice" if first == info.filename else f"and as {first!r}"
                raise VerificationError(f"zip entry {info.filename!r} appears {same}: the zip can be read two ways")
            seen[folded] = info.filename
        if sum(info.file_size for info in entries) > MAX_BUNDLE_BYTES:
            raise VerificationError(f"the zip declares more than {MAX_BUNDLE_BYTES} bytes: not an evidence bundle")
        files: dict[str, bytes] = {}
        for info in entries:
            try:
                files[info.filename] = bundle.read(info)
            except (zipfile.BadZipFile, OSError) as exc:
                raise VerificationError(f"zip entry {info.filename!r} cannot be read: {exc}") from exc
        return files


def bundled_verifier_note(files: dict[str, bytes]) -> str | None:
    """A line saying the bundle's verify.py is not this file, when this file can read its own source."""
    try:
        own = Path(__file__).read_bytes()
    except (NameError, OSError):
        return None
    bundled = files.get(BUNDLED_VERIFIER)
    if bundled is None or bundled == own:
        return None
    return (
        f"note: the {BUNDLED_VERIFIER} inside this bundle (sha256 {hashlib.sha256(bundled).hexdigest()}) differs "
        f"from this verifier (sha256 {hashlib.sha256(own).hexdigest()}): only this one was run; "
        "do not run the bundled copy"
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, exit 2: the usage is in --help.
        self.exit(2, f"verify.py: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="verify.py",
        description="Verify a release evidence bundle offline against the signing key you trust.",
    )
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--key", metavar="FINGERPRINT", help="SHA-256 fingerprint of the key that must have signed")
    trust.add_argument("--key-file", metavar="PEM", help="public key (PEM) that must have signed")
    trust.add_argument(
        "--trust-bundled-key",
        action="store_true",
        help="use the key inside the bundle: proves the bundle is intact, not who signed it",
    )
    parser.add_argument(
        "--witness-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="require a cosignature by this witness (its note verifier key); repeat for several",
    )
    parser.add_argument("bundle", metavar="EVIDENCE.zip")
    return parser


def main(argv: list[str]) -> int:
    options = _parser().parse_args(argv[1:])
    trusted_key_pem: bytes | None = None
    if options.key_file:
        try:
            trusted_key_pem = Path(options.key_file).read_bytes()
            key_fingerprint(trusted_key_pem)
        except (OSError, VerificationError) as exc:
            print(f"verify.py: --key-file {options.key_file}: {exc}", file=sys.stderr)
            return 2
    elif options.key:
        try:
            normalise_fingerprint(options.key)
        except ValueError as exc:
            print(f"verify.py: --key: {exc}", file=sys.stderr)
            return 2
    elif not options.trust_bundled_key:
        print(
            "verify.py: refusing to verify without the key that must have signed: give --key FINGERPRINT or "
            "--key-file PEM (from `manage.py audit_key` or the release page), or --trust-bundled-key",
            file=sys.stderr,
        )
        return 2
    try:
        files = read_zip(options.bundle)
    except (OSError, zipfile.BadZipFile) as exc:
        print(f"verify.py: cannot read {options.bundle}: {exc}", file=sys.stderr)
        return 2
    except VerificationError as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return 1
    note = bundled_verifier_note(files)
    if note:
        print(note)
    try:
        checked = verify_bundle(
            files,
            trusted_key_pem=trusted_key_pem,
            trusted_fingerprint=options.key,
            trust_bundled_key=options.trust_bundled_key,
            witness_keys=options.witness_key,
        )
    except KeyError as exc:
        print(f"NOT VERIFIED: {exc.args[0]!r} is missing from the bundle or from one of its files", file=sys.stderr)
        return 1
    except (VerificationError, ValueError, TypeError) as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return 1
    for line in checked:
        print(line if line.startswith("WARNING") else f"ok  {line}")
    # The evidence can be intact while the approval it records no longer counts: say so on the last line.
    # A period's bundle ends with its population, whose members each say whether they were approved.
    status = checked[-1].removeprefix("release status: ")
    intact = "VERIFIED (evidence intact), but the release is"
    verdict = "VERIFIED" if status.startswith("Approved") or status == checked[-1] else f"{intact} {status}"
    if options.trust_bundled_key:
        verdict += f"; {NOTHING_PROVED_ABOUT_SIGNER}"
    print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
