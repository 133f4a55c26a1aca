"""Bounded lists: one page of a list with its exact total, for every list on a page that grows with the data.

A list whose order is an indexed, unique key (an endpoint's deployments, a model's versions) pages by
keyset: a link names the row to continue from, so the hundredth page costs what the first does. Any
other list (everything downstream of a dataset version, across several tables) pages by number with
LIMIT/OFFSET; the number is clamped to the last page, so no request reads further than the list goes.
Either way a page reads two queries: its rows and its counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import Count, Model, Q, QuerySet

PAGE_SIZE = 50

M = TypeVar("M", bound=Model)
Row = TypeVar("Row", bound=Model, covariant=True)
Key = tuple[Any, ...]


@dataclass(frozen=True)
class Page(Generic[Row]):
    """``rows`` of a list of ``total``, the first at position ``start`` (from 1; 0 when there are none).

    A numbered page knows its ``number``; a keyset page knows the key of its first row (``first``: the
    page before ends there) and of its last (``last``: the page after starts there).
    """

    rows: Sequence[Row]
    total: int
    start: int
    number: int | None = None
    first: Key | None = None
    last: Key | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.rows) - 1 if self.rows else 0

    @property
    def has_previous(self) -> bool:
        return self.start > 1

    @property
    def has_next(self) -> bool:
        return self.end < self.total

    @property
    def not_shown(self) -> int:
        """Rows of the list on other pages."""
        return self.total - len(self.rows)

    @property
    def is_whole(self) -> bool:
        """Every row of the list is on this page (no pager needed)."""
        return self.start <= 1 and self.end >= self.total


def numbered_page(
    rows: QuerySet[M],
    number: int,
    *,
    count: QuerySet[Any] | int | None = None,
    keys: QuerySet[Any] | None = None,
    few: QuerySet[M] | None = None,
    size: int = PAGE_SIZE,
) -> Page[M]:
    """Page ``number`` of the ordered ``rows`` (clamped from 1 to the last page) and the exact total (two
    queries). ``count`` is the total when the caller has it, or the same rows counted more cheaply.

    ``keys`` are the rows' primary keys in the same order, from an index that holds them in that order
    (a dataset version's inputs, by run): the page is cut from them, then its rows read by key, so the
    database walks the list's own entries instead of the whole table's. They are counted too.

    ``few`` are the same rows ordered so that the database gathers them first and then sorts them
    (``prepared.sorted_not_walked``), read instead when the whole list fits on one page: walking an index in
    the list's order and testing each row for a page it never fills reads the whole table.
    """
    if keys is not None and count is None:
        count = keys
    total = count if isinstance(count, int) else (rows if count is None else count).count()
    if few is not None and total <= size:
        rows = few
    last_page = max(1, -(-total // size))
    number = min(max(number, 1), last_page)
    offset = (number - 1) * size
    found = list(rows.filter(pk__in=keys[offset : offset + size]) if keys is not None else rows[offset : offset + size])
    return Page(found, total, offset + 1 if found else 0, number=number)


def _beyond(keys: Sequence[str], values: Key, lookup: str) -> Q:
    """Rows after ``values`` in the order of ``keys`` taken together: ``lookup`` "gt" for newer, "lt" for older."""
    condition = Q()
    for index, key in enumerate(keys):
        equal = dict(zip(keys[:index], values[:index], strict=True))
        term = Q(**equal, **{f"{key}__{lookup}": values[index]})
        condition = term if index == 0 else condition | term
    return condition


def key_of(row: Model, keys: Sequence[str]) -> Key:
    return tuple(getattr(row, key) for key in keys)


def keyset_page(
    rows: QuerySet[M],
    keys: Sequence[str],
    *,
    before: Key | None = None,
    after: Key | None = None,
    size: int = PAGE_SIZE,
) -> Page[M]:
    """The ``size`` rows of ``rows`` newest first in the order of ``keys`` (each descending, together unique):
    those just older than ``before``, or just newer than ``after``, or the newest; with the exact total and
    the position of the first (two queries).

    A key past either end of the list (an old link, or a made-up one) shows the page at that end, as a page
    number past the last shows the last page; that costs one query more.
    """
    newest_first = [f"-{key}" for key in keys]
    if after is not None:
        found = list(rows.filter(_beyond(keys, after, "gt")).order_by(*keys)[:size])[::-1]
        if not found:
            found = list(rows.order_by(*newest_first)[:size])
    elif before is not None:
        found = list(rows.filter(_beyond(keys, before, "lt")).order_by(*newest_first)[:size])
        if not found:
            found = list(rows.order_by(*keys)[:size])[::-1]
    else:
        found = list(rows.order_by(*newest_first)[:size])
    if not found:
        return Page(found, rows.count(), 0)
    if after is None and before is None:
        return newest_page(found, rows.count(), keys)
    first, last = key_of(found[0], keys), key_of(found[-1], keys)
    counts = rows.order_by().aggregate(total=Count("pk"), newer=Count("pk", filter=_beyond(keys, first, "gt")))
    return Page(found, counts["total"], counts["newer"] + 1, first=first, last=last)


def newest_page(found: Sequence[M], total: int, keys: Sequence[str]) -> Page[M]:
    """The first page of ``keyset_page``: ``found``, the newest rows of a list of ``total``, newest first."""
    if not found:
        return Page(found, total, 0)
    return Page(found, total, 1, first=key_of(found[0], keys), last=key_of(found[-1], keys))
