"""MLflow adapter: runs, registered model versions and aliases, read with the official client.

Only ``mlflow-skinny`` APIs are used (``MlflowClient``), so a worker needs no MLflow server code.
Incremental: runs started since the last sync (minus a look-back, because recent runs still get
tags and metrics) plus runs whose commit or dataset was not yet known; a full pass at most
``LINEAGE_MLFLOW_FULL_SYNC_HOURS`` apart catches late edits on old runs. A fingerprint per run
makes an unchanged run cost no write.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from audit import log
from audit.log import SystemActor
from releases import services
from releases.errors import LineageError
from releases.models import (
    Commit,
    DatasetVersion,
    Endpoint,
    ExperimentRun,
    ModelVersion,
    SyncedRun,
    SyncRequest,
    SyncState,
    TrackingServer,
)
from releases.prepared import planned_for_their_values
from releases.services import sources
from releases.sync import credentials, mapping
from releases.sync.state import Lease, SourceUnavailable, SyncResult, leased, record_success

# The client retries a failed request up to 7 times with exponential backoff (minutes in all);
# the Celery task has its own bounded retries, so the client gives up fast and says why.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")

PAGE = 1000
# Webhook deliveries served by one pass (and named in its one audit event).
SERVED_AT_ONCE = 200
T = TypeVar("T")


def client_for(server: TrackingServer) -> Any:
    """An MLflow client for this server alone, presenting the credential the server names (read now).

    The client reads MLFLOW_TRACKING_TOKEN / _USERNAME / _PASSWORD from the process environment on every
    request, so two servers with different credentials in one worker cannot share that. Each client here
    gets its own REST stores, built over host credentials of its own (``MlflowHostCreds``, the object the
    client itself builds from those variables); TLS settings still come from the worker's MLFLOW_TRACKING_*
    variables. A server that names no credential keeps the client's ordinary behaviour.
    """
    from mlflow.tracking import MlflowClient

    secrets = credentials.mlflow_secrets(server)
    client: Any = MlflowClient(tracking_uri=server.tracking_uri, registry_uri=server.tracking_uri)
    if secrets is None:
        return client
    from mlflow.store.model_registry.rest_store import RestStore as RegistryRestStore
    from mlflow.store.tracking.rest_store import RestStore
    from mlflow.tracking._model_registry.client import ModelRegistryClient
    from mlflow.tracking._tracking_service.client import TrackingServiceClient
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import MlflowHostCreds

    uri = server.tracking_uri

    def host_creds() -> Any:
        ambient = get_default_host_creds(uri)
        return MlflowHostCreds(
            uri,
            username=secrets.username or None,
            password=secrets.password or None,
            token=secrets.token or None,
            ignore_tls_verification=ambient.ignore_tls_verification,
            client_cert_path=ambient.client_cert_path,
            server_cert_path=ambient.server_cert_path,
        )

    class Tracking(TrackingServiceClient):
        store = RestStore(host_creds)

    class Registry(ModelRegistryClient):
        store = RegistryRestStore(host_creds)

    # MlflowClient has no public way to take a store; these are the two attributes its methods go through
    # (tests/integration/test_credentials.py fails if a new MLflow version moves them).
    client._tracking_client = Tracking(uri)
    client._registry_client_lazy = Registry(uri, uri)
    return client


def _client_setting(name: str) -> int:
    """The MLflow client's own setting (MLFLOW_HTTP_REQUEST_*), as the client reads it for each request."""
    import mlflow.environment_variables

    return int(getattr(mlflow.environment_variables, name).get())


def _attempts() -> int:
    return _client_setting("MLFLOW_HTTP_REQUEST_MAX_RETRIES") + 1


def _broke_mid_answer(exc: BaseException) -> bool:
    """The connection dropped after the answer began: the one failure the client does not retry itself.

    urllib3 retries what fails before an answer's headers (refused, reset, timed out, 5xx); a body cut
    short surfaces later, as requests' ChunkedEncodingError, which the MLflow client wraps unchained.
    """
    from requests.exceptions import ChunkedEncodingError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ChunkedEncodingError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _request_name(text: str) -> str:
    """``runs/search`` from the client's "API request to http://host/api/2.0/mlflow/runs/search failed ..."."""
    found = re.search(r"/api/2\.0/mlflow/([\w/-]+)", text)
    return found[1] if found else ""


def plain_error(server: TrackingServer, exc: Exception) -> str:
    """The error an on-call engineer can act on, not a stack of urllib3 wrappers."""
    status = getattr(exc, "get_http_status_code", lambda: None)()
    if status == 401:
        return str(credentials.auth_failed(server))
    if status == 403:
        return str(credentials.auth_failed(server, ": MLflow answered 403, permission denied"))
    text = str(exc)
    lowered = text.lower()
    where = f"MLflow at {server.tracking_uri}"
    request = _request_name(text) or "a request"
    tried = f"(tried {_attempts()} times)"
    if "connection refused" in lowered or "failed to establish a new connection" in lowered:
        return f"{where} is unreachable: connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return f"{where} is unreachable: the host name does not resolve"
    if answered := re.search(r"too many (\d{3}) error responses", lowered):
        return f"{where} answered {request} with HTTP {answered[1]} {tried}"
    if _broke_mid_answer(exc):
        return f"{where} dropped the connection in the middle of answering {request} {tried}"
    if "timed out" in lowered or "timeout" in lowered:
        timeout = _client_setting("MLFLOW_HTTP_REQUEST_TIMEOUT")
        return f"{where} did not answer {request} within {timeout} s {tried}"
    if "connection aborted" in lowered or "closed connection without response" in lowered:
        return f"{where} closed the connection without answering {request} {tried}"
    if "max retries exceeded" in lowered:
        return f"{where} is unreachable"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{where} answered with an error: {first[:300]}"


def call(server: TrackingServer, fn: Callable[[], T]) -> T:
    """``fn()``, one request to the server; a failure becomes SourceUnavailable with the plain reason.

    The client retries a request itself (MLFLOW_HTTP_REQUEST_MAX_RETRIES, with backoff) except when the
    connection drops in the middle of the answer; that one is retried here, as many times, the same way,
    so every failure costs the same bounded number of attempts. Every call here is safe to repeat: a search,
    or setting an alias or tag to a value.
    """
    from mlflow.exceptions import MlflowException
    from requests import RequestException

    attempts = _attempts()
    attempt = 1
    while True:
        try:
            return fn()
        except (MlflowException, RequestException, OSError) as exc:
            if attempt >= attempts or not _broke_mid_answer(exc):
                raise SourceUnavailable(plain_error(server, exc)) from exc
        time.sleep(_retry_delay(attempt))
        attempt += 1


def _retry_delay(retry: int) -> float:
    """The client's (urllib3's) wait before retry number ``retry``: none before the first, then factor x 2^(n-1) s."""
    return 0.0 if retry <= 1 else _client_setting("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR") * 2 ** (retry - 1)


def _paged(server: TrackingServer, fetch: Callable[[str | None], Any]) -> Iterator[list[Any]]:
    """Pages of a paged MLflow search; the next page is fetched while the caller writes this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(call, server, functools.partial(fetch, None))
        while True:
            page = future.result()
            token = getattr(page, "token", None)
            if token:
                future = pool.submit(call, server, functools.partial(fetch, token))
            yield list(page)
            if not token:
                return


def sync_server(server: TrackingServer, *, full: bool = False, queued: bool = False, holder: str = "") -> SyncResult:
    """Sync runs, model versions and aliases, then serve the webhook deliveries waiting; ``queued``: only those.

    ``holder``: the task syncing (see leased)."""
    state = SyncState.objects.get(server=server)
    started = time.monotonic()
    with leased(state, holder=holder) as lease:
        result = _Sync(server, lease).run(started, full=full, queued=queued)
    sources.serve_what_still_waits(state.pk)
    return result


class _Sync:
    def __init__(self, server: TrackingServer, lease: Lease) -> None:
        self.server = server
        self.lease = lease
        self.client = client_for(server)
        self.actor = SystemActor(f"mlflow-sync:{server.name}")
        self.result = SyncResult()
        self.watermark: dict[str, Any] = dict(lease.state.watermark or {})
        self.experiment_names: dict[str, str] = {}
        # Runs a webhook named, read first: bounded by the request, unlike the runs a full read sees.
        self.named_runs: set[str] = set()
        self.done = 0
        self.served = 0

    def run(self, started: float, *, full: bool, queued: bool) -> SyncResult:
        now_ms = int(time.time() * 1000)
        self.experiment_names = self._experiments()
        if not queued:
            last_full = self.watermark.get("last_full_ms")
            full = full or not last_full or now_ms - last_full > settings.LINEAGE_MLFLOW_FULL_SYNC_HOURS * 3_600_000
            since = self.watermark.get("runs_since_ms")
            lookback = settings.LINEAGE_MLFLOW_LOOKBACK_HOURS * 3_600_000
            read_from = 0 if full or since is None else int(since) - lookback
            self._sync_runs("" if read_from == 0 else f"attributes.start_time >= {read_from}")
            self._resolve_pending(read_from)
            self._sync_model_versions()
            self._follow_aliases()
            self.watermark["runs_since_ms"] = now_ms
            if full:
                self.watermark["last_full_ms"] = now_ms
        self._serve_requests()
        if self.result.changed:
            with transaction.atomic():
                log.record(
                    "sync.mlflow.completed",
                    actor=self.actor,
                    subject=self.server,
                    new={"summary": self.result.summary(), "full": full, "deliveries": self.served},
                )
        record_success(self.lease.state, self.result, started=started, watermark=self.watermark)
        return self.result

    # Webhook deliveries

    def _serve_requests(self) -> None:
        """Serve the webhook deliveries waiting for this server, a batch at a time, until none is left.

        Each batch is read once and served as one targeted sync: a burst of a thousand deliveries naming
        the same models costs a few passes, not a thousand syncs.
        """
        state = self.lease.state
        while True:
            sources.serving_started(state.pk)
            batch = list(SyncRequest.objects.filter(state=state).order_by("pk")[:SERVED_AT_ONCE])
            if not batch:
                return
            self._serve(batch)
            services.record_served_requests(state, batch, by=self.actor)
            self.served += len(batch)
            self.lease.progress(self.done, f"{self.served} webhook deliveries served", force=True)

    def _serve(self, batch: list[SyncRequest]) -> None:
        """The runs the deliveries name, then each named model's versions: those made from the named runs, or
        all of them when a delivery names the model alone (a tag or an alias changed); everything when one
        names nothing."""
        if any(not r.model_name and not r.run_id for r in batch):
            self._sync_model_versions()
            self._follow_aliases()
            return
        self.named_runs = {r.run_id for r in batch if r.run_id}
        self._sync_runs_by_id(sorted(self.named_runs))
        self._resolve_pending(None)
        by_model: dict[str, set[str] | None] = {}
        for request in batch:
            if not request.model_name:
                continue
            runs = by_model.setdefault(request.model_name, set())
            if runs is not None and request.run_id:
                runs.add(request.run_id)
            else:
                by_model[request.model_name] = None
        for name, runs in sorted(by_model.items()):
            self._sync_model_versions(name, run_ids=sorted(runs) if runs is not None else ())
        self._follow_aliases()

    def _resolve_pending(self, read_from: int | None) -> None:
        """Runs waiting for a commit or dataset version are read again only when one may have arrived."""
        marker = [
            Commit.objects.order_by("-pk").values_list("pk", flat=True).first(),
            DatasetVersion.objects.order_by("-pk").values_list("pk", flat=True).first(),
        ]
        if marker != self.watermark.get("resolution_marker"):
            for pending in self._pending_run_ids(read_from):
                self._sync_runs_by_id(pending)
            self.watermark["resolution_marker"] = marker

    # Runs

    def _experiments(self) -> dict[str, str]:
        names: dict[str, str] = {}

        def fetch(token: str | None) -> Any:
            return self.client.search_experiments(max_results=PAGE, page_token=token)

        for page in _paged(self.server, fetch):
            names.update({str(e.experiment_id): e.name for e in page})
        return names

    def _sync_runs(self, where: str) -> None:
        if not self.experiment_names:
            return
        ids = sorted(self.experiment_names)

        def fetch(token: str | None) -> Any:
            return self.client.search_runs(
                ids, where, max_results=PAGE, order_by=["attributes.start_time ASC"], page_token=token
            )

        for page in _paged(self.server, fetch):
            self._write_runs(page)

    def _pending_run_ids(self, read_from: int | None) -> Iterator[list[str]]:
        """The pending runs this sync has not read yet, a page at a time from the database.

        None after a full read, which read every run; after a read of the runs started from ``read_from``
        (ms), those started before it. Never a set of every run seen: at a million runs that alone would
        hold a hundred megabytes for the whole sync.
        """
        if read_from == 0:
            return
        pending = SyncedRun.objects.filter(server=self.server, pending=True)
        if read_from is not None:
            read = ExperimentRun.objects.filter(
                server=self.server, run_id=OuterRef("run_id"), start_time__gte=mapping.from_millis(read_from)
            )
            pending = pending.exclude(Exists(read))
        after = 0
        while page := list(pending.filter(pk__gt=after).order_by("pk").values_list("pk", "run_id")[:PAGE]):
            after = page[-1][0]
            yield [run_id for _, run_id in page if run_id not in self.named_runs]

    def _sync_runs_by_id(self, run_ids: list[str]) -> None:
        run_ids = [r for r in run_ids if r and r.isalnum()]
        if not run_ids or not self.experiment_names:
            return
        ids = sorted(self.experiment_names)
        for start in range(0, len(run_ids), 100):
            quoted = ", ".join(f"'{r}'" for r in run_ids[start : start + 100])

            def fetch(token: str | None, quoted: str = quoted) -> Any:
                return self.client.search_runs(
                    ids, f"attributes.run_id IN ({quoted})", max_results=PAGE, page_token=token
                )

            for page in _paged(self.server, fetch):
                self._write_runs(page)

    def _write_runs(self, page: list[Any]) -> None:
        datas = [mapping.run_data(run, self.experiment_names) for run in page]
        # One transaction for the page, its fingerprints included: a killed worker leaves either all of it or
        # none, and the next sync redoes what is missing. Each statement is planned for this page's run ids:
        # PostgreSQL's generic plan for "these thousand run ids" tested every run of the server against each
        # id while a first sync was still filling the table (1.8 s a statement at 40,000 runs).
        with planned_for_their_values():
            known = {
                row["run_id"]: row
                for row in SyncedRun.objects.filter(server=self.server, run_id__in=[d.run_id for d in datas]).values(
                    "run_id", "fingerprint", "pending"
                )
            }
            written: dict[str, str] = {}
            to_write: list[services.RunData] = []
            for data in datas:
                fingerprint = mapping.fingerprint(data)
                row = known.get(data.run_id)
                if row and row["fingerprint"] == fingerprint and not row["pending"]:
                    self.result.count("unchanged", "runs")
                    continue
                to_write.append(data)
                written[data.run_id] = fingerprint
            if to_write:
                for outcome in services.record_runs(self.server, to_write, by=self.actor):
                    self.result.count(outcome, "runs")
            if written:
                self._remember(datas, written)
        self.done += len(page)
        self.lease.progress(self.done, f"{self.done} runs read")

    def _remember(self, datas: list[services.RunData], written: dict[str, str]) -> None:
        """Store fingerprints; a run whose commit or dataset is not known yet stays pending."""
        keys = {ref.key for d in datas if d.run_id in written for ref in d.datasets}
        names = {key.rpartition(":")[0] for key in keys}
        registered = {
            f"{name}:{version}"
            for name, version in DatasetVersion.objects.filter(dataset__name__in=names).values_list(
                "dataset__name", "version"
            )
        }
        # Read by the (server, run id) key alone and sorted out here: asked in SQL too, "no commit yet" let
        # PostgreSQL, its statistics behind a table growing by a thousand runs a page, scan every run
        # without a commit for each page (6 s a page at 150,000 runs).
        unresolved = {
            run_id
            for run_id, commit, sha in ExperimentRun.objects.filter(
                server=self.server, run_id__in=list(written)
            ).values_list("run_id", "commit_id", "commit_sha")
            if commit is None and sha
        }
        rows = [
            SyncedRun(
                server=self.server,
                run_id=d.run_id,
                fingerprint=written[d.run_id],
                pending=d.run_id in unresolved or any(ref.key not in registered for ref in d.datasets),
            )
            for d in datas
            if d.run_id in written
        ]
        SyncedRun.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["server", "run_id"], update_fields=["fingerprint", "pending"]
        )

    # Registry

    def _sync_model_versions(self, model_name: str = "", *, run_ids: Sequence[str] = ()) -> None:
        """Every model version (no name), or one model's: all of them, or those made from ``run_ids``."""
        where = f"name = '{model_name}'" if model_name else None
        if model_name and "'" in model_name:
            self.result.warn(f"model name {model_name!r} cannot be searched for")
            return

        # search_model_versions leaves aliases out; the registered models carry them.
        aliases: dict[tuple[str, int], list[str]] = {}

        def fetch_models(token: str | None) -> Any:
            return self.client.search_registered_models(where, max_results=PAGE, page_token=token)

        for page in _paged(self.server, fetch_models):
            for model in page:
                for alias, version in (model.aliases or {}).items():
                    aliases.setdefault((model.name, int(version)), []).append(alias)

        searches: list[str | None] = [where]
        quoted = [f"'{r}'" for r in run_ids if r.isalnum()]
        if model_name and quoted:
            searches = [
                f"{where} AND run_id IN ({', '.join(quoted[start : start + 100])})"
                for start in range(0, len(quoted), 100)
            ]
        for search in searches:
            self._write_model_versions(search, aliases)

    def _write_model_versions(self, where: str | None, aliases: dict[tuple[str, int], list[str]]) -> None:
        def fetch(token: str | None) -> Any:
            return self.client.search_model_versions(where, max_results=PAGE, page_token=token)

        for page in _paged(self.server, fetch):
            datas = [
                replace(data, aliases=tuple(sorted(aliases.get((data.name, data.version), []))))
                for data in map(mapping.model_version_data, page)
            ]
            known = {
                (mv.registered_model.name, mv.version): mv
                # Only this server's models: another server's model of the same name is reported as a conflict.
                for mv in ModelVersion.objects.filter(
                    registered_model__name__in={d.name for d in datas}, version__in={d.version for d in datas}
                )
                .filter(Q(registered_model__server=self.server) | Q(registered_model__server=None))
                .select_related("registered_model")
            }
            to_write = []
            for data in datas:
                existing = known.get((data.name, data.version))
                if (
                    existing is not None
                    and existing.aliases == sorted(data.aliases)
                    and existing.tags == data.tags
                    and (existing.run_id is not None or not data.source_run_id)
                ):
                    self.result.count("unchanged", "model versions")
                else:
                    to_write.append(data)
            refused: set[tuple[str, int]] = set()
            for data, outcome in zip(
                to_write, services.register_model_versions(self.server, to_write, by=self.actor), strict=True
            ):
                if isinstance(outcome, LineageError):
                    self.result.warn(f"{data.name}/{data.version}: {outcome.message}")
                    refused.add((data.name, data.version))
                else:
                    self.result.count(outcome, "model versions")
            for data in datas:
                if (data.name, data.version) in refused:
                    continue
                release_name = data.tags.get(settings.LINEAGE_MLFLOW_RELEASE_TAG, "").strip()
                if release_name:
                    self._ensure_release(release_name, f"{data.name}/{data.version}")

    def _ensure_release(self, name: str, model_version: str) -> None:
        try:
            outcome = services.release_from_tag(name, model_version, by=self.actor)
        except LineageError as exc:
            self.result.warn(f"{model_version} is tagged release={name}, which cannot be recorded: {exc.message}")
            return
        self.result.count(outcome, "releases")

    def _follow_aliases(self) -> None:
        """A deployment event for each endpoint whose followed alias moved since the last sync."""
        endpoints = list(
            Endpoint.objects.filter(registered_model__server=self.server)
            .exclude(mlflow_alias="")
            .select_related("registered_model")
        )
        if not endpoints:
            return
        positions: dict[str, int | None] = dict(self.watermark.get("aliases", {}))
        versions = ModelVersion.objects.filter(registered_model__in={e.registered_model_id for e in endpoints})
        by_alias = {(mv.registered_model_id, alias): mv for mv in versions for alias in mv.aliases}
        for endpoint in endpoints:
            target = by_alias.get((endpoint.registered_model_id or 0, endpoint.mlflow_alias))
            number = target.version if target else None
            if endpoint.name in positions and positions[endpoint.name] == number:
                continue
            positions[endpoint.name] = number
            if target is not None:
                self._deploy_alias_target(endpoint, target)
        self.watermark["aliases"] = positions

    def _deploy_alias_target(self, endpoint: Endpoint, target: ModelVersion) -> None:
        try:
            deployment = services.follow_alias(endpoint, target, by=self.actor)
        except LineageError as exc:
            self.result.warn(exc.message)
            return
        self.result.count("created" if deployment else "unchanged", "deployments")
