from __future__ import annotations

import pytest

from releases import lineage
from tests.factories import World


@pytest.mark.django_db
def test_full_chain_is_complete_and_live(ci_account, lead, release_manager):
    world = World.create()
    release = world.full_release(42, by=ci_account, approver=lead)
    endpoint = world.endpoint()
    world.deploy(endpoint, release, by=release_manager)
    trace = lineage.trace("churn-v42")
    assert trace.completeness == (6, 6)
    assert release.state == "approved"
    [status] = lineage.endpoint_statuses()
    assert status.live.release.name == "churn-v42"
