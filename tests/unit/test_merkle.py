"""RFC 6962 Merkle proofs, planned as ranges of complete subtrees, against the RFC's recursive definitions."""

from __future__ import annotations

from audit import merkle, verifier


def _reference_root(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k << 1 < len(hashes):
        k <<= 1
    return merkle.node_hash(_reference_root(hashes[:k]), _reference_root(hashes[k:]))


def _reference_path(index: int, hashes: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 6962 section 2.1.1, written as the RFC writes it."""
    if len(hashes) == 1:
        return []
    k = 1
    while k << 1 < len(hashes):
        k <<= 1
    if index < k:
        return [*_reference_path(index, hashes[:k]), _reference_root(hashes[k:])]
    return [*_reference_path(index - k, hashes[k:]), _reference_root(hashes[:k])]


def _reference_subproof(m: int, hashes: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 6962 section 2.1.2."""
    n = len(hashes)
    if m == n:
        return [] if whole else [_reference_root(hashes)]
    k = 1
    while k << 1 < n:
        k <<= 1
    if m <= k:
        return [*_reference_subproof(m, hashes[:k], whole), _reference_root(hashes[k:])]
    return [*_reference_subproof(m - k, hashes[k:], False), _reference_root(hashes[:k])]


def test_roots_and_proofs_match_rfc6962_for_every_size():
    for size in range(1, 34):
        leaves = [merkle.leaf_hash(bytes([i])) for i in range(size)]
        read = merkle.memory_reader(leaves)
        root = merkle.root(leaves)
        assert root == _reference_root(leaves) == merkle.tree_hash(size, read)
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, read)
            assert proof == _reference_path(index, leaves)
            assert merkle.verify_inclusion(index, size, leaves[index], proof, root)
            assert not merkle.verify_inclusion(index, size, merkle.leaf_hash(b"other"), proof, root)
        for old in range(1, size + 1):
            proof = merkle.consistency_proof(old, size, read)
            assert proof == _reference_subproof(old, leaves, True)
            assert merkle.verify_consistency(old, size, _reference_root(leaves[:old]), root, proof)


def test_the_compact_range_yields_every_complete_subtree_once():
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(13)]
    read = merkle.memory_reader(leaves)
    edge = merkle.CompactRange()
    completed: list[tuple[int, int, bytes]] = []
    for leaf in leaves:
        edge.append(leaf, completed)
    assert edge.root() == merkle.root(leaves)
    assert edge.nodes() == [(3, 0), (2, 2), (0, 12)]
    # 13 leaves, 6 pairs, 3 fours, 1 eight.
    assert sorted((level, index) for level, index, _ in completed) == sorted(
        [(0, i) for i in range(13)] + [(1, i) for i in range(6)] + [(2, i) for i in range(3)] + [(3, 0)]
    )
    assert all(read([(level, index)])[(level, index)] == value for level, index, value in completed)


def test_an_empty_tree_hashes_to_sha256_of_nothing():
    assert (
        merkle.root([])
        == merkle.EMPTY_ROOT
        == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    )


def test_many_inclusion_proofs_share_one_read_and_equal_each_proof_alone():
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(37)]
    memory = merkle.memory_reader(leaves)
    reads: list[int] = []

    def counted(nodes):
        reads.append(len(nodes))
        return memory(nodes)

    indexes = [0, 5, 6, 17, 31, 32, 36]
    together = merkle.inclusion_proofs(indexes, 37, counted)
    assert len(reads) == 1
    assert together == {i: merkle.inclusion_proof(i, 37, memory) for i in indexes}
    root = merkle.root(leaves)
    assert all(verifier.verify_inclusion(i, 37, leaves[i], together[i], root) for i in indexes)
