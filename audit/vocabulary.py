"""The audit vocabulary: every action the log may record, registered once with what it means in plain words,
and the one function that names the object an event is about.

``audit.log.record`` refuses an action that is not registered here, so pages, filters and exports can
always say what an event means, and a typo cannot start a new, unexplained kind of event.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from django.contrib.auth.models import AbstractBaseUser

ACTIONS: dict[str, str] = {}

# Actions whose events carry a signed decision (``audit.verifier.approval_statement`` and its signature):
# the log alone proves who signed what, so a forged one is caught even before a checkpoint covers it.
SIGNED_DECISIONS: dict[str, str] = {"release.approved": "approved", "release.rejected": "rejected"}


# Events announced outside the product: signed webhooks to subscribers, and an email asking the ML leads for a
# signature. Each stands for one audit action, announced when an event of that action is recorded, so what goes
# out is the log itself seen from outside. The event type a subscriber picks: (the action, what it means).
OUTBOUND_EVENTS: dict[str, tuple[str, str]] = {
    "release.submitted": ("release.submitted", "A release was submitted and is waiting for a signature."),
    "release.approved": ("release.state_changed", "A release has every approval it needs: it is approved."),
    "release.rejected": ("release.rejected", "An ML lead signed a rejection of a release."),
    "release.approval_invalidated": (
        "release.approval_invalidated",
        "An approved release's approval stopped counting: its chain changed (data quarantined or changed in place).",
    ),
    "deployment.deployed": ("deployment.recorded", "A release went live on an endpoint."),
    "deployment.rolled_back": ("deployment.rolled_back", "An endpoint was rolled back to an earlier release."),
    "dataset_version.quarantined": ("dataset_version.quarantined", "A dataset version was quarantined."),
    "sync.failing": ("sync.failing", "A source has failed to sync for longer than the alert threshold."),
    "sync.recovered": ("sync.recovered", "A source reported failing syncs again."),
    "audit.verification_failed": (
        "audit.verification_failed",
        "A verification of the audit log failed (announced once until an administrator acknowledges it).",
    ),
}
# The other way round: the outbound event type an action is announced as.
ANNOUNCED: dict[str, str] = {action: event for event, (action, _) in OUTBOUND_EVENTS.items()}


class UnknownAction(ValueError):
    """An event named with an action that the vocabulary does not register."""


def register(name: str, description: str) -> str:
    """Add ``name`` to the vocabulary (once) with its plain-words description."""
    if name in ACTIONS and ACTIONS[name] != description:
        raise ValueError(f"audit action {name} is already registered with another description")
    ACTIONS[name] = description
    return name


def describe(name: str) -> str:
    """What an action means, in words an auditor reads; an unregistered name is said to be unknown."""
    return ACTIONS.get(name, f"unregistered action {name}")


def check(name: str) -> str:
    if name not in ACTIONS:
        raise UnknownAction(f"audit action {name!r} is not registered in audit/vocabulary.py")
    return name


class Audited(Protocol):
    """A model the log can name: its kind of object and its natural key, as people type it."""

    audit_type: ClassVar[str]

    @property
    def audit_key(self) -> str: ...


def object_ref(obj: Any) -> tuple[str, str]:
    """The (type, key) an event about ``obj`` is filed under: ``("release", "churn-v42")``.

    ``Audited`` is asked as its members, not with ``isinstance``: a runtime protocol check collects the
    protocol's attributes on every call (about 24 microseconds, against 0.2), and a release's page names some
    twenty objects.
    """
    if isinstance(obj, AbstractBaseUser):
        return "user", obj.get_username()
    if hasattr(obj, "audit_type") and hasattr(obj, "audit_key"):
        return obj.audit_type, obj.audit_key
    raise TypeError(f"{type(obj).__name__} does not say how the audit log names it (audit_type, audit_key)")


for _name, _description in (
    # The chain.
    ("git_repository.added", "A Git repository was added as a source to sync from."),
    ("git_repository.add_refused", "Adding a Git repository was refused."),
    ("git_tag.created", "A Git tag was seen for the first time."),
    ("git_tag.moved", "A Git tag now points at another commit; releases cut from it keep the first."),
    ("git_tag.record_refused", "Recording where a Git tag points was refused."),
    ("git_tag.restored", "A moved Git tag points back at the commit it first named."),
    ("tracking_server.added", "An MLflow tracking server was added as a source to sync from."),
    ("tracking_server.add_refused", "Adding an MLflow tracking server was refused."),
    ("git_repository.credentials_changed", "Where the sync reads a Git repository's credential changed."),
    ("git_repository.credentials_refused", "Changing where a Git repository's credential is read was refused."),
    ("tracking_server.credentials_changed", "Where the sync reads an MLflow server's credential changed."),
    ("tracking_server.credentials_refused", "Changing where an MLflow server's credential is read was refused."),
    ("dataset_version.registered", "A dataset version was registered with its content hash."),
    ("dataset_version.registration_refused", "Registering a dataset version was refused."),
    ("dataset_version.quarantined", "A dataset version was quarantined: nothing trained on it may be approved."),
    ("dataset_version.quarantine_refused", "Quarantining a dataset version was refused."),
    ("dataset_version.quarantine_lifted", "A dataset version's quarantine was lifted."),
    ("dataset_version.quarantine_lift_refused", "Lifting a dataset version's quarantine was refused."),
    ("dataset_version.digest_refused", "Recording a digest reported for a dataset version was refused."),
    ("dataset_version.mutation_detected", "A dataset version was reported with different content (changed in place)."),
    ("run.created", "An MLflow run was recorded."),
    ("run.updated", "An MLflow run's recorded details changed."),
    ("run.record_refused", "Recording an MLflow run was refused."),
    ("model_version.registered", "A model registry version was recorded."),
    ("model_version.updated", "A model registry version's aliases, tags or missing run link changed."),
    ("model_version.registration_refused", "A model version contradicting the record was refused."),
    ("model.described", "An ML lead set a model's owner and purpose in the inventory."),
    ("model.description_refused", "Setting a model's owner and purpose was refused."),
    # Releases and signatures.
    # The log itself.
    ("audit.verification_failed", "A verification of the audit log found it broken; every page shows the alarm."),
    ("audit.alarm_acknowledged", "An administrator acknowledged a failed verification of the audit log."),
    ("audit.acknowledgment_refused", "Acknowledging a failed verification was refused."),
    (
        "model_version.source_conflict",
        "An MLflow server reported a registered model that another server owns; it was left untouched.",
    ),
    ("release.created", "A release was created."),
    ("release.creation_refused", "Creating a release was refused."),
    ("release.submitted", "A release was submitted for approval; its lineage digest was frozen."),
    ("release.submission_refused", "Submitting a release for approval was refused."),
    ("release.approved", "An ML lead signed an approval of the release's chain."),
    ("release.approval_refused", "A signature (approval or rejection) was refused."),
    ("release.state_changed", "A release reached the approvals it needs and became approved."),
    ("release.rejected", "An ML lead signed a rejection of the release."),
    ("release.retired", "A release was retired: never deployed or restored again."),
    ("release.retirement_refused", "Retiring a release was refused."),
    ("release.approval_invalidated", "A release's approval stopped counting because its chain changed."),
    # Endpoints and deployments.
    ("endpoint.created", "An endpoint was declared."),
    ("endpoint.creation_refused", "Declaring an endpoint was refused."),
    ("deployment.recorded", "A release went live on an endpoint."),
    ("deployment.refused", "Recording a deployment was refused (promotion gate, role, bad input)."),
    ("deployment.backfilled", "A past deployment was recorded after the fact, with the reason for the backfill."),
    ("deployment.rolled_back", "An endpoint was rolled back to an earlier release."),
    ("deployment.rollback_refused", "A rollback was refused."),
    # Access.
    ("role.granted", "A person was given a role."),
    ("role.grant_refused", "Granting a role was refused."),
    ("role.revoked", "A role was taken from a person."),
    ("role.revoke_refused", "Revoking a role was refused."),
    ("api_token.created", "An API token was issued."),
    ("api_token.creation_refused", "Issuing an API token was refused."),
    ("api_token.revoked", "An API token was revoked."),
    ("api_token.revoke_refused", "Revoking an API token was refused."),
    ("user.access_changed", "A person's account was changed: active, staff (admin access) or superuser."),
    ("user.permissions_changed", "A person's own permissions (outside any role) changed."),
    ("group.permissions_changed", "What a role (group) may do changed: permissions added or removed."),
    ("group.created", "A group (role) was created."),
    ("group.renamed", "A group (role) was renamed; its members hold what the new name means."),
    ("group.deleted", "A group (role) was deleted; its members lost what it gave them."),
    # Signing in.
    ("auth.signed_in", "A person signed in with their password."),
    ("auth.signed_out", "A person signed out, or the site ended their session."),
    ("auth.sign_in_failed", "A sign-in failed: wrong username or password, or a locked-out account."),
    ("auth.locked_out", "An account was locked after too many wrong passwords (sign-in or signature)."),
    ("auth.unlocked", "An administrator unlocked an account locked after wrong passwords."),
    ("auth.unlock_refused", "Unlocking an account was refused."),
    ("api_token.scope_refused", "An API token was used for a write outside its scopes, and refused."),
    # Sync and MLflow.
    ("sync.requested", "Someone asked for a sync now."),
    ("sync.webhooks_served", "A sync served MLflow webhook deliveries: each one, what it named and when it came."),
    ("sync.request_refused", "A request to sync a source now was refused."),
    ("sync.interval_changed", "How often a source is synced changed."),
    ("sync.interval_refused", "Changing a source's sync interval was refused."),
    ("sync.git.completed", "A Git sync finished with changes."),
    ("sync.mlflow.completed", "An MLflow sync finished with changes."),
    ("sync.failing", "A source has failed every sync for longer than the alert threshold (once per incident)."),
    ("sync.recovered", "A source reported failing synced again."),
    ("webhook.signature_refused", "An MLflow webhook call with a bad or missing signature was refused."),
    ("webhook.replay_refused", "An MLflow webhook delivery already received was sent again and refused."),
    ("mlflow.write_back_queued", "A change owed to MLflow (alias move, release tag) was queued."),
    ("mlflow.write_back_refused", "Queueing a change owed to MLflow was refused."),
    ("mlflow.write_back_applied", "A queued change was applied to MLflow."),
    ("mlflow.write_back_failed", "Applying a change to MLflow failed; it stays queued and is retried."),
    # Outbound events.
    ("webhook_subscription.added", "An administrator added a webhook that receives outbound events."),
    ("webhook_subscription.add_refused", "Adding a webhook was refused."),
    ("webhook_subscription.changed", "An administrator changed a webhook (address, events, format, secret, on/off)."),
    ("webhook_subscription.change_refused", "Changing a webhook was refused."),
    # Evidence.
    ("evidence.exported", "An evidence bundle was exported (one release, or a period's population)."),
    ("evidence.requested", "Evidence for a period was asked for; a worker prepares the bundle."),
    ("evidence.export_refused", "Exporting an evidence bundle was refused."),
):
    register(_name, _description)
