"""The model inventory (SR 11-7): every registered model with its owner, purpose, validators, last
validation, approval status, live endpoints, open quarantines and releases in a period.

Validators are the ML leads who signed an approval of any of the model's releases; the last validation
is the newest such signature. The approval status is the one status rule (``release_status``) applied
to the model's newest release. Live endpoints come from the recorded deployments, never from registry
aliases. A fixed number of queries for any number of models: the caller pages the models.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db.models import Count, Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from releases.lineage.live import endpoints_with_live
from releases.lineage.population import Period
from releases.lineage.rules import ReleaseStatus, release_status
from releases.lineage.trace import Trace, traced_releases
from releases.models import Approval, DatasetVersion, Deployment, Endpoint, RegisteredModel, Release


@dataclass
class InventoryRow:
    model: RegisteredModel
    validators: list[str] = field(default_factory=list)
    last_validated: datetime.datetime | None = None
    newest_release: Release | None = None
    status: ReleaseStatus | None = None
    live_endpoints: list[str] = field(default_factory=list)
    open_quarantines: list[str] = field(default_factory=list)
    releases_in_period: int = 0

    @property
    def described(self) -> bool:
        return bool(self.model.owner and self.model.purpose)


def inventory_models() -> QuerySet[RegisteredModel]:
    """The registered models in inventory order, as a lazy queryset the caller pages."""
    return RegisteredModel.objects.order_by("name")


def inventory(models: Sequence[RegisteredModel], period: Period) -> list[InventoryRow]:
    """One row per model of ``models`` (already one page), in their order; ten queries whatever their number."""
    rows = {model.pk: InventoryRow(model) for model in models}
    ids = list(rows)
    if not ids:
        return []
    _approvals(rows, ids)
    _newest_releases(rows, ids)
    _live_endpoints(rows, ids)
    _open_quarantines(rows, ids)
    _releases_in(rows, ids, period)
    return list(rows.values())


def _approvals(rows: dict[int, InventoryRow], ids: list[int]) -> None:
    signed = (
        Approval.objects.filter(
            decision=Approval.Decision.APPROVED, release__model_version__registered_model_id__in=ids
        )
        .values("release__model_version__registered_model_id", "approver_name")
        .annotate(last=Max("signed_at"))
        .order_by()
    )
    for item in signed:
        row = rows[item["release__model_version__registered_model_id"]]
        row.validators.append(item["approver_name"])
        if row.last_validated is None or item["last"] > row.last_validated:
            row.last_validated = item["last"]
    for row in rows.values():
        row.validators.sort()


def _newest_releases(rows: dict[int, InventoryRow], ids: list[int]) -> None:
    newest = (
        Release.objects.filter(model_version__registered_model_id=OuterRef("pk"))
        .order_by("-created_at", "-pk")
        .values("pk")[:1]
    )
    release_ids = dict(
        RegisteredModel.objects.filter(pk__in=ids).annotate(newest=Subquery(newest)).values_list("pk", "newest")
    )
    releases = traced_releases().in_bulk([pk for pk in release_ids.values() if pk is not None])
    for model_id, release_id in release_ids.items():
        release = releases.get(release_id) if release_id is not None else None
        if release is not None:
            rows[model_id].newest_release = release
            rows[model_id].status = release_status(Trace(release))


def _live_endpoints(rows: dict[int, InventoryRow], ids: list[int]) -> None:
    live = Deployment.objects.filter(endpoint=OuterRef("pk")).live_at(timezone.now())
    endpoints = (
        endpoints_with_live()
        .annotate(live_model_id=Subquery(live.values("release__model_version__registered_model_id")[:1]))
        .filter(live_model_id__in=ids)
        .order_by("environment", "name")
        .values_list("live_model_id", "name", "environment")
    )
    for model_id, name, environment in endpoints:
        label = name if environment == Endpoint.Environment.PRODUCTION else f"{name} ({environment})"
        rows[model_id].live_endpoints.append(label)


def _open_quarantines(rows: dict[int, InventoryRow], ids: list[int]) -> None:
    used = (
        DatasetVersion.objects.quarantined()
        .filter(model_version_links__model_version__registered_model_id__in=ids)
        .values_list("model_version_links__model_version__registered_model_id", "dataset__name", "version")
        .distinct()
        .order_by("dataset__name", "version")
    )
    found: dict[int, list[str]] = defaultdict(list)
    for model_id, name, version in used:
        found[model_id].append(f"{name}:{version}")
    for model_id, keys in found.items():
        rows[model_id].open_quarantines = keys


def _releases_in(rows: dict[int, InventoryRow], ids: list[int], period: Period) -> None:
    counts = (
        Release.objects.filter(
            model_version__registered_model_id__in=ids, created_at__gte=period.since, created_at__lt=period.until
        )
        .values("model_version__registered_model_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for item in counts:
        rows[item["model_version__registered_model_id"]].releases_in_period = item["n"]
