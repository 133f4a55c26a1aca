"""Writes for releases: create, submit, approve (four-eyes, signed), reject, retire."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import log, signing
from audit.log import Actor
from releases import lineage
from releases.errors import Conflict, InvalidInput, NotFound, PermissionRefused, RuleViolation
from releases.models import Approval, GitTag, ModelVersion, Release
from releases.naming import check_release_name
from releases.roles import ML_LEADS, RELEASE_MANAGERS, has_role, require_role
from releases.services import writeback
from releases.services.code import resolve_commit
from releases.services.validation import require_reason


def _user(actor: Actor) -> User | None:
    return actor if isinstance(actor, User) else None


def create_release(
    *,
    name: str,
    model_version: str,
    commit: str = "",
    git_tag: str = "",
    validation_report_uri: str = "",
    by: Actor,
) -> tuple[Release, bool]:
    """Create a draft release of ``model/version``. Same content again is a no-op; different is refused."""
    require_role(by, RELEASE_MANAGERS, ML_LEADS, to="create a release")
    version = ModelVersion.objects.by_key(model_version).select_related("registered_model", "run__commit").first()
    if version is None:
        raise NotFound(
            f"model version {model_version!r} is not registered (expected model/version, e.g. churn-model/42)"
        )
    check_release_name(name, version.registered_model.name)
    tag = None
    if git_tag:
        tags = GitTag.objects.filter(name=git_tag).select_related("commit")
        if version.run is not None and version.run.commit is not None:
            tags = tags.filter(repository_id=version.run.commit.repository_id)
        found = list(tags[:2])
        if len(found) != 1:
            raise NotFound(f"git tag {git_tag!r} is {'ambiguous' if found else 'not synced'}")
        tag = found[0]
    release_commit = None
    if commit:
        release_commit = resolve_commit(commit)
        if release_commit is None:
            raise NotFound(f"commit {commit!r} is not a synced commit (or the prefix is ambiguous)")
    elif tag is not None:
        release_commit = tag.commit
    wanted = {
        "model_version": version.key,
        "commit": release_commit.sha if release_commit else "",
        "git_tag": tag.name if tag else "",
        "validation_report_uri": validation_report_uri,
    }
    try:
        with transaction.atomic():
            existing = Release.objects.filter(name=name).with_chain().first()
            if existing is not None:
                _refuse_different_release(existing, wanted)
                return existing, False
            release = Release.objects.create(
                name=name,
                model_version=version,
                commit=release_commit,
                git_tag=tag,
                validation_report_uri=validation_report_uri,
                created_by=_user(by),
                state_changed_at=timezone.now(),
            )
            log.record("release.created", actor=by, object_type="release", object_key=name, new=wanted)
            return release, True
    except IntegrityError:
        existing = Release.objects.with_chain().get(name=name)
        _refuse_different_release(existing, wanted)
        return existing, False


def _refuse_different_release(existing: Release, wanted: dict[str, str]) -> None:
    recorded = {
        "model_version": existing.model_version.key,
        "commit": existing.commit.sha if existing.commit else "",
        "git_tag": existing.git_tag.name if existing.git_tag else "",
        "validation_report_uri": existing.validation_report_uri,
    }
    for key, value in wanted.items():
        if recorded[key] != value:
            raise Conflict(
                f"release {existing.name} already exists with {key.replace('_', ' ')} {recorded[key] or '(none)'!r}; "
                f"create a new release name",
                rule="immutable_release",
            )


def _locked(release: Release) -> Release:
    # Lock the release row: concurrent approvals/transitions of one release are serialised here.
    return Release.objects.select_for_update().get(pk=release.pk)


def _transition(release: Release, to: str, *, by: Actor, action: str, reason: str = "", **extra: str) -> Release:
    old = release.state
    release.state = to
    release.state_changed_at = timezone.now()
    release.state_reason = reason
    fields = ["state", "state_changed_at", "state_reason", *extra]
    for attr, value in extra.items():
        setattr(release, attr, value)
    release.save(update_fields=fields)
    log.record(
        action,
        actor=by,
        object_type="release",
        object_key=release.name,
        old={"state": old},
        new={"state": to, **extra},
        reason=reason,
    )
    return release


def submit_release(release: Release, *, by: Actor) -> Release:
    """Ask for approval: freezes the lineage digest the approvers will be shown."""
    require_role(by, RELEASE_MANAGERS, ML_LEADS, to="submit a release")
    with transaction.atomic():
        locked = _locked(release)
        if locked.state not in (Release.State.DRAFT, Release.State.REJECTED):
            raise RuleViolation(
                f"release {locked.name} is {locked.state}; only a draft or rejected release can be submitted"
            )
        digest = lineage.trace(locked.name).digest
        _transition(locked, Release.State.PENDING, by=by, action="release.submitted", lineage_digest=digest)
    release.refresh_from_db()
    return release


def approval_refusal(trace: lineage.Trace, approver: User) -> tuple[str, str] | None:
    """The first rule that forbids ``approver`` from approving, as (rule, message); None if allowed."""
    release = trace.release
    if not has_role(approver, ML_LEADS):
        return "not_ml_lead", f"{approver.get_username()} is not an ML lead; only ML leads can approve"
    if release.created_by_id == approver.pk:
        return "four_eyes", f"{approver.get_username()} created {release.name}; another ML lead must approve it"
    run = trace.run
    if settings.LINEAGE_FOUR_EYES_RUN_AUTHOR and run is not None and run.user and run.user == approver.get_username():
        return (
            "four_eyes",
            f"{approver.get_username()} trained {release.name} (MLflow run author); another ML lead must approve it",
        )
    if release.state not in (Release.State.PENDING, Release.State.APPROVED):
        return "wrong_state", f"{release.name} is {release.state}; submit it for approval first"
    if any(a.approver_id == approver.pk and a.signed_digest == trace.digest for a in trace.approvals):
        return "already_signed", f"{approver.get_username()} has already signed {release.name} as it stands"
    missing = trace.missing_for_approval
    if missing:
        return (
            "incomplete_chain",
            f"{release.name} has an incomplete chain: missing {', '.join(link.label.lower() for link in missing)}",
        )
    for version in trace.dataset_versions:
        if version.is_quarantined:
            return "quarantined_data", f"{release.name} was trained on {version.key}, which is quarantined"
        if version.mutated:
            return "mutated_data", f"{release.name} used {version.key}, which was changed in place"
    tag = release.git_tag
    if tag is not None and tag.moved:
        return "moved_tag", f"tag {tag.name} moved after {release.name} was cut; cut a new release"
    if not release.validation_report_uri:
        return "no_validation_report", f"{release.name} has no validation report"
    return None


def _refuse(
    trace: lineage.Trace, *, by: Actor, rule: str, message: str, error: type[Exception] = RuleViolation
) -> None:
    # The refusal is itself evidence: commit it even though the approval does not happen.
    with transaction.atomic():
        log.record(
            "release.approval_refused",
            actor=by,
            object_type="release",
            object_key=trace.release.name,
            new={"rule": rule},
            reason=message,
        )
    raise error(message, rule=rule)  # type: ignore[call-arg]


def _sign(release: Release, *, by: User, decision: str, meaning: str, comment: str, trace: lineage.Trace) -> Approval:
    approval = Approval(
        release=release,
        approver=by,
        approver_name=by.get_full_name() or by.get_username(),
        decision=decision,
        meaning=meaning,
        comment=comment,
        signed_digest=trace.digest,
        signed_chain=trace.chain(),
        signed_at=timezone.now(),
    )
    approval.signature = signing.sign(approval.statement())
    approval.save()
    return approval


def _check_signature(trace: lineage.Trace, *, by: User, password: str, meaning: str) -> None:
    if not meaning.strip():
        _refuse(
            trace,
            by=by,
            rule="no_meaning",
            message="state what your signature means (e.g. Approved for production)",
            error=InvalidInput,
        )
    if not by.check_password(password):
        _refuse(
            trace,
            by=by,
            rule="wrong_password",
            message="password does not match; the signature was not recorded",
            error=PermissionRefused,
        )


def _changed_since_reviewed(trace: lineage.Trace, expected_digest: str) -> tuple[str, str] | None:
    if expected_digest and expected_digest != trace.digest:
        return (
            "chain_changed",
            f"the chain of {trace.release.name} changed since you opened it; review it again before signing",
        )
    return None


def approve_release(
    release: Release, *, by: User, password: str, meaning: str, comment: str = "", expected_digest: str = ""
) -> Approval:
    """Sign an approval: ML lead, not the creator, password re-entered, complete and clean chain.

    ``expected_digest`` is the lineage digest the approver was shown; a different chain is refused.
    """
    trace = lineage.trace(release.name)
    refusal = approval_refusal(trace, by) or _changed_since_reviewed(trace, expected_digest)
    if refusal is not None:
        rule, message = refusal
        _refuse(
            trace,
            by=by,
            rule=rule,
            message=message,
            error=PermissionRefused if rule == "not_ml_lead" else RuleViolation,
        )
    _check_signature(trace, by=by, password=password, meaning=meaning)
    try:
        with transaction.atomic():
            locked = _locked(release)
            # Re-read the chain under the lock: it may have changed since the checks above.
            trace = lineage.trace(locked.name)
            refusal = approval_refusal(trace, by) or _changed_since_reviewed(trace, expected_digest)
            if refusal is not None:
                raise RuleViolation(refusal[1], rule=refusal[0])
            approval = _sign(
                locked,
                by=by,
                decision=Approval.Decision.APPROVED,
                meaning=meaning.strip(),
                comment=comment,
                trace=trace,
            )
            log.record(
                "release.approved",
                actor=by,
                object_type="release",
                object_key=locked.name,
                new={
                    "meaning": approval.meaning,
                    "lineage_digest": approval.signed_digest,
                    "signature": approval.signature,
                },
                reason=comment,
            )
            trace = lineage.trace(locked.name)
            if trace.approval_state().is_valid and locked.state != Release.State.APPROVED:
                _transition(locked, Release.State.APPROVED, by=by, action="release.state_changed")
                writeback.queue_release_tag(locked, by=by)
    except IntegrityError as exc:
        raise RuleViolation(f"{by.get_username()} has already signed {release.name}", rule="already_signed") from exc
    release.refresh_from_db()
    return approval


def reject_release(release: Release, *, by: User, password: str, comment: str) -> Approval:
    """Sign a rejection; a rejection must say why."""
    trace = lineage.trace(release.name)
    if not has_role(by, ML_LEADS):
        _refuse(
            trace,
            by=by,
            rule="not_ml_lead",
            message=f"{by.get_username()} is not an ML lead; only ML leads can reject",
            error=PermissionRefused,
        )
    if not comment.strip():
        raise InvalidInput("a rejection needs a comment saying why", rule="comment_required")
    if release.state not in (Release.State.PENDING, Release.State.APPROVED):
        raise RuleViolation(f"{release.name} is {release.state}; only a pending or approved release can be rejected")
    _check_signature(trace, by=by, password=password, meaning="Rejected")
    with transaction.atomic():
        locked = _locked(release)
        approval = _sign(
            locked, by=by, decision=Approval.Decision.REJECTED, meaning="Rejected", comment=comment.strip(), trace=trace
        )
        _transition(locked, Release.State.REJECTED, by=by, action="release.rejected", reason=comment.strip())
    release.refresh_from_db()
    return approval


def retire_release(release: Release, *, by: Actor, reason: str) -> Release:
    """Retire a release: it stays in the record but is never a rollback target again."""
    require_role(by, RELEASE_MANAGERS, ML_LEADS, to="retire a release")
    reason = require_reason(reason, "retire a release")
    with transaction.atomic():
        locked = _locked(release)
        if locked.state == Release.State.RETIRED:
            raise RuleViolation(f"{locked.name} is already retired")
        _transition(locked, Release.State.RETIRED, by=by, action="release.retired", reason=reason)
    release.refresh_from_db()
    return release
