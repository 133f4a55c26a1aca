"""Impact: what a dataset version, a commit or a run reaches downstream, live now or ever."""

from __future__ import annotations

from releases import lineage
from tests.plans import plans_while_generic_plans_are_preferred


def test_impact_of_a_dataset_version_reaches_every_downstream_link(story, world):
    staging = world.endpoint("churn-staging", "staging")
    version = story["v42"].model_version.run.dataset_inputs.get().dataset_version
    impact = lineage.impact_of_dataset_version(version)
    assert [r.name for r in impact.runs] == ["churn-model-42"]
    assert [m.key for m in impact.model_versions] == ["churn-model/42"]
    assert [r.name for r in impact.releases] == ["churn-v42"]
    assert [e.name for e in impact.live_endpoints] == ["churn-scoring"]
    assert [e.name for e in impact.endpoints_ever] == ["churn-scoring"]
    assert staging not in impact.endpoints_ever


def test_impact_of_an_older_dataset_lists_endpoints_ever_but_not_live(story):
    version = story["v40"].model_version.run.dataset_inputs.get().dataset_version
    impact = lineage.impact_of_dataset_version(version)
    assert [r.name for r in impact.releases] == ["churn-v40"]
    assert not impact.live_endpoints.exists()
    assert [e.name for e in impact.endpoints_ever] == ["churn-scoring"]


def test_impact_of_a_commit_and_of_a_run(story):
    run = story["v41"].model_version.run
    commit_impact = lineage.impact_of_commit(run.commit)
    assert [r.name for r in commit_impact.releases] == ["churn-v41"]
    run_impact = lineage.impact_of_run(run)
    assert [m.key for m in run_impact.model_versions] == ["churn-model/41"]
    assert not run_impact.live_endpoints.exists()


def test_postgres_plans_each_impact_list_for_the_version_it_is_about(postgres, story):
    """A dataset version one run used and one a hundred thousand did need different plans: the impact lists are
    planned for their version even where PostgreSQL would keep one generic plan for any."""
    version = story["v42"].model_version.run.dataset_inputs.get().dataset_version

    planned = plans_while_generic_plans_are_preferred(
        lambda: lineage.impact_of_dataset_version(version).pages(lineage.ImpactPageNumbers()),
        times=8,
        like="%releases_rundatasetinput%",
    )

    assert planned, "the impact lists' statements are prepared, as every statement run often is"
    assert all(generic == 0 for generic, _ in planned.values()), planned
