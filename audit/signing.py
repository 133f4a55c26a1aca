"""The server's Ed25519 signing key: signs approvals, audit checkpoints and evidence manifests.

The key lives in a PEM file (LINEAGE_SIGNING_KEY_FILE). Development creates one under var/
on first use; production mounts it as a secret.
"""

from __future__ import annotations

import functools
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit.verifier import NoteKey, NoteSignature, key_fingerprint


@functools.cache
def private_key() -> Ed25519PrivateKey:
    path = settings.LINEAGE_SIGNING_KEY_FILE
    if not path.exists():
        if not settings.LINEAGE_SIGNING_KEY_AUTOCREATE:
            raise ImproperlyConfigured(f"signing key {path} is missing; set LINEAGE_SIGNING_KEY_FILE")
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # O_EXCL: two processes starting at once must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{path} is not an Ed25519 private key")
    return key


def public_key() -> Ed25519PublicKey:
    return private_key().public_key()


def public_key_pem() -> str:
    return (
        public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    )


def public_key_raw() -> bytes:
    return public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint() -> str:
    """SHA-256 of the raw public key, in hex: what auditors pin and compare out of band."""
    return key_fingerprint(public_key_raw())


def note_key() -> NoteKey:
    """The key as signed notes name it: the log's origin and the public key."""
    return NoteKey(settings.LINEAGE_AUDIT_ORIGIN, public_key_raw())


def note_signature(text: str, *, name: str, key: Ed25519PrivateKey) -> str:
    """One signature line of a signed note (c2sp.org/signed-note) by ``key`` under ``name``, over ``text``."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return NoteSignature(name, NoteKey(name, raw).key_hash, key.sign(text.encode())).line()


def sign_note(text: str) -> str:
    """``text`` as a signed note, signed by the server's key under the log's origin."""
    return text + "\n" + note_signature(text, name=settings.LINEAGE_AUDIT_ORIGIN, key=private_key())


def sign(message: bytes) -> str:
    return private_key().sign(message).hex()


def verify(message: bytes, signature_hex: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public_key().verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
