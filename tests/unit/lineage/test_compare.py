"""Comparing two releases: the commits between them."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User

from releases import lineage, services
from tests.factories import World, sha_of


def _history(world: World, parents: dict[str, Sequence[str]]) -> dict[str, str]:
    """Commits named by label, in the order given, each with the parents named; returns label -> sha."""
    shas = {label: sha_of(label) for label in parents}
    services.record_commits(
        world.repo,
        [
            services.CommitData(
                sha=shas[label],
                message=f"change {label}",
                committed_at=world.tick(),
                parents=tuple(shas[parent] for parent in parents[label]),
            )
            for label in parents
        ],
    )
    return shas


def _releases(world: World, by: User, base: str, head: str) -> None:
    for number, sha in ((41, base), (42, head)):
        mv = world.model_version(f"churn-model/{number}")
        services.create_release(name=f"churn-v{number}", model_version=mv.key, commit=sha, by=by)


def test_compare_pages_the_commits_between_two_releases_newest_first(world, ci_account):
    labels = [f"linear {i}" for i in range(120)]
    shas = _history(world, {label: labels[i - 1 : i] for i, label in enumerate(labels)})
    _releases(world, ci_account, shas[labels[0]], shas[labels[-1]])

    first = lineage.compare("churn-v41", "churn-v42")
    assert first.commits_note == ""
    assert (first.commits.total, first.commits.start, len(first.commits.rows)) == (119, 1, lineage.PAGE_SIZE)
    assert first.commits.rows[0].sha == shas[labels[-1]]
    last = lineage.compare("churn-v41", "churn-v42", commits_page=3)
    assert (last.commits.start, last.commits.end, last.commits.number) == (101, 119, 3)
    assert last.commits.rows[-1].sha == shas[labels[1]]  # the base itself is not between
    assert not last.commits.has_next
    assert lineage.compare("churn-v41", "churn-v42", commits_page=99).commits.number == 3


def test_a_merge_brings_each_commit_between_once(world, ci_account):
    shas = _history(
        world, {"base": [], "left": ["base"], "right": ["base"], "merge": ["left", "right"], "head": ["merge"]}
    )
    _releases(world, ci_account, shas["base"], shas["head"])

    comparison = lineage.compare("churn-v41", "churn-v42")

    assert comparison.commits_note == ""
    assert comparison.commits.total == 4
    assert {c.sha for c in comparison.commits.rows} == {shas[label] for label in ("left", "right", "merge", "head")}


def test_commits_made_before_the_older_release_are_not_between(world, ci_account):
    shas = _history(world, {"old": [], "base": ["old"], "side": ["old"], "head": ["base", "side"]})
    _releases(world, ci_account, shas["base"], shas["head"])

    comparison = lineage.compare("churn-v41", "churn-v42")

    # "side" branched before the base and was made after it: the walk finds it; "old" is outside the window.
    assert {c.sha for c in comparison.commits.rows} == {shas["side"], shas["head"]}


def test_without_parent_links_the_commits_made_between_are_listed_by_time(world, ci_account):
    shas = _history(world, {"base": [], "middle": [], "head": []})
    _releases(world, ci_account, shas["base"], shas["head"])

    comparison = lineage.compare("churn-v41", "churn-v42")

    assert comparison.commits_note == "Parent links are not synced; showing commits by commit time."
    assert [c.sha for c in comparison.commits.rows] == [shas["head"], shas["middle"]]
