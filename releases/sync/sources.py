"""Running the sync of a source now, in this process: what the command and the task call."""

from __future__ import annotations

from django.db.models import Q

from releases.errors import InvalidInput, NotFound
from releases.models import SyncState
from releases.sync import git, mlflow
from releases.sync.state import SourceBusy, SourceUnavailable, SyncResult, record_failure


def state_named(name: str) -> SyncState:
    """The sync state of the Git repository or MLflow server called ``name``."""
    matches = list(
        SyncState.objects.filter(Q(repository__name=name) | Q(server__name=name)).select_related("repository", "server")
    )
    if not matches:
        raise NotFound(f"no Git repository or MLflow server named {name!r}")
    if len(matches) > 1:
        raise InvalidInput(f"{name!r} names both a Git repository and an MLflow server")
    return matches[0]


def sync_state(state: SyncState, *, full: bool = False, queued: bool = False, holder: str = "") -> SyncResult:
    """Run one sync of the source now, in this process; a failure is recorded on the source and re-raised.

    ``queued``: an MLflow server's sync serving only its waiting webhook deliveries. ``holder`` names the
    Celery task running it, whose own earlier delivery's lease it may take over."""
    try:
        if state.kind == SyncState.Kind.GIT:
            assert state.repository is not None
            return git.sync_repository(state.repository, holder=holder)
        assert state.server is not None
        return mlflow.sync_server(state.server, full=full, queued=queued, holder=holder)
    except SourceBusy:
        raise
    except SourceUnavailable as exc:
        record_failure(state, str(exc))
        raise
    except Exception as exc:
        record_failure(state, f"the sync stopped on an unexpected error ({type(exc).__name__}: {exc}); it will retry")
        raise
