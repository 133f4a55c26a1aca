"""RFC 6962 / RFC 9162 Merkle tree over the audit log: roots, inclusion and consistency proofs.

A leaf is an event's hash (32 bytes). The hashing and proof checking come from the offline
verifier (audit/verifier.py), so the server and the verifier cannot disagree on them.

Every hash a proof needs is the hash of a range of leaves, and every such range is made of at most
log2(n) complete subtrees ("nodes", named by level and index). Proofs are planned as ranges first,
then all their nodes are read in one batch from whatever stores them (``audit.tree`` for the log, a
list of leaves for small trees), so a proof at a million events costs one read, not a million hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Sequence

from audit.verifier import leaf_hash, node_hash, verify_consistency, verify_inclusion

__all__ = [
    "CompactRange",
    "Node",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "memory_reader",
    "node_hash",
    "root",
    "subtrees",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index): the complete subtree over leaves [index * 2**level, (index + 1) * 2**level).
Node = tuple[int, int]
Reader = Callable[[Collection[Node]], dict[Node, bytes]]


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtrees(start: int, end: int) -> list[Node]:
    """The complete subtrees whose hashes make up MTH(D[start:end]), largest first.

    Every range a proof needs starts at a multiple of its largest power of two, so RFC 6962's split
    of the range falls on these subtrees' edges.
    """
    nodes = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start & ((1 << level) - 1):
            raise ValueError(f"leaves [{start}, {end}) are not a range of the tree")
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def _fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its complete subtrees, largest first: the smaller ones hang to the right."""
    if not hashes:
        return EMPTY_ROOT
    value = hashes[-1]
    for left in reversed(hashes[:-1]):
        value = node_hash(left, value)
    return value


def _range_hashes(ranges: Sequence[tuple[int, int]], read: Reader) -> list[bytes]:
    plans = [subtrees(start, end) for start, end in ranges]
    found = read({node for plan in plans for node in plan})
    return [_fold([found[node] for node in plan]) for plan in plans]


def tree_hash(size: int, read: Reader) -> bytes:
    """MTH(D[size]): the root of the first ``size`` leaves."""
    if size == 0:
        return EMPTY_ROOT
    return _range_hashes([(0, size)], read)[0]


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """PATH(index, D[size]) as ranges of leaves, from the leaf's sibling up to the root's child."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return ranges[::-1]


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """PROOF(old, D[new]) of RFC 6962 section 2.1.2 as ranges of leaves, deepest first."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    ranges = []
    lo, hi, whole = 0, new, True
    m = old
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            m -= k
            lo += k
            whole = False
    if not whole:
        ranges.append((lo, hi))
    return ranges[::-1]


def inclusion_proof(index: int, size: int, read: Reader) -> list[bytes]:
    return _range_hashes(inclusion_ranges(index, size), read)


def inclusion_proofs(indexes: Collection[int], size: int, read: Reader) -> dict[int, list[bytes]]:
    """PATH(index, D[size]) for each of ``indexes``, with one ``read`` of every node they need together."""
    plans = {index: [subtrees(start, end) for start, end in inclusion_ranges(index, size)] for index in indexes}
    found = read({node for plan in plans.values() for nodes in plan for node in nodes})
    return {index: [_fold([found[node] for node in nodes]) for nodes in plan] for index, plan in plans.items()}


def consistency_proof(old: int, new: int, read: Reader) -> list[bytes]:
    return _range_hashes(consistency_ranges(old, new), read)


def memory_reader(leaves: Sequence[bytes]) -> Reader:
    """Nodes computed from a list of leaf hashes in memory (tests, small trees)."""

    def node(level: int, index: int) -> bytes:
        if level == 0:
            return leaves[index]
        return node_hash(node(level - 1, 2 * index), node(level - 1, 2 * index + 1))

    def read(nodes: Collection[Node]) -> dict[Node, bytes]:
        return {(level, index): node(level, index) for level, index in nodes}

    return read


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of already leaf-hashed entries; the empty tree hashes to SHA-256('')."""
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf)
    return tree.root()


class CompactRange:
    """The right edge of a growing tree: the complete subtrees over leaves [0, size), largest first.

    Appending a leaf merges equal subtrees as a binary counter carries, so the root of any prefix of
    the log is known after one pass over it, holding only log2(n) hashes.
    """

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.hashes = list(hashes)
        if len(self.hashes) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} edge subtrees, not {len(self.hashes)}")

    def nodes(self) -> list[Node]:
        """The (level, index) of each edge subtree, largest first."""
        return subtrees(0, self.size)

    def append(self, leaf: bytes, completed: list[tuple[int, int, bytes]] | None = None) -> None:
        """Add a leaf; each subtree it completes (the leaf itself included) goes to ``completed``."""
        index = self.size
        value = leaf
        level = 0
        if completed is not None:
            completed.append((0, index, leaf))
        # The low bits of the old size that are set are the subtrees that merge with the new leaf.
        while index >> level & 1:
            value = node_hash(self.hashes.pop(), value)
            level += 1
            if completed is not None:
                completed.append((level, index >> level, value))
        self.hashes.append(value)
        self.size += 1

    def root(self) -> bytes:
        return _fold(self.hashes)
