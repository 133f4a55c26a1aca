"""Writes for releases: create (and submit), sign (approve or reject, four-eyes), retire."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import log, signing
from audit.log import Actor
from releases import dispatch, lineage
from releases.errors import Conflict, InvalidInput, NotFound, PermissionRefused, RuleViolation
from releases.models import Approval, GitTag, ModelVersion, Release
from releases.naming import check_release_name
from releases.roles import ML_LEADS, RELEASE_MANAGERS, require_role
from releases.services import accounts, refusals, writeback
from releases.services.code import resolve_commit
from releases.services.validation import require_reason

# A release that still counts: a second release of the same model version is refused while one is.
ACTIVE_STATES = (Release.State.DRAFT, Release.State.PENDING, Release.State.APPROVED)


def _user(actor: Actor) -> User | None:
    return actor if isinstance(actor, User) else None


def create_release(
    *,
    name: str,
    model_version: str,
    commit: str = "",
    git_tag: str = "",
    validation_report_uri: str = "",
    submit: bool = False,
    by: Actor,
) -> tuple[Release, bool]:
    """Create a release of ``model/version`` (and submit it for approval when ``submit``), in one transaction.

    Same content again is a no-op; different content under the same name is refused. A model version
    has one active release at a time: its MLflow ``release`` tag names it, so a second one is refused
    until the first is rejected or retired.
    """
    with refusals.recorded(
        "release.creation_refused", by=by, object_type="release", object_key=name, model_version=model_version
    ):
        require_role(by, RELEASE_MANAGERS, ML_LEADS, to="create a release")
        version = ModelVersion.objects.by_key(model_version).select_related("registered_model", "run__commit").first()
        if version is None:
            raise NotFound(
                f"model version {model_version!r} is not registered (expected model/version, e.g. churn-model/42)"
            )
        check_release_name(name, version.registered_model.name)
        tag = _git_tag(git_tag, version)
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
                    created = False
                else:
                    _refuse_second_active_release(version, name)
                    existing = Release.objects.create(
                        name=name,
                        model_version=version,
                        commit=release_commit,
                        git_tag=tag,
                        validation_report_uri=validation_report_uri,
                        created_by=_user(by),
                        state_changed_at=timezone.now(),
                    )
                    log.record("release.created", actor=by, object_type="release", object_key=name, new=wanted)
                    created = True
                if submit and existing.state == Release.State.DRAFT:
                    _submit(existing, by=by)
        except IntegrityError:
            existing = Release.objects.with_chain().get(name=name)
            _refuse_different_release(existing, wanted)
            created = False
    existing.refresh_from_db()
    return existing, created


def _git_tag(name: str, version: ModelVersion) -> GitTag | None:
    """The tag ``name``, looked up in the repository of the run's commit when it has one."""
    if not name:
        return None
    tags = GitTag.objects.filter(name=name).select_related("commit")
    if version.run is not None and version.run.commit is not None:
        tags = tags.filter(repository_id=version.run.commit.repository_id)
    found = list(tags[:2])
    if len(found) != 1:
        raise NotFound(f"git tag {name!r} is {'ambiguous' if found else 'not synced'}")
    return found[0]


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


def _refuse_second_active_release(version: ModelVersion, name: str) -> None:
    other = Release.objects.filter(model_version=version, state__in=ACTIVE_STATES).exclude(name=name).first()
    if other is not None:
        raise Conflict(
            f"{version.key} is already released as {other.name} ({other.state}); reject or retire {other.name} "
            f"first, or release a new model version",
            rule="one_release_per_version",
        )


def release_from_tag(name: str, model_version: str, *, by: Actor) -> str:
    """A model version tagged ``release=<name>`` in MLflow: create that release as a draft.

    Returns "created" or "unchanged"; a tag that contradicts the record is refused with the reason.
    """
    refusals.check_role(
        "release.creation_refused", by=by, object_type="release", object_key=name, to="create a release from a tag"
    )
    existing = Release.objects.filter(name=name).select_related("model_version__registered_model").first()
    if existing is not None:
        if existing.model_version.key != model_version:
            raise Conflict(
                f"{model_version} is tagged release={name}, but {name} is already the release of "
                f"{existing.model_version.key}",
                rule="immutable_release",
            )
        return "unchanged"
    create_release(name=name, model_version=model_version, by=by)
    return "created"


def _locked(release: Release) -> Release:
    # Lock the release row: concurrent approvals/transitions of one release are serialised here.
    return Release.objects.select_for_update().get(pk=release.pk)


def _transition(
    release: Release,
    to: str,
    *,
    by: Actor,
    action: str,
    reason: str = "",
    signed: Approval | None = None,
    **extra: str,
) -> Release:
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
        subject=release,
        old={"state": old},
        new={"state": to, **extra, **(signed.signed_fields() if signed else {})},
        reason=reason,
    )
    return release


def _submit(release: Release, *, by: Actor) -> None:
    locked = _locked(release)
    if locked.state not in (Release.State.DRAFT, Release.State.REJECTED):
        raise RuleViolation(
            f"release {locked.name} is {locked.state}; only a draft or rejected release can be submitted",
            rule="wrong_state",
        )
    digest = lineage.trace(locked.name).digest
    _transition(locked, Release.State.PENDING, by=by, action="release.submitted", lineage_digest=digest)


def submit_release(release: Release, *, by: Actor) -> Release:
    """Ask for approval: freezes the lineage digest the approvers will be shown."""
    with refusals.recorded("release.submission_refused", by=by, subject=release):
        require_role(by, RELEASE_MANAGERS, ML_LEADS, to="submit a release")
        with transaction.atomic():
            _submit(release, by=by)
    release.refresh_from_db()
    return release


def _refusal_error(refusal: lineage.Refusal) -> RuleViolation | PermissionRefused:
    if refusal.rule in ("not_ml_lead", "not_signed_in"):
        return PermissionRefused(refusal.message, rule=refusal.rule)
    return RuleViolation(refusal.message, rule=refusal.rule)


def _check_signer(trace: lineage.Trace, *, by: User, decision: str, expected_digest: str) -> None:
    refusal = lineage.signing_refusal(trace, by, decision=decision)
    if refusal is not None:
        raise _refusal_error(refusal)
    if expected_digest != trace.digest:
        raise RuleViolation(
            f"the chain of {trace.release.name} changed since you opened it; review it again before signing",
            rule="chain_changed",
        )


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


def sign_release(
    release: Release,
    *,
    by: User,
    decision: str,
    password: str,
    expected_digest: str,
    meaning: str = "",
    comment: str = "",
) -> Approval:
    """Sign a decision ("approve" or "reject") on the chain the signer was shown, as an electronic signature.

    ``expected_digest`` is the lineage digest the signer reviewed: a different chain is refused. The
    signer must be an ML lead and re-enter their password; an approval needs one of the stated meanings,
    may not come from the release's creator or the run's author, and needs a complete, clean chain; a
    rejection needs a comment. Every attempt, allowed or refused, is an audit event.
    """
    with refusals.recorded("release.approval_refused", by=by, subject=release):
        accounts.refuse_if_locked_out(by)
        if decision not in ("approve", "reject"):
            raise InvalidInput(f"the decision must be approve or reject, not {decision!r}", rule="bad_decision")
        if not expected_digest:
            raise InvalidInput(
                "name the lineage digest you reviewed; a signature covers the chain you were shown",
                rule="digest_required",
            )
        trace = lineage.trace(release.name)
        _check_signer(trace, by=by, decision=decision, expected_digest=expected_digest)
        if decision == "approve" and meaning not in Approval.MEANINGS:
            raise InvalidInput(
                f"state what your signature means: one of {', '.join(Approval.MEANINGS)}", rule="no_meaning"
            )
        if decision == "reject" and not comment.strip():
            raise InvalidInput("a rejection needs a comment saying why", rule="comment_required")
        if not by.check_password(password):
            # Counted toward the same lockout as wrong sign-in passwords, so guessing here gains nothing.
            accounts.count_wrong_signing_password(by)
            refused = "password does not match; the signature was not recorded"
            if accounts.is_locked_out(by):
                refused += f". {accounts.LOCKED_OUT_MESSAGE[0].upper()}{accounts.LOCKED_OUT_MESSAGE[1:]}"
            raise PermissionRefused(refused, rule="wrong_password")
        try:
            with transaction.atomic():
                locked = _locked(release)
                # Re-read the chain under the lock: it may have changed since the checks above.
                trace = lineage.trace(locked.name)
                _check_signer(trace, by=by, decision=decision, expected_digest=expected_digest)
                if decision == "reject":
                    approval = _sign(
                        locked,
                        by=by,
                        decision=Approval.Decision.REJECTED,
                        meaning=Approval.REJECTION_MEANING,
                        comment=comment.strip(),
                        trace=trace,
                    )
                    _transition(
                        locked,
                        Release.State.REJECTED,
                        by=by,
                        action="release.rejected",
                        reason=comment.strip(),
                        signed=approval,
                    )
                else:
                    approval = _approve(locked, by=by, meaning=meaning, comment=comment, trace=trace)
        except IntegrityError as exc:
            raise RuleViolation(
                f"{by.get_username()} has already signed {release.name} as it stands", rule="already_signed"
            ) from exc
    release.refresh_from_db()
    return approval


def _approve(release: Release, *, by: User, meaning: str, comment: str, trace: lineage.Trace) -> Approval:
    approval = _sign(release, by=by, decision=Approval.Decision.APPROVED, meaning=meaning, comment=comment, trace=trace)
    log.record(
        "release.approved",
        actor=by,
        subject=release,
        new=approval.signed_fields(),
        reason=comment,
    )
    dispatch.after_commit(dispatch.ISSUE_CHECKPOINT)
    if release.state != Release.State.APPROVED and lineage.approval_state(lineage.trace(release.name)).is_valid:
        _transition(release, Release.State.APPROVED, by=by, action="release.state_changed")
        writeback.queue_release_tag(release, by=by)
    return approval


def retire_release(release: Release, *, by: Actor, reason: str) -> Release:
    """Retire a release: it stays in the record but is never deployed or a rollback target again."""
    with refusals.recorded("release.retirement_refused", by=by, subject=release):
        require_role(by, RELEASE_MANAGERS, ML_LEADS, to="retire a release")
        reason = require_reason(reason, "retire a release")
        with transaction.atomic():
            locked = _locked(release)
            if locked.state == Release.State.RETIRED:
                raise RuleViolation(f"{locked.name} is already retired", rule="already_retired")
            _transition(locked, Release.State.RETIRED, by=by, action="release.retired", reason=reason)
    release.refresh_from_db()
    return release
