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

from audit import verifier


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


def fingerprint() -> str:
    """The key's SHA-256 fingerprint as auditors pin it (``verify.py --key``); one definition, in the verifier."""
    return verifier.key_fingerprint(public_key_pem().encode())


def sign(message: bytes) -> str:
    return private_key().sign(message).hex()


def verify(message: bytes, signature_hex: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public_key().verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
