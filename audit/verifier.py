#!/usr/bin/env python3
"""Verify a release evidence bundle offline: needs only Python 3.10+ and the `cryptography` package.

    python verify.py churn-v42-evidence.zip

Checks, in order: every file against the signed manifest; the manifest signature; the signed audit
checkpoint; each audit event's hash and its Merkle inclusion proof against the checkpoint; each
approval's Ed25519 signature; and the release's lineage digest against its recorded chain.
Exit 0 when everything holds, 1 naming the first thing that does not, 2 when the file is unreadable.

This file must not import Django or anything from the project: it is shipped inside each bundle.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from collections.abc import Sequence
from typing import Any

MANIFEST = "MANIFEST.json"
MANIFEST_SIGNATURE = "MANIFEST.sig"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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


class VerificationError(Exception):
    pass


def _check_signature(public_key_pem: bytes, message: bytes, signature_hex: str, what: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationError("public_key.pem is not an Ed25519 key")
    try:
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError) as exc:
        raise VerificationError(f"{what}: signature does not verify") from exc


def verify_bundle(files: dict[str, bytes]) -> list[str]:
    """Check a bundle given as {name: content}. Returns what was checked; raises on the first failure."""
    checked: list[str] = []
    for required in (MANIFEST, MANIFEST_SIGNATURE, "public_key.pem"):
        if required not in files:
            raise VerificationError(f"{required} is missing from the bundle")
    public_key = files["public_key.pem"]
    _check_signature(public_key, files[MANIFEST], files[MANIFEST_SIGNATURE].decode().strip(), "MANIFEST.json")
    manifest = json.loads(files[MANIFEST])
    for name, expected in sorted(manifest["files"].items()):
        if name not in files:
            raise VerificationError(f"{name} is listed in the manifest but missing")
        if hashlib.sha256(files[name]).hexdigest() != expected:
            raise VerificationError(f"{name} does not match its sha256 in the manifest")
    extra = set(files) - set(manifest["files"]) - {MANIFEST, MANIFEST_SIGNATURE}
    if extra:
        raise VerificationError(f"files not covered by the manifest: {', '.join(sorted(extra))}")
    checked.append(f"{len(manifest['files'])} files match the signed manifest")

    checkpoint = json.loads(files["checkpoint.json"])
    note = f"{checkpoint['origin']}\n{checkpoint['size']}\n{checkpoint['root_hash']}\n".encode()
    _check_signature(public_key, note, checkpoint["signature"], "audit checkpoint")
    checked.append(f"checkpoint of {checkpoint['size']} events signed by key {checkpoint['key_id']}")

    root = bytes.fromhex(checkpoint["root_hash"])
    events = json.loads(files["events.json"])
    for event in events:
        fields = event["fields"]
        if hashlib.sha256(canonical_json(fields).encode()).hexdigest() != event["hash"]:
            raise VerificationError(f"audit event #{fields['seq']} does not match its hash")
        proof = [bytes.fromhex(p) for p in event["proof"]]
        leaf = leaf_hash(bytes.fromhex(event["hash"]))
        if not verify_inclusion(fields["seq"] - 1, checkpoint["size"], leaf, proof, root):
            raise VerificationError(f"audit event #{fields['seq']} is not in the signed audit log")
    checked.append(f"{len(events)} audit events hash correctly and are included in the signed log")

    trace = json.loads(files["trace.json"])
    digest = "sha256:" + hashlib.sha256(canonical_json(trace["chain"]).encode()).hexdigest()
    if digest != trace["lineage_digest"]:
        raise VerificationError("trace.json: the chain does not hash to its lineage digest")
    checked.append(f"lineage digest {digest} matches the recorded chain of {trace['release']}")

    for approval in json.loads(files["approvals.json"]):
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
    status = trace.get("status") or {}
    checked.append(
        f"release status: {status.get('label', 'unknown')}" + (f" ({status['detail']})" if status.get("detail") else "")
    )
    return checked


def read_zip(path: str) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as bundle:
        return {info.filename: bundle.read(info) for info in bundle.infolist() if not info.is_dir()}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: verify.py EVIDENCE.zip", file=sys.stderr)
        return 2
    try:
        files = read_zip(argv[1])
    except (OSError, zipfile.BadZipFile) as exc:
        print(f"cannot read {argv[1]}: {exc}", file=sys.stderr)
        return 2
    try:
        checked = verify_bundle(files)
    except (VerificationError, KeyError, ValueError) as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return 1
    for line in checked:
        print(f"ok  {line}")
    status = checked[-1].removeprefix("release status: ")
    # The evidence can be intact while the approval it records no longer counts: say so on the last line.
    print("VERIFIED" if status.startswith("Approved") else f"VERIFIED (evidence intact), but the release is {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
