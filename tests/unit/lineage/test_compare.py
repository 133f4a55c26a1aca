"""Comparing two releases: the commits between them."""

from __future__ import annotations

from releases import lineage, services
from tests.factories import sha_of


def test_compare_lists_the_newest_commits_between_two_releases(world, ci_account):

    shas = [sha_of(f"linear {i}") for i in range(120)]
    services.record_commits(
        world.repo,
        [
            services.CommitData(
                sha=sha,
                message=f"change {i}",
                committed_at=world.tick(),
                parents=(shas[i - 1],) if i else (),
            )
            for i, sha in enumerate(shas)
        ],
    )
    for number, sha in ((41, shas[0]), (42, shas[-1])):
        mv = world.model_version(f"churn-model/{number}")
        services.create_release(name=f"churn-v{number}", model_version=mv.key, commit=sha, by=ci_account)
    comparison = lineage.compare("churn-v41", "churn-v42")
    assert len(comparison.commits) == lineage.COMMITS_SHOWN
    assert comparison.commits[0].sha == shas[-1]
    assert comparison.commits_note == f"Showing the newest {lineage.COMMITS_SHOWN} of 119 commits."
