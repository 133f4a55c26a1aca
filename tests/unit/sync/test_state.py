"""The per-source lease: one holder at a time, and a task handed out again takes over its own dead delivery's."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from releases.models import SyncState
from releases.sync.state import SourceBusy, leased
from tests.factories import World


@pytest.fixture
def state(world: World) -> SyncState:
    return SyncState.objects.get(server=world.server)


def _held_by(state: SyncState, token: str, *, for_seconds: int) -> None:
    """What a delivery killed mid-sync leaves: its lease, still running for a while."""
    SyncState.objects.filter(pk=state.pk).update(
        lease_token=token, lease_until=timezone.now() + datetime.timedelta(seconds=for_seconds)
    )


def test_a_source_held_by_another_task_is_busy_until_the_lease_expires(state: SyncState) -> None:
    _held_by(state, "task-1", for_seconds=600)
    with pytest.raises(SourceBusy), leased(state, holder="task-2"):
        pass
    with pytest.raises(SourceBusy), leased(state):
        pass

    _held_by(state, "task-1", for_seconds=-1)
    with leased(state, holder="task-2") as lease:
        assert lease.token == "task-2"


def test_a_task_handed_out_again_takes_over_the_lease_of_its_dead_delivery(state: SyncState) -> None:
    _held_by(state, "task-1", for_seconds=600)

    with leased(state, holder="task-1") as lease:
        state.refresh_from_db()
        assert (lease.token, state.lease_token, state.progress_done) == ("task-1", "task-1", 0)
        assert state.lease_until is not None
    state.refresh_from_db()
    assert (state.lease_token, state.lease_until, state.running_since) == ("", None, None)


def test_a_sync_run_outside_a_task_never_matches_an_empty_token(state: SyncState) -> None:
    _held_by(state, "", for_seconds=600)
    with pytest.raises(SourceBusy), leased(state):
        pass
