"""Bounded lists: a page of rows, the exact total, and where the pages either side begin."""

from __future__ import annotations

import pytest

from releases.lineage.paging import keyset_page, numbered_page
from releases.models import Commit
from tests.factories import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def commits(world: World) -> list[Commit]:
    """Seven commits, oldest first."""
    for i in range(7):
        world.commit(f"change {i}")
    return list(Commit.objects.order_by("committed_at"))


def _shas(rows: object) -> list[str]:
    return [c.sha for c in rows]  # type: ignore[attr-defined]


def test_a_numbered_page_is_clamped_to_the_pages_there_are(commits, django_assert_num_queries):
    newest_first = Commit.objects.order_by("-committed_at")
    with django_assert_num_queries(2):  # the count, then the rows
        second = numbered_page(newest_first, 2, size=3)
    assert (second.total, second.start, second.end, second.number) == (7, 4, 6, 2)
    assert _shas(second.rows) == _shas(commits[3::-1][:3])
    assert second.has_previous
    assert second.has_next
    last = numbered_page(newest_first, 99, size=3)
    assert (last.start, last.end, last.number, last.not_shown) == (7, 7, 3, 6)
    assert not last.has_next
    assert numbered_page(newest_first, 0, size=3).number == 1


def test_a_numbered_page_can_be_cut_from_its_keys(commits, django_assert_num_queries):
    newest_first = Commit.objects.order_by("-committed_at", "-pk")
    keys = newest_first.values("pk")
    with django_assert_num_queries(2):  # the keys counted, then the rows of the page's keys
        page = numbered_page(newest_first, 2, keys=keys, size=3)
    assert _shas(page.rows) == _shas(numbered_page(newest_first, 2, size=3).rows)
    assert (page.total, page.start) == (7, 4)


def test_an_empty_list_is_one_whole_page(world):
    page = numbered_page(Commit.objects.order_by("-committed_at"), 5)
    assert (page.rows, page.total, page.start, page.end, page.number) == ([], 0, 0, 0, 1)
    assert page.is_whole


def test_a_keyset_page_continues_from_the_key_of_a_row(commits, django_assert_num_queries):
    keys = ("committed_at", "id")
    rows = Commit.objects.all()
    with django_assert_num_queries(2):  # the rows, then the total with the position of the first
        newest = keyset_page(rows, keys, size=3)
    assert _shas(newest.rows) == _shas(commits[:3:-1])
    assert (newest.total, newest.start, newest.has_previous, newest.has_next) == (7, 1, False, True)
    older = keyset_page(rows, keys, before=newest.last, size=3)
    assert _shas(older.rows) == _shas(commits[3:0:-1])
    assert (older.start, older.end) == (4, 6)
    oldest = keyset_page(rows, keys, before=older.last, size=3)
    assert _shas(oldest.rows) == [commits[0].sha]
    assert (oldest.start, oldest.has_next) == (7, False)
    back = keyset_page(rows, keys, after=oldest.first, size=3)
    assert _shas(back.rows) == _shas(older.rows)
    assert back.start == 4


def test_a_key_past_either_end_shows_the_page_at_that_end(commits, django_assert_num_queries):
    keys = ("committed_at", "id")
    newest, oldest = commits[-1], commits[0]
    with django_assert_num_queries(3):  # nothing older, so the oldest rows, then the counts
        page = keyset_page(Commit.objects.all(), keys, before=(oldest.committed_at, oldest.pk), size=3)
    assert _shas(page.rows) == _shas(commits[2::-1])
    assert (page.start, page.end) == (5, 7)
    page = keyset_page(Commit.objects.all(), keys, after=(newest.committed_at, newest.pk), size=3)
    assert page.start == 1
    assert page.rows[0].sha == newest.sha


def test_a_list_that_fits_one_page_is_read_the_few_way(commits, django_assert_num_queries):
    # ``few`` stands for the same rows gathered and then sorted; a different order here shows which was read.
    walked = Commit.objects.order_by("-committed_at")
    few = Commit.objects.order_by("committed_at")
    with django_assert_num_queries(2):
        whole = numbered_page(walked, 1, few=few, size=7)
    assert _shas(whole.rows) == _shas(commits)
    assert (whole.total, whole.start, whole.end) == (7, 1, 7)
    more_than_a_page = numbered_page(walked, 1, few=few, size=6)
    assert _shas(more_than_a_page.rows) == _shas(commits[::-1][:6])
