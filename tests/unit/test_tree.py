"""The stored Merkle tree: extended when checkpoints are issued, proofs read in one query at any size."""

from __future__ import annotations

import pytest
from django.db import transaction

from audit import log, merkle, tree, vocabulary
from audit.models import AuditEvent, TreeNode
from tests.conftest import insider_cursor
from tests.factories import SYSTEM

vocabulary.register("test.tree", "An event written by the stored tree tests.")


def _events(count: int) -> None:
    with transaction.atomic():
        log.record_many([log.PendingEvent("test.tree", "thing", str(i)) for i in range(count)], actor=SYSTEM)


def _leaves() -> list[bytes]:
    hashes = AuditEvent.objects.order_by("seq").values_list("hash", flat=True)
    return [merkle.leaf_hash(bytes.fromhex(h)) for h in hashes]


def _extend(size: int) -> None:
    with transaction.atomic():
        tree.extend(size)


@pytest.mark.django_db
def test_extending_in_steps_stores_every_complete_subtree_once():
    _events(21)
    for size in (0, 5, 8, 8, 21):
        _extend(size)
        assert tree.stored_size() == size
    # 21 leaves: 21 + 10 pairs + 5 fours + 2 eights + 1 sixteen.
    assert TreeNode.objects.count() == 21 + 10 + 5 + 2 + 1
    leaves = _leaves()
    read = merkle.memory_reader(leaves)
    for level, index, value in TreeNode.objects.values_list("level", "index", "hash"):
        assert bytes(value) == read([(level, index)])[(level, index)]


@pytest.mark.django_db
def test_roots_and_proofs_from_stored_hashes_equal_the_recomputed_ones():
    _events(37)
    _extend(37)
    leaves = _leaves()
    read = merkle.memory_reader(leaves)
    for size in (1, 2, 3, 16, 17, 36, 37):
        assert tree.root(size) == merkle.root(leaves[:size])
        for index in (0, size // 2, size - 1):
            assert tree.inclusion_proof(index, size) == merkle.inclusion_proof(index, size, read)
        for old in (1, size // 2 or 1, size):
            assert tree.consistency_proof(old, size) == merkle.consistency_proof(old, size, read)


@pytest.mark.django_db
def test_a_proof_is_one_read_of_stored_hashes_whatever_the_size(django_assert_num_queries):
    _events(300)
    _extend(300)
    # Every hash the proof needs, in one query.
    with django_assert_num_queries(1):
        proof = tree.inclusion_proof(123, 300)
    assert len(proof) == 9
    with django_assert_num_queries(1):
        tree.consistency_proof(100, 300)


@pytest.mark.django_db
def test_proofs_beyond_the_stored_tree_are_refused():
    _events(4)
    _extend(3)
    with pytest.raises(tree.TreeNotStored, match="the stored tree does not reach that far"):
        tree.inclusion_proof(0, 4)
    with pytest.raises(tree.TreeNotStored):
        tree.consistency_proof(2, 4)


@pytest.mark.django_db(transaction=True)
def test_the_tree_is_not_extended_over_a_broken_chain():
    _events(6)
    _extend(3)
    with insider_cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET actor = 'mallory' WHERE seq = 5")
    with pytest.raises(log.LogBroken, match="event #5 was changed after it was written"):
        _extend(6)
    assert tree.stored_size() == 3


@pytest.mark.django_db(transaction=True)
def test_tree_extension_runs_inside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        tree.extend(1)
