"""The log's Merkle tree, stored as the hashes of its complete subtrees (``TreeNode``).

The tree is extended when a checkpoint is issued: the new events are read once, their chain checked,
and every subtree they complete is stored. A root or a proof at any size then needs at most a few
hundred stored hashes, read in one query, instead of a pass over every event.
"""

from __future__ import annotations

from collections.abc import Collection

from django.db import connection, transaction

from audit import log, merkle, pgcopy
from audit.merkle import Node
from audit.models import TreeNode

# Proofs whose nodes are read in one query: about 20 nodes each, so a few thousand parameters a query.
READ_BATCH = 100
# Arbitrary constant naming the PostgreSQL advisory lock that serialises extending the tree.
_EXTEND_LOCK_KEY = 7_342_002


class TreeNotStored(LookupError):
    """A proof or root was asked for beyond what the stored tree covers."""


def read(nodes: Collection[Node]) -> dict[Node, bytes]:
    """The stored hashes of these subtrees, in one query; every one must be stored."""
    if not nodes:
        return {}
    wanted = sorted(set(nodes))
    quote = connection.ops.quote_name
    # Plain SQL with row values: the ORM spends longer compiling twenty OR-ed (level, index) pairs
    # than the database spends finding them. Only quoted names and placeholders go into the text.
    sql = (
        f"SELECT {quote('level')}, {quote('index')}, {quote('hash')} FROM {quote(TreeNode._meta.db_table)} "  # noqa: S608
        f"WHERE ({quote('level')}, {quote('index')}) IN ({', '.join(['(%s, %s)'] * len(wanted))})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for node in wanted for value in node])
        found = {(level, index): bytes(value) for level, index, value in cursor.fetchall()}
    missing = set(wanted) - found.keys()
    if missing:
        level, index = min(missing)
        raise TreeNotStored(
            f"the tree hash of subtree {level}/{index} is not stored ({len(missing)} missing): "
            "the stored tree does not reach that far; issue a checkpoint first"
        )
    return found


def stored_size() -> int:
    """How many leaves the stored tree covers: every complete subtree within them is stored."""
    last = TreeNode.objects.filter(level=0).order_by("-index").values_list("index", flat=True).first()
    return 0 if last is None else last + 1


# A root or proof beyond the stored tree needs a subtree over its last leaves, which is then missing:
# ``read`` refuses it, so none of these spends a query on the stored size first.
def root(size: int) -> bytes:
    return merkle.tree_hash(size, read)


def inclusion_proof(index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]): sibling hashes from the leaf up, for the event with seq ``index + 1``."""
    return merkle.inclusion_proof(index, size, read)


def inclusion_proofs(indexes: Collection[int], size: int) -> dict[int, list[bytes]]:
    """PATH(index, D[size]) for many leaves, their stored nodes read in batches of ``READ_BATCH`` proofs."""
    ordered = sorted(set(indexes))
    proofs: dict[int, list[bytes]] = {}
    for start in range(0, len(ordered), READ_BATCH):
        proofs |= merkle.inclusion_proofs(ordered[start : start + READ_BATCH], size, read)
    return proofs


def consistency_proof(old: int, new: int) -> list[bytes]:
    """PROOF(old, D[new]): the hashes showing the tree at ``old`` is a prefix of the tree at ``new``."""
    return merkle.consistency_proof(old, new, read)


def edge(size: int) -> merkle.CompactRange:
    """The right edge of the stored tree at ``size``, to continue appending leaves from there."""
    nodes = merkle.subtrees(0, size)
    found = read(nodes)
    return merkle.CompactRange(size, [found[node] for node in nodes])


def extend(size: int) -> None:
    """Store every subtree over the first ``size`` events not stored yet, checking the new events first.

    Refuses (``log.LogBroken``) when an event to be added is missing, changed or not linked to the one
    before: a tree, and so a checkpoint, is never built over a log that is already broken.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("the tree is extended inside the transaction that signs the checkpoint")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_EXTEND_LOCK_KEY])
    start = stored_size()
    if start >= size:
        return
    tree = edge(start)
    head = log.head_hash(start)
    if start and merkle.leaf_hash(bytes.fromhex(head)) != read([(0, start - 1)])[(0, start - 1)]:
        # Events already in the tree were rewritten, hashes recomputed: never sign on top of that.
        raise log.LogBroken(start, f"event #{start} is not the event already signed: the log was rewritten up to it")
    completed: list[tuple[int, int, bytes]] = []
    seq = start
    for digest in log.walk_chain(after=start, head=head, upto=size):
        tree.append(merkle.leaf_hash(bytes.fromhex(digest)), completed)
        seq += 1
    if seq < size:
        raise log.LogBroken(seq + 1, f"event #{seq + 1} is missing")
    _store(completed)


def _store(completed: list[tuple[int, int, bytes]]) -> None:
    if connection.vendor == "postgresql":
        pgcopy.copy_rows(TreeNode, ("level", "index", "hash"), completed)
        return
    # SQLite: a second process may have stored the same subtrees a moment ago; they hash the same.
    TreeNode.objects.bulk_create(
        (TreeNode(level=level, index=index, hash=value) for level, index, value in completed),
        batch_size=1000,
        ignore_conflicts=True,
    )
