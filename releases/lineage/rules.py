"""The rules a release is read by, each written once: is an approval valid, what is the release's
status, may this person sign it, may it go live on this endpoint.

Pages, the API, the admin, the approval queue, the signing service, the promotion gate and the
evidence bundle all ask these functions; none of them restates a rule in its own SQL or markup.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User

from releases.lineage.trace import Trace, traced_releases
from releases.models import Approval, Endpoint, Release
from releases.roles import ML_LEADS, has_role


@dataclass(frozen=True)
class Refusal:
    """Why something may not happen: a stable rule name and a sentence for people."""

    rule: str
    message: str


@dataclass(frozen=True)
class ApprovalState:
    valid: list[Approval]
    stale: list[tuple[Approval, list[str]]]
    rejections: list[Approval]
    required: int

    @property
    def is_valid(self) -> bool:
        return len({a.approver_id for a in self.valid}) >= self.required

    @property
    def invalidated(self) -> bool:
        """Approved once, but the chain has changed since, so the approval no longer counts."""
        return not self.is_valid and bool(self.stale)

    @property
    def changes(self) -> list[str]:
        """What changed since the signatures that no longer count, in plain words, without repeats."""
        return list(dict.fromkeys(change for _, changes in self.stale for change in changes))

    def as_of(self, moment: datetime.datetime) -> ApprovalState:
        """The same signatures, keeping only those made at or before ``moment`` (a deployment's time): what
        had been signed when it went live, judged against the chain as it stands now."""
        return ApprovalState(
            [a for a in self.valid if a.signed_at <= moment],
            [(a, why) for a, why in self.stale if a.signed_at <= moment],
            [a for a in self.rejections if a.signed_at <= moment],
            self.required,
        )

    @classmethod
    def of(cls, trace: Trace) -> ApprovalState:
        digest = trace.digest
        chain = trace.chain()
        valid: list[Approval] = []
        stale: list[tuple[Approval, list[str]]] = []
        rejections: list[Approval] = []
        for approval in trace.approvals:
            if approval.decision == Approval.Decision.REJECTED:
                rejections.append(approval)
            elif approval.signed_digest == digest:
                valid.append(approval)
            else:
                stale.append((approval, chain_changes(approval.signed_chain, chain)))
        return cls(valid, stale, rejections, settings.LINEAGE_REQUIRED_APPROVALS)


def chain_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Plain-English differences between two signed chains, for 'approval no longer valid'."""
    changes: list[str] = []
    old_sets = {d["key"]: d for d in before.get("datasets", [])}
    new_sets = {d["key"]: d for d in after.get("datasets", [])}
    for key in sorted(old_sets.keys() | new_sets.keys()):
        old, new = old_sets.get(key), new_sets.get(key)
        if old is None:
            changes.append(f"dataset {key} was added")
        elif new is None:
            changes.append(f"dataset {key} was removed")
        else:
            for attr in ("status", "mutated", "content_hash"):
                if old.get(attr) != new.get(attr):
                    changes.append(f"dataset {key} {attr} changed from {old.get(attr)} to {new.get(attr)}")
            quarantine = new.get("quarantine") or {}
            if old.get("quarantine") != new.get("quarantine") and quarantine.get("lifted_at"):
                quarantined, lifted = (
                    datetime.datetime.fromisoformat(quarantine[k]) for k in ("quarantined_at", "lifted_at")
                )
                changes.append(
                    f"dataset {key} was quarantined {quarantined:%Y-%m-%d %H:%M} UTC "
                    f"(lifted {lifted:%Y-%m-%d %H:%M} UTC); it must be signed again"
                )
    old_tag, new_tag = before.get("git_tag") or {}, after.get("git_tag") or {}
    if old_tag.get("moved_to") != new_tag.get("moved_to"):
        changes.append(f"tag {new_tag.get('name')} moved to {str(new_tag.get('moved_to'))[:7]}")
    for key in ("commit", "run", "model_version", "feature_pipeline_version", "validation_report_uri"):
        if before.get(key) != after.get(key):
            changes.append(f"{key.replace('_', ' ')} changed")
    return changes or ["the lineage digest differs"]


def approval_state(trace: Trace) -> ApprovalState:
    """Which signatures count for the chain as it stands now, and why the others no longer do."""
    return ApprovalState.of(trace)


@dataclass(frozen=True)
class ReleaseStatus:
    """The one status a release is shown with everywhere (badge, lists, board, API, evidence)."""

    key: str  # draft, pending, approved, invalidated, rejected, retired
    label: str
    tone: str  # ok, warn, bad, muted: how serious it looks
    detail: str

    @property
    def is_approved(self) -> bool:
        """Approved with enough valid signatures for the chain as it stands: deployable to production."""
        return self.key == "approved"

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "label": self.label, "detail": self.detail}


STATUS_KEYS = ("draft", "pending", "approved", "invalidated", "rejected", "retired")


def release_status(trace: Trace, approvals: ApprovalState | None = None) -> ReleaseStatus:
    """The release's status, from its recorded state and whether its approvals still count."""
    release = trace.release
    state = approvals or approval_state(trace)
    if release.state == Release.State.RETIRED:
        return ReleaseStatus("retired", "Retired", "muted", release.state_reason)
    if release.state == Release.State.REJECTED:
        return ReleaseStatus("rejected", "Rejected", "bad", release.state_reason)
    if release.state == Release.State.DRAFT:
        return ReleaseStatus("draft", "Draft", "muted", "Not submitted for approval yet.")
    if state.is_valid and release.state == Release.State.APPROVED:
        signers = ", ".join(sorted({a.approver_name for a in state.valid}))
        return ReleaseStatus("approved", "Approved", "ok", f"Signed by {signers}.")
    if state.stale or release.state == Release.State.APPROVED:
        changes = "; ".join(state.changes) or (
            f"fewer valid signatures ({len(state.valid)}) than the {state.required} required"
        )
        return ReleaseStatus(
            "invalidated", "Approval invalidated", "bad", f"The approval no longer counts: {changes}. Sign it again."
        )
    return ReleaseStatus(
        "pending",
        "Waiting for approval",
        "warn",
        f"{len({a.approver_id for a in state.valid})} of {state.required} signature(s).",
    )


def signing_refusal(trace: Trace, user: User | AnonymousUser, *, decision: str = "approve") -> Refusal | None:
    """The first rule that stops ``user`` from signing ``decision`` on this release now; None if they may."""
    release = trace.release
    if not isinstance(user, User):
        return Refusal("not_signed_in", "sign in to sign releases")
    name = user.get_username()
    if not has_role(user, ML_LEADS):
        return Refusal("not_ml_lead", f"{name} is not an ML lead; only ML leads sign releases")
    if release.state not in (Release.State.PENDING, Release.State.APPROVED):
        status = release_status(trace)
        return Refusal("wrong_state", f"{release.name} is {status.label.lower()}; it can be signed once submitted")
    if decision == "reject":
        return None
    if release.created_by_id == user.pk:
        return Refusal("four_eyes", f"{name} created {release.name}; another ML lead must approve it")
    run = trace.run
    if settings.LINEAGE_FOUR_EYES_RUN_AUTHOR and run is not None and run.user and run.user == name:
        return Refusal(
            "four_eyes", f"{name} trained {release.name} (MLflow run author); another ML lead must approve it"
        )
    if any(a.approver_id == user.pk and a.signed_digest == trace.digest for a in trace.approvals):
        return Refusal("already_signed", f"{name} has already signed {release.name} as it stands")
    # An approval has as many signatures as LINEAGE_REQUIRED_APPROVALS asks for, no more: when several leads
    # sign at once, the ones past that number are told it is done rather than adding a signature nobody needs.
    # A release whose approval no longer counts (the chain changed) takes signatures again.
    approvals = approval_state(trace)
    if release.state == Release.State.APPROVED and approvals.is_valid:
        signers = ", ".join(sorted({a.approver_name for a in approvals.valid}))
        return Refusal(
            "already_approved",
            f"{release.name} is already approved (signed by {signers}); it needs no further signature",
        )
    missing = trace.missing_for_approval
    if missing:
        links = ", ".join(link.label.lower() for link in missing)
        return Refusal("incomplete_chain", f"{release.name} has an incomplete chain: missing {links}")
    for version in trace.dataset_versions:
        if version.is_quarantined:
            return Refusal("quarantined_data", f"{release.name} was trained on {version.key}, which is quarantined")
        if version.mutated:
            return Refusal("mutated_data", f"{release.name} used {version.key}, which was changed in place")
    tag = release.git_tag
    if tag is not None and tag.moved:
        return Refusal("moved_tag", f"tag {tag.name} moved after {release.name} was cut; cut a new release")
    if not release.validation_report_uri:
        return Refusal("no_validation_report", f"{release.name} has no validation report")
    return None


@dataclass(frozen=True)
class ApprovalQueue:
    """Releases waiting for approval as one person sees them: those they may approve, and why not the others."""

    ready: list[Trace]
    blocked: list[tuple[Trace, Refusal]]


def approval_queue(user: User | AnonymousUser, *, limit: int = 200) -> ApprovalQueue:
    """Every release waiting for approval, longest waiting first, split by ``signing_refusal`` (fixed queries)."""
    waiting = traced_releases().filter(state=Release.State.PENDING).order_by("state_changed_at", "pk")[:limit]
    ready: list[Trace] = []
    blocked: list[tuple[Trace, Refusal]] = []
    for trace in map(Trace, waiting):
        refusal = signing_refusal(trace, user)
        if refusal is None:
            ready.append(trace)
        else:
            blocked.append((trace, refusal))
    return ApprovalQueue(ready, blocked)


def awaiting_signature(user: User | AnonymousUser, *, limit: int = 200) -> list[Trace]:
    """Releases waiting for approval that ``user`` may approve now, longest waiting first."""
    return approval_queue(user, limit=limit).ready


def promotion_refusal(trace: Trace, endpoint: Endpoint) -> Refusal | None:
    """Why the release may not go live on ``endpoint`` (None when it may): production takes approved only."""
    release = trace.release
    status = release_status(trace)
    if status.key == "retired":
        return Refusal("retired", f"{release.name} is retired; a retired release is never deployed")
    if not endpoint.is_production or status.is_approved:
        return None
    if status.key == "invalidated":
        return Refusal(
            "promotion_gate",
            f"{release.name}'s approval is no longer valid ({status.detail}); it must be approved again",
        )
    return Refusal(
        "promotion_gate",
        f"{release.name} is {status.label.lower()}, not approved; production endpoints only take approved releases",
    )
