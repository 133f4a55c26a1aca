"""The signed zip every evidence bundle is: its files, a manifest of their SHA-256, the manifest's Ed25519
signature, the key, the audit checkpoint with each event's inclusion proof, and the verifier."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit import checkpoints, signing, verifier
from audit.models import AuditEvent, Checkpoint, canonical_json
from releases.evidence.documents import pretty


def audit_documents(checkpoint: Checkpoint, events: Sequence[AuditEvent]) -> dict[str, bytes]:
    """The audit part of a bundle: each event with its proof against ``checkpoint``, the checkpoint itself,
    the witnessed checkpoints it extends, the key and the verifier."""
    proofs = checkpoints.inclusion_proofs([e.seq for e in events], checkpoint)
    witnessed = [w.as_dict() for w in checkpoints.witnessed_before(checkpoint)]
    documents = {
        "events.json": pretty([{"fields": e.hashed_fields(), "hash": e.hash, "proof": proofs[e.seq]} for e in events]),
        "checkpoint.note": checkpoint.cosigned_note().encode(),
        "public_key.pem": signing.public_key_pem().encode(),
        "verify.py": Path(verifier.__file__).read_bytes(),
    }
    if witnessed:
        documents["witnessed.json"] = pretty(witnessed)
    return documents


def signed_zip(documents: dict[str, bytes], head: dict[str, Any]) -> bytes:
    """``documents`` zipped with a manifest (``head`` and every file's SHA-256) and its signature."""
    manifest = canonical_json(
        {**head, "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(documents.items())}}
    ).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in sorted(documents.items()):
            bundle.writestr(name, data)
        bundle.writestr(verifier.MANIFEST, manifest)
        bundle.writestr(verifier.MANIFEST_SIGNATURE, signing.sign(manifest) + "\n")
    return buffer.getvalue()
