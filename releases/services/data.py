"""Writes for the data link: registering, quarantining and watching dataset versions."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import log
from audit.log import Actor
from audit.vocabulary import object_ref
from releases import lineage
from releases.errors import Conflict, InvalidInput, RuleViolation
from releases.models import Dataset, DatasetDigest, DatasetVersion, Release
from releases.models.base import MAX_BIG, MAX_VERSION
from releases.models.code import name_validator
from releases.models.data import hash_validator
from releases.roles import ML_LEADS, RELEASE_MANAGERS, require_role
from releases.services import refusals
from releases.services.validation import check, require_reason


def hash_file(path: Path) -> tuple[str, int]:
    """sha256 content hash and size of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return f"sha256:{digest.hexdigest()}", size


def _snapshot(version: DatasetVersion) -> dict[str, object]:
    return {"uri": version.uri, "content_hash": version.content_hash, "size_bytes": version.size_bytes}


@refusals.audited(
    "dataset_version.registration_refused", lambda **kw: ("dataset_version", f"{kw['name']}:{kw['version']}")
)
def register_dataset_version(
    *, name: str, version: int, uri: str, content_hash: str, size_bytes: int | None = None, by: Actor
) -> tuple[DatasetVersion, bool]:
    """Register ``name:version``. Same content again is a no-op; different content is refused."""
    require_role(by, RELEASE_MANAGERS, ML_LEADS, to="register a dataset version")
    check(name_validator, name, "dataset name")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        raise InvalidInput(f"dataset version must be a positive integer up to {MAX_VERSION}, not {version!r}")
    if size_bytes is not None and not 0 <= size_bytes <= MAX_BIG:
        raise InvalidInput(f"size_bytes must be a whole number of bytes up to {MAX_BIG}, not {size_bytes!r}")
    if not uri.strip():
        raise InvalidInput("a dataset version needs a uri")
    content_hash = content_hash.strip().lower()
    check(hash_validator, content_hash, "content hash")
    try:
        with transaction.atomic():
            dataset, _ = Dataset.objects.get_or_create(name=name)
            existing = DatasetVersion.objects.filter(dataset=dataset, version=version).select_related("dataset").first()
            if existing is not None:
                _refuse_different_content(existing, uri=uri, content_hash=content_hash, size_bytes=size_bytes)
                return existing, False
            created = DatasetVersion.objects.create(
                dataset=dataset, version=version, uri=uri, content_hash=content_hash, size_bytes=size_bytes
            )
            log.record(
                "dataset_version.registered",
                actor=by,
                subject=created,
                new=_snapshot(created),
            )
            return created, True
    except IntegrityError:
        # Another writer registered the same version between our read and insert: compare with theirs.
        existing = DatasetVersion.objects.select_related("dataset").get(dataset__name=name, version=version)
        _refuse_different_content(existing, uri=uri, content_hash=content_hash, size_bytes=size_bytes)
        return existing, False


def _refuse_different_content(existing: DatasetVersion, *, uri: str, content_hash: str, size_bytes: int | None) -> None:
    if existing.content_hash != content_hash:
        raise Conflict(
            f"{existing.key} is already registered with {existing.content_hash}; register a new version",
            rule="immutable_version",
        )
    if existing.uri != uri:
        raise Conflict(
            f"{existing.key} is already registered at {existing.uri}; register a new version", rule="immutable_version"
        )
    if size_bytes is not None and existing.size_bytes is not None and existing.size_bytes != size_bytes:
        raise Conflict(
            f"{existing.key} is already registered with size {existing.size_bytes}; register a new version",
            rule="immutable_version",
        )


@refusals.audited("dataset_version.quarantine_refused", lambda version, **_: object_ref(version))
def quarantine_dataset_version(version: DatasetVersion, *, by: Actor, reason: str) -> lineage.Impact:
    """Quarantine a version: nothing trained on it can be approved, deployed to production or restored."""
    require_role(by, ML_LEADS, to="quarantine a dataset version")
    reason = require_reason(reason, "quarantine a dataset version")
    with transaction.atomic():
        # Lock the row: two leads quarantining at once must produce one change and one event.
        locked = DatasetVersion.objects.select_for_update().select_related("dataset").get(pk=version.pk)
        if locked.is_quarantined:
            raise RuleViolation(
                f"{locked.key} is already quarantined: {locked.status_reason}", rule="already_quarantined"
            )
        old = {"status": locked.status, "reason": locked.status_reason}
        locked.status = DatasetVersion.Status.QUARANTINED
        locked.status_reason = reason
        locked.status_changed_at = locked.quarantined_at = timezone.now()
        locked.quarantine_lifted_at = None
        locked.save(
            update_fields=["status", "status_reason", "status_changed_at", "quarantined_at", "quarantine_lifted_at"]
        )
        log.record(
            "dataset_version.quarantined",
            actor=by,
            subject=locked,
            old=old,
            new={"status": locked.status},
            reason=reason,
        )
        _record_invalidated_approvals(locked, by=by, why=f"{locked.key} quarantined: {reason}")
        impact = lineage.impact_of_dataset_version(locked)
    version.refresh_from_db()
    return impact


@refusals.audited("dataset_version.quarantine_lift_refused", lambda version, **_: object_ref(version))
def lift_quarantine(version: DatasetVersion, *, by: Actor, reason: str) -> list[Release]:
    """Lift a quarantine: the version may be trained on and restored again.

    The approvals the quarantine invalidated stay invalid until an ML lead signs those releases again
    (the signed chain carries the quarantine, so the old signatures never match again). Returns them.
    """
    require_role(by, ML_LEADS, to="lift a quarantine")
    reason = require_reason(reason, "lift a quarantine")
    with transaction.atomic():
        # Lock the row: a lift racing a second quarantine (or another lift) must see the other's result.
        locked = DatasetVersion.objects.select_for_update().select_related("dataset").get(pk=version.pk)
        if not locked.is_quarantined:
            raise RuleViolation(f"{locked.key} is not quarantined (it is {locked.status})", rule="not_quarantined")
        old = {"status": locked.status, "reason": locked.status_reason}
        locked.status = DatasetVersion.Status.ACTIVE
        locked.status_reason = reason
        locked.status_changed_at = locked.quarantine_lifted_at = timezone.now()
        locked.save(update_fields=["status", "status_reason", "status_changed_at", "quarantine_lifted_at"])
        # No valid approval can have been signed while the version was quarantined: every approved
        # release on it holds only signatures from before, which the chain no longer matches.
        to_sign_again = list(lineage.releases_using([locked]).filter(state=Release.State.APPROVED).order_by("name"))
        log.record(
            "dataset_version.quarantine_lifted",
            actor=by,
            subject=locked,
            old=old,
            new={"status": locked.status, "to_sign_again": [r.name for r in to_sign_again]},
            reason=reason,
        )
    version.refresh_from_db()
    return to_sign_again


def _record_invalidated_approvals(version: DatasetVersion, *, by: Actor, why: str) -> None:
    """Say in the log which approved releases just lost their approval, so auditors see it happen."""
    affected = lineage.releases_using([version]).filter(state=Release.State.APPROVED).order_by("name")
    for name in affected.values_list("name", flat=True):
        log.record("release.approval_invalidated", actor=by, object_type="release", object_key=name, reason=why)


def observe_digest(version: DatasetVersion, *, digest: str, source: str, by: Actor) -> bool:
    """Record a digest reported for ``version``; a second, different digest flags it as mutated.

    Returns True when this observation newly flagged the version.
    """
    refusals.check_role("dataset_version.digest_refused", by=by, subject=version, to="record a dataset digest")
    if not digest:
        return False
    with transaction.atomic():
        locked = DatasetVersion.objects.select_for_update().select_related("dataset").get(pk=version.pk)
        _, created = DatasetDigest.objects.get_or_create(
            dataset_version=locked, digest=digest, defaults={"source": source[:1000]}
        )
        if not created:
            return False
        digests = list(locked.digests.values_list("digest", flat=True))
        if len(digests) < 2 or locked.mutated:
            return False
        locked.mutated = True
        locked.mutation_detail = f"seen with digests {', '.join(digests)}"
        locked.save(update_fields=["mutated", "mutation_detail"])
        log.record(
            "dataset_version.mutation_detected",
            actor=by,
            subject=locked,
            new={"digests": digests},
            reason="the same declared version was reported with different content",
        )
        _record_invalidated_approvals(locked, by=by, why=f"{locked.key} changed in place")
    version.refresh_from_db()
    return True
