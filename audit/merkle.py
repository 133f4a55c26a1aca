"""RFC 6962 / RFC 9162 Merkle tree over the audit log: roots and inclusion proofs.

A leaf is an event's hash (32 bytes). The hashing and proof checking come from the offline
verifier (audit/verifier.py), so the server and the verifier cannot disagree on them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from audit.verifier import leaf_hash, node_hash, verify_inclusion

__all__ = ["inclusion_proof", "leaf_hash", "node_hash", "root", "verify_inclusion"]


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of already leaf-hashed entries; the empty tree hashes to SHA-256('')."""
    n = len(leaf_hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    level = list(leaf_hashes)
    # Bottom-up pairing gives the same root as RFC 6962's recursive split: an odd node is carried up.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]): the sibling hashes from the leaf up to the root."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"leaf {index} is not in a tree of size {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, leaf_hashes[:k]), root(leaf_hashes[k:])]
    return [*inclusion_proof(index - k, leaf_hashes[k:]), root(leaf_hashes[:k])]
