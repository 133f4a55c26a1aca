"""Writes for the sources the sync reads: adding Git repositories and MLflow servers, their sync
interval, requests to sync one now, and a source failing for too long (and syncing again).

A source's sync state is created with the source, in the same transaction, whatever door adds it
(admin, command, API, demo), so no read ever has to create one.

A source's credential is stored as where to read it (an environment variable's name, a file's path),
never as the secret; the audit trail records which one is set, in the same words the admin shows.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from audit import log
from audit.log import Actor, SystemActor
from audit.vocabulary import object_ref
from releases import dispatch
from releases.errors import InvalidInput
from releases.models import GitRepository, SyncRequest, SyncState, TrackingServer
from releases.models.code import name_validator
from releases.models.credentials import GitCredentials, MlflowCredentials, has_password
from releases.roles import ML_LEADS, ON_CALL, require_admin, require_role
from releases.services import refusals
from releases.services.validation import check
from releases.web_links import is_web_url, web_url_problem

MIN_INTERVAL_SECONDS = 10


@refusals.audited("git_repository.add_refused", lambda **kw: ("git_repository", kw["name"]))
def add_git_repository(
    *,
    name: str,
    url: str,
    commit_url_template: str = "",
    interval_seconds: int | None = None,
    credentials: GitCredentials | None = None,
    by: Actor,
) -> SyncState:
    """Register a Git repository to sync from, with its sync state (idempotent on name and URL).

    ``credentials`` (where to read them) are set on a new repository, or replace an existing one's;
    None leaves an existing repository's as they are.
    """
    require_role(by, ML_LEADS, to="add a Git repository")
    check(name_validator, name, "repository name")
    commit_url_template = commit_url_template.strip()
    if commit_url_template:
        _check_web_url(commit_url_template, "the commit URL template")
        if "{sha}" not in commit_url_template:
            raise InvalidInput(
                "the commit URL template must contain {sha}, e.g. https://git.example.com/x/commit/{sha}"
            )
    url = url.strip()
    if not url:
        raise InvalidInput("a repository needs a clone URL or a local path")
    _check_no_password(url, "the clone URL")
    if credentials is not None:
        credentials.check(url)
    _check_interval(interval_seconds)
    with transaction.atomic():
        repository, created = GitRepository.objects.get_or_create(
            name=name, defaults={"url": url, "commit_url_template": commit_url_template, **_fields(credentials)}
        )
        if not created and repository.url != url:
            raise InvalidInput(f"repository {name} already exists with URL {repository.url}")
        if created:
            log.record(
                "git_repository.added",
                actor=by,
                subject=repository,
                new={"url": url, "commit_url_template": commit_url_template, **_credential_note(repository)},
            )
        elif credentials is not None:
            set_git_credentials(repository, credentials=credentials, by=by)
        state, _ = SyncState.objects.get_or_create(
            repository=repository, defaults={"kind": SyncState.Kind.GIT, "interval_seconds": _interval(None)}
        )
        return _with_interval(state, interval_seconds, by=by)


@refusals.audited("tracking_server.add_refused", lambda **kw: ("tracking_server", kw["name"]))
def add_mlflow_server(
    *,
    name: str,
    tracking_uri: str,
    ui_url: str = "",
    interval_seconds: int | None = None,
    credentials: MlflowCredentials | None = None,
    by: Actor,
) -> SyncState:
    """Register an MLflow tracking server to sync from, with its sync state (idempotent on name and URI).

    ``credentials`` (where to read them) are set on a new server, or replace an existing one's; None
    leaves an existing server's as they are.
    """
    require_role(by, ML_LEADS, to="add an MLflow tracking server")
    check(name_validator, name, "tracking server name")
    ui_url = ui_url.strip()
    if ui_url:
        _check_web_url(ui_url, "the MLflow UI URL")
    tracking_uri = tracking_uri.strip()
    if not tracking_uri:
        raise InvalidInput("a tracking server needs a tracking URI (http://host:5000, file:///path, ...)")
    _check_no_password(tracking_uri, "the tracking URI")
    if credentials is not None:
        credentials.check(tracking_uri)
    _check_interval(interval_seconds)
    with transaction.atomic():
        server, created = TrackingServer.objects.get_or_create(
            # Without a UI address the tracking URI serves, but only when it is a web address itself
            # (a file:// or databricks:// store has no page to link to).
            name=name,
            defaults={
                "tracking_uri": tracking_uri,
                "ui_url": ui_url or (tracking_uri if is_web_url(tracking_uri) else ""),
                **_fields(credentials),
            },
        )
        if not created and server.tracking_uri != tracking_uri:
            raise InvalidInput(f"tracking server {name} already exists with URI {server.tracking_uri}")
        if created:
            log.record(
                "tracking_server.added",
                actor=by,
                subject=server,
                new={"tracking_uri": tracking_uri, **_credential_note(server)},
            )
        elif credentials is not None:
            set_mlflow_credentials(server, credentials=credentials, by=by)
        state, _ = SyncState.objects.get_or_create(
            server=server, defaults={"kind": SyncState.Kind.MLFLOW, "interval_seconds": _interval(None)}
        )
        return _with_interval(state, interval_seconds, by=by)


@refusals.audited("git_repository.credentials_refused", lambda repository, **_: object_ref(repository))
def set_git_credentials(repository: GitRepository, *, credentials: GitCredentials, by: Actor) -> GitRepository:
    """Change where the sync reads a Git repository's credential; ``GitCredentials()`` removes it."""
    require_role(by, ML_LEADS, to="change a source's credential")
    credentials.check(repository.url)
    with transaction.atomic():
        locked = GitRepository.objects.select_for_update().get(pk=repository.pk)
        _replace_credentials(locked, locked.credentials, credentials, "git_repository.credentials_changed", by=by)
    return locked


@refusals.audited("tracking_server.credentials_refused", lambda server, **_: object_ref(server))
def set_mlflow_credentials(server: TrackingServer, *, credentials: MlflowCredentials, by: Actor) -> TrackingServer:
    """Change where the sync reads an MLflow server's credential; ``MlflowCredentials()`` removes it."""
    require_role(by, ML_LEADS, to="change a source's credential")
    credentials.check(server.tracking_uri)
    with transaction.atomic():
        locked = TrackingServer.objects.select_for_update().get(pk=server.pk)
        _replace_credentials(locked, locked.credentials, credentials, "tracking_server.credentials_changed", by=by)
    return locked


def _replace_credentials(
    source: GitRepository | TrackingServer,
    old: GitCredentials | MlflowCredentials,
    new: GitCredentials | MlflowCredentials,
    action: str,
    *,
    by: Actor,
) -> None:
    if old == new:
        return
    values = _fields(new)
    for field, value in values.items():
        setattr(source, field, value)
    source.save(update_fields=list(values))
    log.record(action, actor=by, subject=source, old={"credential": old.describe()}, new={"credential": new.describe()})


def _fields(credentials: GitCredentials | MlflowCredentials | None) -> dict[str, str]:
    return {} if credentials is None else dict(vars(credentials))


def _credential_note(source: GitRepository | TrackingServer) -> dict[str, str]:
    """What the "added" event says about the credential: which one is set, only when one is."""
    return {"credential": source.credential} if source.credential else {}


def _check_no_password(url: str, what: str) -> None:
    if has_password(url):
        # The address is stored and shown: a password in it would be a secret in clear.
        raise InvalidInput(
            f"{what} carries a password, which would be stored in clear: name where to read it instead "
            "(--token-env/--token-file, or --username with --password-env/--password-file)",
            rule="secret_in_url",
        )


def _check_web_url(url: str, what: str) -> None:
    # Pages turn these into links people click: only a web address, whatever the text claims to be.
    problem = web_url_problem(url)
    if problem:
        raise InvalidInput(
            f"{what} must be an http:// or https:// address ({problem}), not {url[:80]!r}", rule="not_a_web_url"
        )


def _interval(seconds: int | None) -> int:
    return settings.LINEAGE_SYNC_INTERVAL_SECONDS if seconds is None else seconds


def _with_interval(state: SyncState, seconds: int | None, *, by: Actor) -> SyncState:
    return state if seconds is None else set_interval(state, seconds=seconds, by=by)


def _check_interval(seconds: int | None) -> None:
    if seconds is not None and seconds < MIN_INTERVAL_SECONDS:
        raise InvalidInput(f"the sync interval must be at least {MIN_INTERVAL_SECONDS} seconds, not {seconds}")


@refusals.audited("sync.interval_refused", lambda state, **_: object_ref(state))
def set_interval(state: SyncState, *, seconds: int, by: Actor) -> SyncState:
    """Change how often Celery beat syncs a source."""
    require_role(by, ML_LEADS, to="change how often a source is synced")
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
            subject=state,
            old={"interval_seconds": old},
            new={"interval_seconds": seconds},
        )
    return locked


@refusals.audited("sync.request_refused", lambda state, **_: object_ref(state))
def request_sync(state: SyncState, *, by: Actor, full: bool = False) -> None:
    """Ask for a sync of one source now ("sync now"): recorded, then started after commit."""
    require_role(by, ML_LEADS, ON_CALL, to="start a sync")
    with transaction.atomic():
        log.record("sync.requested", actor=by, subject=state, new={"full": full})
        dispatch.after_commit(dispatch.SYNC_SOURCE, state.pk, full=full)


# How long the mark saying "a sync serving the waiting webhook deliveries is queued" lasts, at most: were that
# task lost (a broker restarted without persistence), the next delivery after this queues another.
SERVING_QUEUED_SECONDS = 60


def serving_queued_key(state_id: int) -> str:
    """The cache key marking that a sync of this source is queued to serve its waiting deliveries."""
    return f"lineage:sync:{state_id}:serving-queued"


@refusals.audited("sync.request_refused", lambda state, **_: object_ref(state))
def queue_sync_request(
    state: SyncState, *, by: Actor, delivery_id: str, event: str, model_name: str = "", run_id: str = ""
) -> SyncRequest:
    """Keep an accepted MLflow webhook delivery until a sync of its server serves it, and see that one will.

    A burst of deliveries must each be answered at once, so a delivery is one small row, not an audit event
    (each would wait on the log's append lock behind the sync it asks for) nor a task (each would find the
    source busy): one queued sync serves every delivery waiting when it starts, and the transaction that
    deletes a served batch records its one ``sync.webhooks_served`` event naming every delivery in it.
    """
    require_admin(by, to="queue a sync for a webhook delivery")
    request = SyncRequest.objects.create(
        state=state, delivery_id=delivery_id, event=event, model_name=model_name, run_id=run_id
    )
    serve_sync_requests(state.pk)
    return request


def serve_sync_requests(state_id: int) -> None:
    """Queue a sync serving the source's waiting deliveries, unless one is queued and has not started yet."""
    if cache.add(serving_queued_key(state_id), 1, timeout=SERVING_QUEUED_SECONDS):
        dispatch.after_commit(dispatch.SYNC_SOURCE, state_id, queued=True)


def serving_started(state_id: int) -> None:
    """A sync holding the source reads its waiting deliveries now: those kept from now on queue the next sync."""
    cache.delete(serving_queued_key(state_id))


def serve_what_still_waits(state_id: int) -> None:
    """A sync let go of the source: queue one more for deliveries kept after its last read of the queue.

    Such a delivery found a sync queued, or this one holding the source, and queued none of its own."""
    serving_started(state_id)
    if SyncRequest.objects.filter(state_id=state_id).exists():
        serve_sync_requests(state_id)


@refusals.audited("sync.request_refused", lambda state, *_, **__: object_ref(state))
def record_served_requests(state: SyncState, requests: list[SyncRequest], *, by: Actor) -> None:
    """A sync served these webhook deliveries: one event naming each of them, and they leave the queue."""
    require_admin(by, to="record webhook deliveries as served")
    with transaction.atomic():
        log.record(
            "sync.webhooks_served",
            actor=by,
            subject=state,
            new={
                "deliveries": [
                    {
                        "id": r.delivery_id,
                        "event": r.event,
                        "model": r.model_name,
                        "run": r.run_id,
                        "received_at": r.received_at.isoformat(),
                    }
                    for r in requests
                ]
            },
        )
        SyncRequest.objects.filter(pk__in=[r.pk for r in requests]).delete()


def _sync_actor(state: SyncState) -> SystemActor:
    return SystemActor(f"{state.kind}-sync:{state.source_name}")


def record_sync_failing(state: SyncState) -> bool:
    """The source has failed every sync for longer than LINEAGE_SYNC_ALERT_MINUTES: say so, once per incident.

    Called by the sync after each failure; True when this call recorded it. The incident ends when the
    source syncs again (``record_sync_recovered``).
    """
    now = timezone.now()
    threshold = datetime.timedelta(minutes=settings.LINEAGE_SYNC_ALERT_MINUTES)
    with transaction.atomic():
        # One conditional UPDATE claims the incident: two workers failing at once record it once.
        claimed = SyncState.objects.filter(
            pk=state.pk, failure_alerted_at__isnull=True, failing_since__lte=now - threshold
        ).update(failure_alerted_at=now)
        if not claimed:
            return False
        state.refresh_from_db()
        assert state.failing_since is not None
        log.record(
            "sync.failing",
            actor=_sync_actor(state),
            subject=state,
            new={
                "failing_since": state.failing_since.isoformat(),
                "minutes": int((now - state.failing_since).total_seconds() // 60),
                "failures_in_a_row": state.failures_in_a_row,
                "threshold_minutes": settings.LINEAGE_SYNC_ALERT_MINUTES,
            },
            reason=state.last_error,
        )
    return True


def record_sync_recovered(state: SyncState, *, failing_since: datetime.datetime | None) -> bool:
    """A source announced as failing synced again: the incident ends. True when this call recorded it."""
    now = timezone.now()
    with transaction.atomic():
        claimed = SyncState.objects.filter(pk=state.pk, failure_alerted_at__isnull=False).update(
            failure_alerted_at=None
        )
        if not claimed:
            return False
        minutes = int((now - failing_since).total_seconds() // 60) if failing_since else None
        log.record(
            "sync.recovered",
            actor=_sync_actor(state),
            subject=state,
            new={"failing_since": failing_since.isoformat() if failing_since else None, "minutes": minutes},
        )
    return True
