"""Writes for the model link: registered models and their versions, as the MLflow registry lists them."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from audit import log
from audit.log import Actor
from audit.models import AuditEvent
from releases.errors import Conflict, InvalidInput, LineageError
from releases.models import ExperimentRun, ModelVersion, RegisteredModel, TrackingServer
from releases.roles import require_role
from releases.services import refusals
from releases.services.experiment import keep_dataset_links


@dataclass(frozen=True)
class ModelVersionData:
    name: str
    version: int
    source_run_id: str = ""
    artifact_uri: str = ""
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    created_at: datetime.datetime | None = None


def _check_model_version(data: ModelVersionData) -> None:
    if not data.name.strip():
        raise InvalidInput("a registered model needs a name")
    if data.version < 1:
        raise InvalidInput(f"model version must be a positive integer, not {data.version!r}")


def _owner_refusal(model: RegisteredModel, server: TrackingServer | None, *, by: Actor) -> Conflict | None:
    """A registered model belongs to the MLflow server it was first synced from; another server's model of the
    same name is a different model, and touching ours from it would re-link releases to the wrong runs.

    The conflict is recorded once per (model, server) pair, however often that server's syncs report it.
    """
    if server is None or model.server_id is None or model.server_id == server.pk:
        return None
    owner = TrackingServer.objects.get(pk=model.server_id)
    refusal = Conflict(
        f"registered model {model.name} belongs to the MLflow server {owner.name}; {server.name} reports a model "
        f"of the same name, which was left untouched (rename it in one of the servers)",
        rule="other_source",
    )
    reported = AuditEvent.objects.filter(
        action="model_version.source_conflict", object_key=model.name, new__reported_by=server.name
    )
    if not reported.exists():
        with transaction.atomic():
            log.record(
                "model_version.source_conflict",
                actor=by,
                object_type="registered_model",
                object_key=model.name,
                new={"owner": owner.name, "reported_by": server.name},
                reason=refusal.message,
            )
    # The event above is the record of this refusal; the caller's refusal helper must not add another.
    refusal.recorded = True
    return refusal


def register_model_versions(
    server: TrackingServer | None, versions: Sequence[ModelVersionData], *, by: Actor
) -> list[str | LineageError]:
    """``register_model_version`` for a page: one outcome per version, or the error that refused it.

    Versions not registered yet (all of them on a first sync) are inserted together, each with its
    own audit event; a version already known, or listed twice, takes the one-by-one path, which
    compares it with what is stored.
    """
    refusals.check_role(
        "model_version.registration_refused",
        by=by,
        object_type="tracking_server",
        object_key=server.name if server else "",
        to="register model versions",
    )
    outcomes: dict[int, str | LineageError] = {}
    valid: list[tuple[int, ModelVersionData]] = []
    for index, data in enumerate(versions):
        try:
            _check_model_version(data)
        except LineageError as exc:
            outcomes[index] = exc
            continue
        valid.append((index, data))
    later: list[tuple[int, ModelVersionData]] = []
    try:
        with transaction.atomic():
            models = {
                name: RegisteredModel.objects.get_or_create(name=name, defaults={"server": server})[0]
                for name in sorted({data.name for _, data in valid})
            }
            for name, model in list(models.items()):
                conflict = _owner_refusal(model, server, by=by)
                if conflict is not None:
                    del models[name]
                    outcomes.update({index: conflict for index, data in valid if data.name == name})
            valid = [(index, data) for index, data in valid if data.name in models]
            stored = set(
                ModelVersion.objects.filter(registered_model__in=list(models.values())).values_list(
                    "registered_model__name", "version"
                )
            )
            runs: dict[str, ExperimentRun] = {}
            run_ids = {data.source_run_id for _, data in valid if data.source_run_id}
            found = ExperimentRun.objects.filter(run_id__in=run_ids)
            for run in found.filter(server=server) if server else found:
                runs.setdefault(run.run_id, run)
            fresh: list[tuple[int, ModelVersionData]] = []
            for index, data in valid:
                if (data.name, data.version) in stored:
                    later.append((index, data))
                    continue
                stored.add((data.name, data.version))
                fresh.append((index, data))
            created = ModelVersion.objects.bulk_create(
                [
                    ModelVersion(
                        registered_model=models[data.name],
                        version=data.version,
                        source_run_id=data.source_run_id,
                        run=runs.get(data.source_run_id),
                        artifact_uri=data.artifact_uri,
                        aliases=sorted(data.aliases),
                        tags=data.tags,
                        created_at=data.created_at,
                    )
                    for _, data in fresh
                ],
                batch_size=500,
            )
            keep_dataset_links([version.pk for version in created if version.run_id is not None])
            log.record_many(
                [
                    log.PendingEvent(
                        "model_version.registered",
                        object_type="model_version",
                        object_key=f"{data.name}/{data.version}",
                        new={"run_id": data.source_run_id, "artifact_uri": data.artifact_uri},
                    )
                    for _, data in fresh
                ],
                actor=by,
            )
            outcomes.update({index: "created" for index, _ in fresh})
    except IntegrityError:
        # Another writer registered one of them meanwhile: compare each with what is stored now.
        later = valid
    for index, data in later:
        try:
            outcomes[index] = register_model_version(server, data, by=by)[1]
        except LineageError as exc:
            outcomes[index] = exc
    return [outcomes[index] for index in range(len(versions))]


@refusals.audited(
    "model_version.registration_refused", lambda server, data, **_: ("model_version", f"{data.name}/{data.version}")
)
def register_model_version(
    server: TrackingServer | None, data: ModelVersionData, *, by: Actor
) -> tuple[ModelVersion, str]:
    """Create or refresh a registry version. Its run and artifact never change once recorded, and a version
    belongs to the MLflow server its registered model was first synced from."""
    require_role(by, to="register a model version")
    _check_model_version(data)
    key = f"{data.name}/{data.version}"
    known = RegisteredModel.objects.filter(name=data.name).first()
    conflict = _owner_refusal(known, server, by=by) if known is not None else None
    if conflict is not None:
        raise conflict
    with transaction.atomic():
        model, _ = RegisteredModel.objects.get_or_create(name=data.name, defaults={"server": server})
        run = None
        if data.source_run_id:
            runs = ExperimentRun.objects.filter(run_id=data.source_run_id)
            run = (runs.filter(server=server) if server else runs).first()
        existing = ModelVersion.objects.select_for_update().filter(registered_model=model, version=data.version).first()
        if existing is None:
            created = ModelVersion.objects.create(
                registered_model=model,
                version=data.version,
                source_run_id=data.source_run_id,
                run=run,
                artifact_uri=data.artifact_uri,
                aliases=sorted(data.aliases),
                tags=data.tags,
                created_at=data.created_at,
            )
            keep_dataset_links([created.pk])
            log.record(
                "model_version.registered",
                actor=by,
                subject=created,
                new={"run_id": data.source_run_id, "artifact_uri": data.artifact_uri},
            )
            return created, "created"
        for attr in ("source_run_id", "artifact_uri"):
            if getattr(existing, attr) != getattr(data, attr):
                raise Conflict(
                    f"{key} is already registered with {attr} {getattr(existing, attr)!r}; register a new version",
                    rule="immutable_version",
                )
        if run is not None and existing.run_id is not None and existing.run_id != run.pk:
            # Releases were approved against the run the version was first linked to.
            raise Conflict(
                f"{key} is already linked to its run {existing.source_run_id}; a version's run never changes",
                rule="run_repointed",
            )
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        if sorted(data.aliases) != existing.aliases:
            old["aliases"], new["aliases"] = existing.aliases, sorted(data.aliases)
        if data.tags != existing.tags:
            old["tags"], new["tags"] = existing.tags, data.tags
        if run is not None and existing.run_id is None:
            old["run"], new["run"] = None, run.run_id
        if not new:
            return existing, "unchanged"
        existing.aliases = sorted(data.aliases)
        existing.tags = data.tags
        if "run" in new:
            existing.run = run
        existing.save(update_fields=list(new))
        if "run" in new:
            keep_dataset_links([existing.pk])
        # The event names every field that changed, with what it was: the run included.
        log.record("model_version.updated", actor=by, subject=existing, old=old, new=new)
        return existing, "updated"
