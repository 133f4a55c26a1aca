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
signed audit checkpoint; each audit event's hash and its Merkle inclusion proof against the checkpoint;
each approval's Ed25519 signature; and the release's lineage digest against its recorded chain.
Exit 0 when everything holds, 1 naming the first thing that does not, 2 on bad arguments or an
unreadable file.

This file must not import Django or anything from the project: it is shipped inside each bundle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import stat
import sys
import unicodedata
import zipfile
from collections.abc import Sequence
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


def key_fingerprint(public_key_pem: bytes) -> str:
    """SHA-256 (hex) of the key's DER SubjectPublicKeyInfo: what --key, the app's pages and audit_key show."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    try:
        key = load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise VerificationError("not a PEM public key") from exc
    return hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


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


def verify_bundle(
    files: dict[str, bytes],
    *,
    trusted_key_pem: bytes | None = None,
    trusted_fingerprint: str | None = None,
    trust_bundled_key: bool = False,
) -> list[str]:
    """Check a bundle given as {name: content}. Returns what was checked; raises on the first failure.

    Every signature is checked with the key the caller trusts (``trusted_key_pem`` or
    ``trusted_fingerprint``); without one the bundle is refused unless ``trust_bundled_key``.
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
        )
    except KeyError as exc:
        print(f"NOT VERIFIED: {exc.args[0]!r} is missing from the bundle or from one of its files", file=sys.stderr)
        return 1
    except (VerificationError, ValueError, TypeError) as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return 1
    for line in checked:
        print(line if line.startswith("WARNING") else f"ok  {line}")
    status = checked[-1].removeprefix("release status: ")
    # The evidence can be intact while the approval it records no longer counts: say so on the last line.
    intact = "VERIFIED (evidence intact), but the release is"
    verdict = "VERIFIED" if status.startswith("Approved") else f"{intact} {status}"
    if options.trust_bundled_key:
        verdict += f"; {NOTHING_PROVED_ABOUT_SIGNER}"
    print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
