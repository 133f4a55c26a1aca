"""Git through the service: a tag that moves is flagged and audited, never rewritten."""

from __future__ import annotations

from releases import services
from tests.factories import SYSTEM
from tests.unit.conftest import last_event


def test_tag_move_is_flagged_and_audited_not_rewritten(world):
    first, second = world.commit("one"), world.commit("two")
    world.tag("model-churn-v42", first)
    tag, outcome = services.record_tag(world.repo, name="model-churn-v42", sha=second.sha, by=SYSTEM)
    assert outcome == "moved"
    tag.refresh_from_db()
    assert tag.commit_id == first.pk
    assert tag.moved_to_sha == second.sha
    event = last_event("git_tag.moved")
    assert event.old["sha"] == first.sha
    assert event.new["moved_to"] == second.sha
    assert services.record_tag(world.repo, name="model-churn-v42", sha=second.sha, by=SYSTEM)[1] == "unchanged"
