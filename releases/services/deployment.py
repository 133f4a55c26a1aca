"""Writes for endpoints and deployments: declare an endpoint, record a deployment (promotion gate), roll back."""

from __future__ import annotations

import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit import log
from audit.log import Actor, actor_label
from releases import dispatch, lineage
from releases.errors import Conflict, InvalidInput, RuleViolation
from releases.models import Deployment, Endpoint, EndpointModel, ModelVersion, RegisteredModel, Release
from releases.models.code import name_validator
from releases.models.registry import alias_problem
from releases.roles import ML_LEADS, ON_CALL, RELEASE_MANAGERS, require_role
from releases.services import refusals, writeback
from releases.services.experiment import reach_endpoint
from releases.services.validation import check, require_reason

NAME_MAX = Endpoint._meta.get_field("name").max_length or 100
ALIAS_MAX = Endpoint._meta.get_field("mlflow_alias").max_length or 100


def declare_endpoint(
    *, name: str, environment: str, registered_model: str = "", mlflow_alias: str = "", description: str = "", by: Actor
) -> tuple[Endpoint, bool]:
    """Declare an endpoint: its environment, the registered model it serves and the MLflow alias serving follows.

    The same declaration again returns the endpoint (False: nothing written); different values under its
    name are refused, naming what differs. A description is compared only when one is given.
    """
    with refusals.recorded(
        "endpoint.creation_refused",
        by=by,
        object_type="endpoint",
        object_key=name,
        environment=environment,
        registered_model=registered_model,
        mlflow_alias=mlflow_alias,
    ):
        require_role(by, RELEASE_MANAGERS, ML_LEADS, to="declare an endpoint")
        check(name_validator, name, "endpoint name")
        if len(name) > NAME_MAX:
            raise InvalidInput(f"an endpoint name has at most {NAME_MAX} characters, not {len(name)}")
        if environment not in Endpoint.Environment.values:
            raise InvalidInput(
                f"environment must be one of {', '.join(Endpoint.Environment.values)}, not {environment!r}",
                rule="unknown_environment",
            )
        model = _registered_model(registered_model, mlflow_alias)
        declared = {"environment": environment, "mlflow_alias": mlflow_alias, "description": description}
        with transaction.atomic():
            # get_or_create: a second declaration racing this one finds the row and is compared with it.
            endpoint, created = Endpoint.objects.select_related("registered_model").get_or_create(
                name=name, defaults={**declared, "registered_model": model}
            )
            if not created:
                _refuse_different_endpoint(endpoint, registered_model=registered_model, **declared)
                return endpoint, False
            log.record(
                "endpoint.created", actor=by, subject=endpoint, new={**declared, "registered_model": registered_model}
            )
    return endpoint, True


def create_endpoint(
    *, name: str, environment: str, registered_model: str = "", mlflow_alias: str = "", description: str = "", by: Actor
) -> Endpoint:
    """``declare_endpoint``, for callers that need the endpoint and not whether it was new."""
    endpoint, _ = declare_endpoint(
        name=name,
        environment=environment,
        registered_model=registered_model,
        mlflow_alias=mlflow_alias,
        description=description,
        by=by,
    )
    return endpoint


def _registered_model(name: str, alias: str) -> RegisteredModel | None:
    """The registered model an endpoint serves, checked with the alias it follows on that model."""
    if alias:
        if not name:
            raise InvalidInput(
                f"the alias {alias!r} is an alias of a registered model: name the model too", rule="alias_needs_model"
            )
        if len(alias) > ALIAS_MAX:
            raise InvalidInput(f"an MLflow alias has at most {ALIAS_MAX} characters here, not {len(alias)}")
        if problem := alias_problem(alias):
            raise InvalidInput(f"MLflow would refuse the alias: {problem}", rule="mlflow_alias")
    if not name:
        return None
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise InvalidInput(
            f"registered model {name!r} is not known; sync the MLflow server it is registered on first",
            rule="unknown_model",
        )
    return model


def _refuse_different_endpoint(
    endpoint: Endpoint, *, environment: str, registered_model: str, mlflow_alias: str, description: str
) -> None:
    """Refuse a declaration under ``endpoint``'s name that differs from it, naming each difference."""
    compared = [
        ("environment", endpoint.environment, environment),
        ("registered model", endpoint.registered_model.name if endpoint.registered_model else "", registered_model),
        ("MLflow alias", endpoint.mlflow_alias, mlflow_alias),
    ]
    differences = [
        f"{what} {_shown(recorded)} (not {_shown(declared)})"
        for what, recorded, declared in compared
        if recorded != declared
    ]
    if description and description != endpoint.description:
        differences.append("another description")
    if differences:
        raise Conflict(
            f"endpoint {endpoint.name} already exists with {', '.join(differences)}; declare a new endpoint name",
            rule="immutable_endpoint",
        )


def _shown(value: str) -> str:
    return repr(value) if value else "none"


# A reported time this far ahead of ours is a CI runner's clock, not a deployment in the future.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def _check_time(endpoint: Endpoint, release: Release, at: datetime.datetime | None, *, backfill: bool) -> None:
    """A deployment happened while its release existed (on production: once it was approved), and not later than now.

    History from before that (a release recorded after it went live) is a backfill: its own action.
    """
    if at is None:
        if backfill:
            raise InvalidInput("a backfilled deployment needs the time it happened", rule="backfill_needs_time")
        return
    if at > timezone.now() + CLOCK_SKEW:
        raise InvalidInput("a deployment cannot be recorded in the future", rule="future_deployment")
    if backfill:
        return
    if at < release.created_at:
        raise RuleViolation(
            f"{release.name} was created at {release.created_at:%Y-%m-%d %H:%M:%S} UTC; a deployment cannot be "
            f"dated {at:%Y-%m-%d %H:%M:%S} UTC, before it existed (record past history as a backfill)",
            rule="before_release",
        )
    approved = release.state == Release.State.APPROVED and endpoint.environment == Endpoint.Environment.PRODUCTION
    if approved and release.state_changed_at is not None and at < release.state_changed_at:
        raise RuleViolation(
            f"{release.name} was approved at {release.state_changed_at:%Y-%m-%d %H:%M:%S} UTC; it cannot have gone "
            f"live on production at {at:%Y-%m-%d %H:%M:%S} UTC, before that (record past history as a backfill)",
            rule="before_approval",
        )


def _record(
    endpoint: Endpoint,
    release: Release,
    *,
    by: Actor,
    kind: str,
    source: str,
    reason: str,
    at: datetime.datetime | None,
    backfill: bool = False,
) -> Deployment:
    _check_time(endpoint, release, at, backfill=backfill)
    trace = lineage.trace(release.name)
    refusal = lineage.promotion_refusal(trace, endpoint)
    if refusal is not None:
        raise RuleViolation(refusal.message, rule=refusal.rule)
    with transaction.atomic():
        # Lock the endpoint: two deployments racing on one endpoint are recorded one after the other. FOR NO KEY
        # UPDATE, which rows that name the endpoint (a sync adding where a dataset version reached) do not wait for.
        Endpoint.objects.select_for_update(no_key=True).filter(pk=endpoint.pk).first()
        # Then where the release's data reached: the endpoint, then the model version and its run, as a rollback.
        reach_endpoint(trace.model_version, endpoint.pk)
        # Take the time under the lock, so it is never earlier than the deployment that held the lock before.
        # A reported time a little ahead of ours (a CI runner's clock) counts as now: a deployment dated in
        # the future would not show as live until then, and every page would keep showing the old release.
        locked_now = timezone.now()
        when = min(at, locked_now) if at is not None else locked_now
        live = Deployment.objects.filter(endpoint=endpoint).live_at(when).first()
        if live is not None and live.release_id == release.pk and live.kind == kind == Deployment.Kind.DEPLOY:
            # The same report twice (a CI retry, a double click): one event, not two.
            return live
        deployment = Deployment.objects.create(
            endpoint=endpoint,
            release=release,
            deployed_at=when,
            actor=actor_label(by),
            actor_user=by if isinstance(by, User) else None,
            kind=kind,
            reason=reason,
            source=source,
        )
        EndpointModel.objects.bulk_create(
            [EndpointModel(registered_model_id=trace.model_version.registered_model_id, endpoint=endpoint)],
            ignore_conflicts=True,
        )
        log.record(
            "deployment.rolled_back"
            if kind == Deployment.Kind.ROLLBACK
            else ("deployment.backfilled" if backfill else "deployment.recorded"),
            actor=by,
            subject=endpoint,
            new={
                "release": release.name,
                "kind": kind,
                "source": source,
                "deployed_at": deployment.deployed_at.isoformat(),
            },
            reason=reason,
        )
        dispatch.after_commit(dispatch.ISSUE_CHECKPOINT)
        # Never later than now, each deployment is dated at or before the time taken under the lock: the newest
        # up to now is the newest of all, what the endpoint keeps as live now (it is this one unless a backfill).
        live_now = Deployment.objects.filter(endpoint=endpoint).live_at(locked_now).first()
        assert live_now is not None
        Endpoint.objects.filter(pk=endpoint.pk).update(
            live_deployment_now=live_now, live_release_now_id=live_now.release_id
        )
        if not backfill and source != Deployment.Source.MLFLOW_ALIAS and live_now == deployment:
            # Serving follows the MLflow alias: move it when this deployment is what is live now (a report a
            # few minutes late included), unless the alias is where this came from. History never moves it.
            writeback.queue_alias_move(endpoint, release, by=by, reason=f"{kind} of {release.name}")
    return deployment


def record_deployment(
    endpoint: Endpoint,
    release: Release,
    *,
    by: Actor,
    source: str,
    reason: str = "",
    at: datetime.datetime | None = None,
    backfill: bool = False,
) -> Deployment:
    """Record that ``release`` went live on ``endpoint``. Production only takes validly approved releases.

    ``at`` may be a little late (never before the release existed, or on production before its approval);
    ``backfill`` records older history, with the reason, as its own audited action that moves no alias.
    """
    with refusals.recorded(
        "deployment.refused",
        by=by,
        subject=endpoint,
        release=release.name,
        kind=Deployment.Kind.DEPLOY,
        backfill=backfill,
    ):
        require_role(by, RELEASE_MANAGERS, ML_LEADS, to="backfill a deployment" if backfill else "record a deployment")
        if backfill:
            reason = require_reason(reason, "backfill a deployment")
        return _record(
            endpoint,
            release,
            by=by,
            kind=Deployment.Kind.DEPLOY,
            source=source,
            reason=reason,
            at=at,
            backfill=backfill,
        )


def follow_alias(endpoint: Endpoint, version: ModelVersion, *, by: Actor) -> Deployment | None:
    """The MLflow alias an endpoint follows now points at ``version``: record its release as deployed.

    The release is the version's active one (a version has at most one); None when it is live already.
    A version no release names, or one the promotion gate refuses, is refused with the reason.
    """
    refusals.check_role("deployment.refused", by=by, subject=endpoint, to="follow an MLflow alias")
    alias = f"{endpoint.registered_model}@{endpoint.mlflow_alias}"
    release = (
        Release.objects.filter(model_version=version)
        .exclude(state=Release.State.RETIRED)
        .order_by("-created_at", "-pk")
        .first()
    )
    if release is None:
        raise RuleViolation(
            f"{alias} moved to version {version.version}, which no release names; no deployment recorded",
            rule="unreleased_version",
        )
    live = Deployment.objects.filter(endpoint=endpoint).live_at(timezone.now()).first()
    if live is not None and live.release_id == release.pk:
        return None
    return record_deployment(
        endpoint,
        release,
        by=by,
        source=Deployment.Source.MLFLOW_ALIAS,
        reason=f"MLflow alias {alias} moved to version {version.version}",
    )


def roll_back(endpoint: Endpoint, *, by: Actor, reason: str, source: str, expected_target: str = "") -> Deployment:
    """Restore the endpoint's rollback target, recorded as a rollback with its reason.

    ``expected_target`` is the release the person confirmed; if the target changed meanwhile
    (someone else rolled back first) nothing is recorded and the refusal says what is live now.
    """
    with refusals.recorded(
        "deployment.rollback_refused",
        by=by,
        subject=endpoint,
        expected_target=expected_target,
    ):
        require_role(by, ON_CALL, ML_LEADS, to="roll back an endpoint")
        reason = require_reason(reason, "roll back")
        with transaction.atomic():
            # Decide the target under the endpoint lock: two rollbacks at once must not walk back two releases.
            Endpoint.objects.select_for_update(no_key=True).filter(pk=endpoint.pk).first()
            [status] = lineage.endpoint_statuses(
                Endpoint.objects.filter(pk=endpoint.pk), traced=lineage.Traced.LIVE_AND_ROLLBACK
            )
            target = status.rollback_target
            if expected_target and (target is None or target.name != expected_target):
                live = status.live
                now_live = (
                    f"{live.release.name} ({live.kind} by {live.actor} at {live.deployed_at:%H:%M:%S} UTC)"
                    if live
                    else "nothing"
                )
                raise RuleViolation(
                    f"{endpoint.name} changed since you confirmed: live now is {now_live}; "
                    f"the rollback target is no longer {expected_target}",
                    rule="rollback_target_changed",
                )
            if target is None:
                raise RuleViolation(
                    f"{endpoint.name} has no rollback target: {status.rollback_blocker}", rule="no_rollback_target"
                )
            return _record(
                endpoint, target, by=by, kind=Deployment.Kind.ROLLBACK, source=source, reason=reason, at=None
            )
