"""Every service that writes checks the actor's role, whatever door calls it.

The write services are found, not listed: every public function of ``releases.services`` modules (and
``releases.evidence``) that takes the acting ``by`` is one, and ``test_every_write_service_is_covered``
fails until a new one has a call below saying who may make it. Each is then called as every persona:
those allowed succeed; everyone else is refused with exactly one refusal event and no other row written.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

import releases.services
from audit.models import AuditEvent, VerificationRun
from releases import evidence, lineage, services
from releases.errors import PermissionRefused
from releases.models import Deployment, RegisteredModel, SyncState
from releases.models.credentials import GitCredentials, MlflowCredentials
from releases.roles import ML_LEADS
from releases.services import accounts, writeback
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, World, sha_of
from tests.unit.conftest import MEANING

PERSONAS = ("lead", "auditor", "oncall", "relman", "norole", "inactive", "admin")
ADMIN = frozenset({"admin"})  # administrators and the system (sync jobs, commands) only
LEADS = frozenset({"lead", "admin"})
WRITERS = frozenset({"relman", "lead", "admin"})
ROLLERS = frozenset({"oncall", "lead", "admin"})
CHANGERS = frozenset({"relman", "lead", "oncall", "admin"})
SYNCERS = frozenset({"lead", "oncall", "admin"})
EXPORTERS = frozenset({"auditor", "lead", "admin"})

# Public functions that take no actor: reads, and one step only the Git sync takes.
NOT_WRITES = {
    "code.resolve_commit": "read",
    "code.resolve_commits": "read",
    "data.hash_file": "read (a file's hash)",
    "features.feature_pipeline_version": "a step of record_runs, which checks the role first",
    "code.record_commits": "copies Git's own facts inside the Git sync; no door calls it",
    "code.record_commit_columns": "record_commits for the Git sync's stream of columns; no door calls it",
    "experiment.keep_dataset_links": "keeps derived links equal to run inputs, inside record_runs' and the "
    "model version registration's transactions, which check the role",
    "experiment.reach_endpoint": "keeps the derived endpoints a dataset version reached, inside the transaction "
    "of record_deployment and roll_back, which check the role",
    "validation.check": "input check",
    "validation.require_reason": "input check",
    "accounts.is_locked_out": "read",
    "evidence.period.build_requested_evidence": "the worker's half of request_period_evidence: builds as the "
    "requester through export_period_evidence, which checks their role again",
    "evidence.period.expire_bundles": "housekeeping on the worker: deletes expired files, records nothing",
    "evidence.period.period_key": "how the log names a period",
    "sources.serve_sync_requests": "queues a task for deliveries queue_sync_request kept, which checked the role",
    "sources.serving_queued_key": "a cache key",
    "sources.serving_started": "clears that cache key as a sync, which holds the source, reads the queue",
    "sources.serve_what_still_waits": "queues a task for deliveries queue_sync_request kept, which checked the role",
    "accounts.refuse_if_locked_out": "check, inside sign_release",
    "accounts.count_wrong_signing_password": "a step of sign_release, after its role check",
    "accounts.record_sign_in": "the person's own sign-in (the login signal), recorded for anyone",
    "accounts.record_sign_out": "the person's own sign-out, recorded for anyone",
    "accounts.record_sign_in_failure": "a failed sign-in by anyone, recorded as evidence",
    "accounts.record_lockout": "a lockout, recorded as evidence",
    "sources.record_sync_failing": "the sync's own bookkeeping: a source failing past LINEAGE_SYNC_ALERT_MINUTES, "
    "recorded once per incident as the sync itself; no door calls it",
    "sources.record_sync_recovered": "the sync's own bookkeeping: that incident's end, when the source syncs again",
}

PENDING: set[str] = set()
# Writes with an actor that no door calls: they record what happened elsewhere.
SIGNAL_ONLY = {"accounts.record_lock_cleared": "records a lock axes cleared itself (its signal); no door calls it"}


@dataclass(frozen=True)
class Call:
    allowed: frozenset[str]
    run: Callable[[dict[str, Any], User], object]


def _run(name: str, number: int) -> services.RunData:
    return services.RunData(run_id=sha_of(f"{name}-{number}")[:32], experiment_id="1", name=name, status="FINISHED")


CALLS: dict[str, Call] = {
    "access.create_api_token": Call(
        ADMIN, lambda w, by: services.create_api_token(w["visitor"], name="ci", scopes=["read"], by=by)
    ),
    "accounts.unlock_account": Call(ADMIN, lambda w, by: accounts.unlock_account("lead", by=by, reason="called")),
    "access.revoke_api_token": Call(ADMIN, lambda w, by: services.revoke_api_token(w["token"], by=by, reason="leak")),
    "integrity.acknowledge_alarm": Call(
        ADMIN, lambda w, by: services.acknowledge_alarm(w["failed_run"], note="restored", by=by)
    ),
    "inventory.describe_model": Call(
        LEADS,
        lambda w, by: services.describe_model(
            RegisteredModel.objects.get(name="churn-model"), owner="Retention", purpose="Churn scores", by=by
        ),
    ),
    "access.grant_role": Call(ADMIN, lambda w, by: services.grant_role(w["visitor"], "auditors", by=by)),
    "access.revoke_role": Call(ADMIN, lambda w, by: services.revoke_role(w["auditor"], "auditors", by=by)),
    "code.record_tags": Call(
        ADMIN, lambda w, by: services.record_tags(w["world"].repo, {"model-churn-v98": w["sha"]}, by=by)
    ),
    "code.record_tag": Call(
        ADMIN, lambda w, by: services.record_tag(w["world"].repo, name="model-churn-v99", sha=w["sha"], by=by)
    ),
    "data.register_dataset_version": Call(
        WRITERS,
        lambda w, by: services.register_dataset_version(
            name="churn-train", version=99, uri="s3://d/99", content_hash="sha256:" + "a" * 64, by=by
        ),
    ),
    "data.quarantine_dataset_version": Call(
        LEADS, lambda w, by: services.quarantine_dataset_version(w["dv17"], by=by, reason="bad labels")
    ),
    "data.lift_quarantine": Call(LEADS, lambda w, by: services.lift_quarantine(w["holdout"], by=by, reason="fixed")),
    "data.observe_digest": Call(
        ADMIN, lambda w, by: services.observe_digest(w["dv17"], digest="md5:other", source="test", by=by)
    ),
    "deployment.create_endpoint": Call(
        WRITERS, lambda w, by: services.create_endpoint(name="churn-new", environment="staging", by=by)
    ),
    "deployment.declare_endpoint": Call(
        WRITERS,
        lambda w, by: services.declare_endpoint(
            name="churn-new", environment="staging", registered_model="churn-model", mlflow_alias="champion", by=by
        ),
    ),
    "deployment.record_deployment": Call(
        WRITERS,
        lambda w, by: services.record_deployment(w["shadow"], w["v43"], by=by, source=Deployment.Source.UI),
    ),
    "deployment.follow_alias": Call(ADMIN, lambda w, by: services.follow_alias(w["follower"], w["mv43"], by=by)),
    "deployment.roll_back": Call(
        ROLLERS,
        lambda w, by: services.roll_back(w["production"], by=by, reason="INC-311", source=Deployment.Source.UI),
    ),
    "experiment.record_run": Call(ADMIN, lambda w, by: services.record_run(w["world"].server, _run("r", 1), by=by)),
    "experiment.record_runs": Call(
        ADMIN, lambda w, by: services.record_runs(w["world"].server, [_run("r", 2), _run("r", 3)], by=by)
    ),
    "registry.register_model_version": Call(
        ADMIN,
        lambda w, by: services.register_model_version(
            w["world"].server, services.ModelVersionData(name="churn-model", version=99), by=by
        ),
    ),
    "registry.register_model_versions": Call(
        ADMIN,
        lambda w, by: services.register_model_versions(
            w["world"].server, [services.ModelVersionData(name="churn-model", version=98)], by=by
        ),
    ),
    "release.create_release": Call(
        WRITERS, lambda w, by: services.create_release(name="churn-v44", model_version="churn-model/44", by=by)
    ),
    "release.release_from_tag": Call(
        ADMIN, lambda w, by: services.release_from_tag("churn-v44", "churn-model/44", by=by)
    ),
    "release.submit_release": Call(WRITERS, lambda w, by: services.submit_release(w["v45"], by=by)),
    "release.sign_release": Call(
        frozenset({"lead"}),  # a signature needs the role itself: a superuser is not an ML lead
        lambda w, by: services.sign_release(
            w["v43"],
            by=by,
            decision="approve",
            password=PASSWORD,
            meaning=MEANING,
            expected_digest=lineage.trace("churn-v43").digest,
        ),
    ),
    "release.retire_release": Call(WRITERS, lambda w, by: services.retire_release(w["v45"], by=by, reason="dropped")),
    "sources.add_git_repository": Call(
        LEADS, lambda w, by: services.add_git_repository(name="other", url="/srv/git/other.git", by=by)
    ),
    "sources.add_mlflow_server": Call(
        LEADS, lambda w, by: services.add_mlflow_server(name="other", tracking_uri="http://127.0.0.1:5001", by=by)
    ),
    "sources.set_git_credentials": Call(
        LEADS,
        # The world's repository is a local path, which takes no credential: removing none is the write.
        lambda w, by: services.set_git_credentials(w["world"].repo, credentials=GitCredentials(), by=by),
    ),
    "sources.set_mlflow_credentials": Call(
        LEADS,
        lambda w, by: services.set_mlflow_credentials(
            w["world"].server, credentials=MlflowCredentials(token_env="MLFLOW_TOKEN"), by=by
        ),
    ),
    "sources.set_interval": Call(LEADS, lambda w, by: services.set_interval(w["sync"], seconds=3600, by=by)),
    "sources.request_sync": Call(SYNCERS, lambda w, by: services.request_sync(w["sync"], by=by)),
    "sources.record_served_requests": Call(ADMIN, lambda w, by: services.record_served_requests(w["sync"], [], by=by)),
    "sources.queue_sync_request": Call(
        ADMIN,
        lambda w, by: services.queue_sync_request(
            w["sync"], delivery_id="d-1", event="model_version.created", model_name="churn-model", by=by
        ),
    ),
    "webhooks.add_webhook": Call(
        ADMIN,
        lambda w, by: services.add_webhook(
            name="pager", url="https://hooks.example.com/pager", secret_env="LINEAGE_WEBHOOK_SECRET_PAGER", by=by
        ),
    ),
    "webhooks.change_webhook": Call(
        ADMIN,
        lambda w, by: services.change_webhook(
            w["webhook"],
            url="https://hooks.example.com/v2",
            events=["release.submitted"],
            format="json",
            secret_env="LINEAGE_WEBHOOK_SECRET_OPS",
            active=False,
            by=by,
        ),
    ),
    "writeback.queue_alias_move": Call(
        CHANGERS, lambda w, by: writeback.queue_alias_move(w["follower"], w["v43"], by=by, reason="deploy")
    ),
    "writeback.queue_release_tag": Call(CHANGERS, lambda w, by: writeback.queue_release_tag(w["v42"], by=by)),
    "evidence.release.export_evidence": Call(EXPORTERS, lambda w, by: evidence.export_evidence(w["v42"], by=by)),
    "evidence.period.export_period_evidence": Call(
        EXPORTERS, lambda w, by: evidence.export_period_evidence(_recent(), ["production"], by=by)
    ),
    "evidence.period.request_period_evidence": Call(
        EXPORTERS, lambda w, by: evidence.request_period_evidence(_recent(), ["production"], by=by)
    ),
}


def _recent() -> lineage.Period:
    """The last three days: the site's two production deployments."""
    return lineage.Period.checked(timezone.now() - datetime.timedelta(days=3), timezone.now())


# The evidence package's building blocks: pure functions that turn records into a bundle's files, called
# only by its export services (which check the role and audit) and never by a door.
EVIDENCE_PARTS = {"documents", "bundle", "standards", "formats"}


def _modules() -> list[ModuleType]:
    services = [f"releases.services.{info.name}" for info in pkgutil.iter_modules(releases.services.__path__)]
    bundles = [
        f"releases.evidence.{info.name}"
        for info in pkgutil.iter_modules(evidence.__path__)
        if info.name not in EVIDENCE_PARTS
    ]
    return [importlib.import_module(name) for name in services + bundles if name != "releases.services.refusals"]


def _public_functions() -> dict[str, Callable[..., Any]]:
    found = {}
    for module in _modules():
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module.__name__ and not name.startswith("_"):
                # services.release.x is "release.x"; evidence.release.x keeps its package to stay apart.
                where = module.__name__.removeprefix("releases.").removeprefix("services.")
                found[f"{where}.{name}"] = function
    return found


def write_services() -> list[str]:
    """Every public service function that acts for someone: it takes ``by``, the actor it audits."""
    return sorted(name for name, f in _public_functions().items() if "by" in inspect.signature(f).parameters)


def test_every_write_service_is_covered():
    writes = set(write_services())
    assert writes - CALLS.keys() - PENDING - SIGNAL_ONLY.keys() == set(), "add a Call saying who may make this write"
    assert set(_public_functions()) - writes - NOT_WRITES.keys() == set(), "a public function writing with no actor"
    assert CALLS.keys() - writes == set(), "a Call for a function that is no longer a write service"


@pytest.fixture
def site(db: Any, lead2: User, release_manager: User) -> dict[str, Any]:
    """Approved churn-v41 and v42 live on production, churn-v43 pending, v44 unreleased, v45 a draft."""
    world = World.create()
    v41 = world.full_release(41, by=release_manager, approver=lead2)
    v42 = world.full_release(42, by=release_manager, approver=lead2, dataset="churn-train:18")
    dv17 = world.dataset("churn-train:17")
    mv43 = world.model_version("churn-model/43", commit=world.commit("v43"), datasets=("churn-train:17",))
    v43 = services.submit_release(world.release("churn-v43", mv43, by=release_manager), by=release_manager)
    world.model_version("churn-model/44", commit=world.commit("v44"), datasets=("churn-train:17",))
    mv45 = world.model_version("churn-model/45", commit=world.commit("v45"), datasets=("churn-train:17",))
    production = world.endpoint("churn-scoring")
    world.deploy(production, v41, by=release_manager, hours_ago=48)
    world.deploy(production, v42, by=release_manager, hours_ago=1)
    holdout = world.dataset("churn-holdout:3")
    services.quarantine_dataset_version(holdout, by=SYSTEM, reason="bad labels")
    return {
        "world": world,
        "v42": v42,
        "v43": v43,
        "mv43": mv43,
        "v45": world.release("churn-v45", mv45, by=release_manager),
        "dv17": dv17,
        "holdout": holdout,
        "production": production,
        "shadow": world.endpoint("churn-shadow", "staging"),
        "sync": SyncState.objects.get(repository=world.repo),
        "sha": v42.model_version.run.commit_sha,
        "follower": services.create_endpoint(
            name="churn-follow",
            environment="staging",
            registered_model="churn-model",
            mlflow_alias="champion",
            by=SYSTEM,
        ),
        "visitor": User.objects.create_user("visitor", password=PASSWORD),
        "token": services.create_api_token(release_manager, name="ci", scopes=["read"], by=SYSTEM)[0],
        "webhook": services.add_webhook(
            name="ops", url="https://hooks.example.com/ops", secret_env="LINEAGE_WEBHOOK_SECRET_OPS", by=SYSTEM
        )[0],
        "failed_run": VerificationRun.objects.create(
            ran_at=timezone.now(), trigger="schedule", ok=False, broken_seq=3, problem="event #3 was rewritten"
        ),
    }


def _people(request: pytest.FixtureRequest) -> dict[str, User]:
    inactive = User.objects.create_user("former", password=PASSWORD, is_active=False)
    inactive.groups.add(Group.objects.get_or_create(name=ML_LEADS)[0])
    return {
        "lead": request.getfixturevalue("lead"),
        "auditor": request.getfixturevalue("auditor"),
        "oncall": request.getfixturevalue("oncall"),
        "relman": request.getfixturevalue("release_manager"),
        "norole": User.objects.get(username="visitor"),
        "inactive": inactive,
        "admin": User.objects.create_superuser("root", password=PASSWORD),
    }


def _rows() -> dict[str, int]:
    counted = [*apps.get_app_config("releases").get_models(), User.groups.through]
    return {model._meta.label: model.objects.count() for model in counted}


def _outcome(name: str, call: Call, persona: str, user: User, site: dict[str, Any]) -> list[str]:
    rows, last = _rows(), AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    try:
        call.run(site, user)
    except PermissionRefused as refused:
        if persona in call.allowed:
            return [f"{persona} was refused: {refused.message}"]
        events = list(AuditEvent.objects.filter(seq__gt=last))
        problems = []
        if len(events) != 1 or not events[0].action.endswith("refused") or events[0].reason != refused.message:
            problems.append(f"{persona}: expected one refusal event, got {[(e.action, e.reason) for e in events]}")
        if _rows() != rows:
            problems.append(f"{persona}: rows were written by a refused call")
        return problems
    if persona not in call.allowed:
        return [f"{persona} was allowed"]
    return []


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_write_checks_the_role(site, request, name):
    call, problems = CALLS[name], []
    site["auditor"] = request.getfixturevalue("auditor")
    for persona, user in _people(request).items():
        # Each persona starts from the same site: its call runs in a savepoint rolled back afterwards.
        with transaction.atomic():
            problems += [f"{name}: {p}" for p in _outcome(name, call, persona, user, site)]
            transaction.set_rollback(True)
    assert problems == []
