"""Adding sources and syncing them by name: what the commands, tasks and the sync page call."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from audit import log
from audit.log import Actor
from releases import services
from releases.errors import InvalidInput, NotFound
from releases.models import GitRepository, SyncState, TrackingServer
from releases.sync import git, mlflow
from releases.sync.state import (
    SourceBusy,
    SourceUnavailable,
    SyncResult,
    record_failure,
    state_for_repository,
    state_for_server,
)

MIN_INTERVAL_SECONDS = 10


def add_git_repository(
    *, name: str, url: str, commit_url_template: str = "", interval_seconds: int | None = None, by: Actor
) -> SyncState:
    if not url.strip():
        raise InvalidInput("a repository needs a clone URL or a local path")
    _check_interval(interval_seconds)
    with transaction.atomic():
        repository = services.add_repository(name=name, url=url.strip(), commit_url_template=commit_url_template, by=by)
        return _with_interval(state_for_repository(repository), interval_seconds, by=by)


def add_mlflow_server(
    *, name: str, tracking_uri: str, ui_url: str = "", interval_seconds: int | None = None, by: Actor
) -> SyncState:
    if not tracking_uri.strip():
        raise InvalidInput("a tracking server needs a tracking URI (http://host:5000, file:///path, ...)")
    _check_interval(interval_seconds)
    with transaction.atomic():
        server = services.add_tracking_server(name=name, tracking_uri=tracking_uri.strip(), ui_url=ui_url, by=by)
        return _with_interval(state_for_server(server), interval_seconds, by=by)


def _with_interval(state: SyncState, seconds: int | None, *, by: Actor) -> SyncState:
    return state if seconds is None else set_interval(state, seconds=seconds, by=by)


def _check_interval(seconds: int | None) -> None:
    if seconds is not None and seconds < MIN_INTERVAL_SECONDS:
        raise InvalidInput(f"the sync interval must be at least {MIN_INTERVAL_SECONDS} seconds, not {seconds}")


def set_interval(state: SyncState, *, seconds: int, by: Actor) -> SyncState:
    """Change how often Celery beat syncs a source."""
    _check_interval(seconds)
    with transaction.atomic():
        locked = SyncState.objects.select_for_update().get(pk=state.pk)
        if locked.interval_seconds == seconds:
            return locked
        old = locked.interval_seconds
        locked.interval_seconds = seconds
        locked.save(update_fields=["interval_seconds"])
        log.record(
            "sync.interval_changed",
            actor=by,
            object_type=f"{state.kind}_source",
            object_key=state.source_name,
            old={"interval_seconds": old},
            new={"interval_seconds": seconds},
        )
    return locked


def all_states() -> list[SyncState]:
    """A sync state for every configured source (created on first look), Git first."""
    for repository in GitRepository.objects.filter(sync_state__isnull=True):
        state_for_repository(repository)
    for server in TrackingServer.objects.filter(sync_state__isnull=True):
        state_for_server(server)
    return list(SyncState.objects.select_related("repository", "server").order_by("kind", "id"))


def state_named(name: str) -> SyncState:
    all_states()
    matches = list(
        SyncState.objects.filter(Q(repository__name=name) | Q(server__name=name)).select_related("repository", "server")
    )
    if not matches:
        raise NotFound(f"no Git repository or MLflow server named {name!r}")
    if len(matches) > 1:
        raise InvalidInput(f"{name!r} names both a Git repository and an MLflow server")
    return matches[0]


def sync_state(
    state: SyncState, *, full: bool = False, model_name: str = "", run_ids: tuple[str, ...] = ()
) -> SyncResult:
    """Run one sync of the source now, in this process; a failure is recorded on the source and re-raised."""
    try:
        if state.kind == SyncState.Kind.GIT:
            assert state.repository is not None
            return git.sync_repository(state.repository)
        assert state.server is not None
        return mlflow.sync_server(state.server, full=full, model_name=model_name, run_ids=run_ids)
    except SourceBusy:
        raise
    except SourceUnavailable as exc:
        record_failure(state, str(exc))
        raise
    except Exception as exc:
        record_failure(state, f"the sync stopped on an unexpected error ({type(exc).__name__}: {exc}); it will retry")
        raise


def request_sync(state: SyncState, *, by: Actor, full: bool = False) -> None:
    """Someone pressed "sync now": record who, then enqueue the sync once that is committed."""
    from releases.tasks import sync_source

    with transaction.atomic():
        log.record(
            "sync.requested",
            actor=by,
            object_type=f"{state.kind}_source",
            object_key=state.source_name,
            new={"full": full},
        )
        transaction.on_commit(lambda: sync_source.delay(state.pk, full=full))
