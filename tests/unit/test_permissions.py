"""Who may open every page and press every button: each role, a person with no role, and anonymous visitors.

To cover a new page or action, add a ``Door`` to ``DOORS``; ``test_every_route_is_in_the_matrix`` fails
until every named route of the site and the API has one, and ``test_every_action_names_its_refusal`` until
every action says which audit event its refusal leaves.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django.utils.html import escape

from audit import checkpoints
from audit.models import Acknowledgment, AuditEvent, VerificationRun
from releases import lineage, services
from releases.models import (
    ApiToken,
    DatasetVersion,
    Deployment,
    Endpoint,
    EvidenceExport,
    RegisteredModel,
    Release,
    SyncState,
)
from tests.conftest import PASSWORD
from tests.factories import SYSTEM, World

PERSONAS = ("anonymous", "norole", "lead", "auditor", "oncall", "relman", "admin")
READERS = frozenset({"lead", "auditor", "oncall", "relman", "admin"})
LEADS = frozenset({"lead", "admin"})
ROLLERS = frozenset({"oncall", "lead", "admin"})
WRITERS = frozenset({"relman", "lead", "admin"})
EXPORTERS = frozenset({"auditor", "lead", "admin"})


@dataclass(frozen=True)
class Door:
    """One page or action: who gets through, and what everyone else gets."""

    route: str
    allowed: frozenset[str]
    method: str = "get"
    args: tuple[Any, ...] = ()
    query: str = ""
    # A dict, or a callable giving it when the data depends on the world (a signature's reviewed digest).
    data: dict[str, Any] | Callable[[], dict[str, Any]] = field(default_factory=dict)
    ok: int = 200
    refused: int = 403
    api: bool = False
    public: bool = False
    # For actions: did the change happen? Checked against the database after the request.
    happened: Callable[[], bool] | None = None
    # For actions: the audit action a refused attempt records, once, whichever door it came through.
    refusal: str = ""

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.route}"


def _quarantined() -> bool:
    return DatasetVersion.objects.by_key("churn-train:17").get().is_quarantined


def _rolled_back() -> bool:
    return Deployment.objects.filter(kind="rollback").exists()


DOORS = [
    Door("login", frozenset(PERSONAS), public=True),
    Door("logout", frozenset(PERSONAS), method="post", ok=302, public=True),
    # Pages: everyone with a role reads everything.
    Door("releases:board", READERS),
    Door("releases:release_list", READERS),
    Door("releases:release", READERS, args=("churn-v42",)),
    Door("releases:compare", READERS, query="?a=churn-v41&b=churn-v42"),
    Door("releases:search", READERS, query="?q=churn"),
    Door("releases:investigate", READERS),
    Door("releases:dataset_version", READERS, args=("churn-train", 17)),
    Door("releases:quarantine", LEADS, args=("churn-train", 17)),
    Door("releases:lift_quarantine", LEADS, args=("churn-holdout", 3)),
    Door("releases:commit", READERS, args=("COMMIT",)),
    Door("releases:run", READERS, args=("RUN",)),
    Door("releases:model", READERS, args=("churn-model",)),
    Door("releases:endpoint", READERS, args=("churn-scoring",)),
    Door("releases:approvals", LEADS),
    Door("releases:verifier", READERS),
    Door("releases:rollback", ROLLERS, args=("churn-scoring",)),
    Door("releases:deploy", WRITERS, args=("churn-shadow",)),
    Door("releases:sync", READERS),
    Door("releases:audit_events", frozenset({"lead", "auditor", "admin"})),
    Door("releases:audit_event", frozenset({"lead", "auditor", "admin"}), args=(1,)),
    Door("releases:audit_export_csv", frozenset({"lead", "auditor", "admin"})),
    Door("releases:audit_export_jsonl", frozenset({"lead", "auditor", "admin"})),
    Door("releases:acknowledge_alarm", frozenset({"admin"}), args=("RUN_FAILED",)),
    Door("releases:inventory", READERS),
    Door("releases:inventory_csv", READERS),
    Door("releases:describe_model", LEADS, args=("churn-model",)),
    # Actions.
    Door(
        "releases:sign",
        frozenset({"lead"}),  # signing needs the role itself; a superuser is not an ML lead
        method="post",
        args=("churn-v43",),
        data=lambda: {
            "decision": "approve",
            "meaning": "Reviewed",
            "password": PASSWORD,
            "digest": lineage.trace("churn-v43").digest,
        },
        ok=302,
        happened=lambda: Release.objects.get(name="churn-v43").state == "approved",
        refusal="release.approval_refused",
    ),
    Door(
        "releases:rollback",
        ROLLERS,
        method="post",
        args=("churn-scoring",),
        data={"reason": "INC-311", "target": "churn-v41"},
        ok=302,
        happened=_rolled_back,
        refusal="deployment.rollback_refused",
    ),
    Door(
        "releases:deploy",
        WRITERS,
        method="post",
        args=("churn-shadow",),
        data={"release": "churn-v43"},
        ok=302,
        happened=lambda: Deployment.objects.filter(endpoint__name="churn-shadow").exists(),
        refusal="deployment.refused",
    ),
    Door(
        "releases:quarantine",
        LEADS,
        method="post",
        args=("churn-train", 17),
        data={"reason": "partner changed the label mapping"},
        ok=302,
        happened=_quarantined,
        refusal="dataset_version.quarantine_refused",
    ),
    Door(
        "releases:lift_quarantine",
        LEADS,
        method="post",
        args=("churn-holdout", 3),
        data={"reason": "partner restored the label mapping"},
        ok=302,
        happened=lambda: not DatasetVersion.objects.by_key("churn-holdout:3").get().is_quarantined,
        refusal="dataset_version.quarantine_lift_refused",
    ),
    Door(
        "releases:sync_now",
        frozenset({"lead", "oncall", "admin"}),
        method="post",
        args=("SYNC",),
        ok=302,
        happened=lambda: AuditEvent.objects.filter(action="sync.requested").exists(),
        refusal="sync.request_refused",
    ),
    Door(
        "releases:evidence",
        frozenset({"auditor", "lead", "admin"}),
        method="post",
        args=("churn-v42",),
        happened=lambda: AuditEvent.objects.filter(object_key="churn-v42", action="evidence.exported").exists(),
        refusal="evidence.export_refused",
    ),
    Door("releases:period_evidence", EXPORTERS),
    Door("releases:period_evidence_status", EXPORTERS, args=("EXPORT",)),
    Door("releases:period_evidence_download", EXPORTERS, args=("EXPORT",)),
    Door(
        "releases:period_evidence",
        EXPORTERS,
        method="post",
        data=lambda: {
            "from": (timezone.now() - datetime.timedelta(days=3)).date().isoformat(),
            "to": timezone.now().date().isoformat(),
            "environment": "production",
        },
        ok=302,
        happened=lambda: EvidenceExport.objects.filter(state="queued").exists(),
        refusal="evidence.export_refused",
    ),
    Door(
        "releases:describe_model",
        LEADS,
        method="post",
        args=("churn-model",),
        data={"owner": "Retention analytics", "purpose": "Churn scores"},
        ok=302,
        happened=lambda: RegisteredModel.objects.get(name="churn-model").owner == "Retention analytics",
        refusal="model.description_refused",
    ),
    Door(
        "releases:acknowledge_alarm",
        frozenset({"admin"}),
        method="post",
        args=("RUN_FAILED",),
        data={"note": "restored from the backup"},
        ok=302,
        happened=lambda: Acknowledgment.objects.exists(),
        refusal="audit.acknowledgment_refused",
    ),
    # Signed by MLflow, not by a person: everyone gets the same answer to an unsigned call.
    Door("mlflow_webhook", frozenset(PERSONAS), method="post", ok=403, public=True),
    # The signed checkpoints are public, like a transparency log's: they reveal no event.
    Door("audit:checkpoint", frozenset(PERSONAS), public=True),
    Door("audit:key", frozenset(PERSONAS), public=True),
    Door("audit:consistency", frozenset(PERSONAS), args=(1, "SIZE"), public=True),
    # Admin: staff only; others are sent to the admin login.
    Door("admin:index", frozenset({"admin"}), refused=302),
    Door("admin:releases_release_changelist", frozenset({"admin"}), refused=302),
    # API: JSON answers, 401 for anonymous callers.
    Door("api:releases", READERS, api=True),
    Door("api:release", READERS, args=("churn-v42",), api=True),
    Door("api:dataset_versions", READERS, api=True),
    Door("api:endpoints", READERS, api=True),
    Door("api:endpoint", READERS, args=("churn-scoring",), api=True),
    Door("api:schema", READERS, api=True),
    Door("api:docs", READERS),
    Door(
        "api:dataset_versions",
        WRITERS,
        method="post",
        data={"name": "churn-train", "version": 99, "uri": "s3://d/99", "content_hash": "sha256:" + "a" * 64},
        ok=201,
        api=True,
        happened=lambda: DatasetVersion.objects.by_key("churn-train:99").exists(),
        refusal="dataset_version.registration_refused",
    ),
    Door(
        "api:releases",
        WRITERS,
        method="post",
        data={"name": "churn-v44", "model_version": "churn-model/44"},
        ok=201,
        api=True,
        happened=lambda: Release.objects.filter(name="churn-v44").exists(),
        refusal="release.creation_refused",
    ),
    Door(
        "api:release_submit",
        WRITERS,
        method="post",
        args=("churn-v45",),
        api=True,
        happened=lambda: Release.objects.get(name="churn-v45").state == "pending",
        refusal="release.submission_refused",
    ),
    Door(
        "api:deployments",
        WRITERS,
        method="post",
        data={"endpoint": "churn-shadow", "release": "churn-v43"},
        ok=201,
        api=True,
        happened=lambda: Deployment.objects.filter(endpoint__name="churn-shadow").exists(),
        refusal="deployment.refused",
    ),
    Door(
        "api:endpoints",
        WRITERS,
        method="post",
        data={
            "name": "churn-new",
            "environment": "staging",
            "registered_model": "churn-model",
            "mlflow_alias": "shadow",
        },
        ok=201,
        api=True,
        happened=lambda: Endpoint.objects.filter(name="churn-new").exists(),
        refusal="endpoint.creation_refused",
    ),
    Door(
        "api:rollback",
        ROLLERS,
        method="post",
        args=("churn-scoring",),
        data={"reason": "INC-311"},
        ok=201,
        api=True,
        happened=_rolled_back,
        refusal="deployment.rollback_refused",
    ),
]


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    # Hundreds of personas are created here; the production hasher's cost is not what is under test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def site(db: Any, settings: Any, lead2: User, release_manager: User) -> dict[str, Any]:
    """Two approved releases live on production, one pending, one draft, one unreleased model version."""
    settings.LINEAGE_MLFLOW_WEBHOOK_SECRET = "webhook-secret"
    world = World.create()
    v41 = world.full_release(41, by=release_manager, approver=lead2)
    v42 = world.full_release(42, by=release_manager, approver=lead2, dataset="churn-train:18")
    world.dataset("churn-train:17")
    mv43 = world.model_version("churn-model/43", commit=world.commit("v43"), datasets=("churn-train:17",))
    services.submit_release(world.release("churn-v43", mv43, by=release_manager), by=release_manager)
    world.model_version("churn-model/44", commit=world.commit("v44"), datasets=("churn-train:17",))
    mv45 = world.model_version("churn-model/45", commit=world.commit("v45"), datasets=("churn-train:17",))
    world.release("churn-v45", mv45, by=release_manager)
    production = world.endpoint("churn-scoring")
    world.endpoint("churn-shadow", "staging")
    world.deploy(production, v41, by=release_manager, hours_ago=48)
    world.deploy(production, v42, by=release_manager, hours_ago=1)
    services.quarantine_dataset_version(world.dataset("churn-holdout:3"), by=SYSTEM, reason="bad labels")
    sync = SyncState.objects.get(repository=world.repo)
    with transaction.atomic():
        checkpoint = checkpoints.issue_checkpoint()
    failed = VerificationRun.objects.create(
        ran_at=timezone.now(), trigger="schedule", ok=False, broken_seq=2, problem="event #2 was rewritten"
    )
    # A period's bundle already prepared, to be looked at and downloaded.
    export = EvidenceExport.objects.create(
        requested_by=release_manager,
        since=timezone.now() - datetime.timedelta(days=3),
        until=timezone.now(),
        environments=["production"],
        state=EvidenceExport.State.READY,
        filename="evidence.zip",
        expires_at=timezone.now() + datetime.timedelta(hours=1),
    )
    export.bundle.save(f"{export.pk}.zip", ContentFile(b"PK\x05\x06" + bytes(18)))
    return {
        "EXPORT": str(export.pk),
        "RUN_FAILED": failed.pk,
        "COMMIT": v42.model_version.run.commit_sha,
        "RUN": v42.model_version.run.run_id,
        "SYNC": sync.pk,
        "SIZE": checkpoint.size,
    }


def people(request: pytest.FixtureRequest) -> dict[str, User | None]:
    return {
        "anonymous": None,
        "norole": User.objects.create_user("visitor", password=PASSWORD),
        "lead": request.getfixturevalue("lead"),
        "auditor": request.getfixturevalue("auditor"),
        "oncall": request.getfixturevalue("oncall"),
        "relman": request.getfixturevalue("release_manager"),
        "admin": User.objects.create_superuser("root", password=PASSWORD),
    }


def outcome(door: Door, persona: str, user: User | None, site: dict[str, str]) -> list[str]:
    """What went wrong for this persona at this door (empty when the matrix holds)."""
    client = Client()
    if user is not None:
        client.force_login(user)
    url = reverse(door.route, args=[site.get(a, a) if isinstance(a, str) else a for a in door.args]) + door.query
    data = door.data() if callable(door.data) else door.data
    refusals = AuditEvent.objects.filter(action=door.refusal) if door.refusal else AuditEvent.objects.none()
    refusals_before = refusals.count()
    if door.api:
        response = getattr(client, door.method)(url, data, content_type="application/json")
    else:
        response = getattr(client, door.method)(url, data)
    status, location = response.status_code, response.get("Location", "")
    content = b"".join(response.streaming_content) if response.streaming else response.content
    problems = []
    if persona == "anonymous" and not door.public:
        allowed = False
        if door.api and not (status == 401 and b"error" in content):
            problems.append(f"expected 401 JSON, got {status}")
        if not door.api and not (status == 302 and location.startswith(("/login/?next=", "/admin/login/?next="))):
            problems.append(f"expected a redirect to the login page, got {status} {location}")
    elif persona in door.allowed:
        allowed = True
        if status != door.ok:
            problems.append(f"expected {door.ok}, got {status}: {content[:300]!r}")
    else:
        allowed = False
        # Someone with no role is stopped at every page (a write by its service); the admin keeps its own login.
        refused = 403 if persona == "norole" and not door.route.startswith("admin:") else door.refused
        if status != refused:
            problems.append(f"expected refusal {refused}, got {status}: {content[:300]!r}")
    if door.happened is not None and door.happened() is not allowed:
        problems.append("the change happened" if not allowed else "the change did not happen")
    problems += _refusal_evidence(door, persona, allowed, content, list(refusals[refusals_before:]))
    return [f"{persona}: {p}" for p in problems]


def _refusal_evidence(door: Door, persona: str, allowed: bool, content: bytes, recorded: list[AuditEvent]) -> list[str]:
    """A refused action leaves exactly one refusal event, and the answer says the service's reason."""
    if not door.refusal:
        return []
    if allowed or persona == "anonymous":
        return [f"refusal events {[e.reason for e in recorded]} for an attempt that was allowed"] if recorded else []
    if len(recorded) != 1:
        return [f"expected one {door.refusal} event, got {len(recorded)}"]
    reason = recorded[0].reason
    shown = reason in json.loads(content)["error"] if door.api else escape(reason) in content.decode()
    return [] if shown else [f"the answer does not say the service's reason {reason!r}"]


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.id)
def test_permission_matrix(site, request, door):
    problems = []
    for persona, user in people(request).items():
        # Each persona starts from the same site: their request runs in a savepoint rolled back afterwards.
        with transaction.atomic():
            problems += outcome(door, persona, user, site)
            transaction.set_rollback(True)
    assert problems == []


def _named_routes(resolver: URLResolver, namespace: str = "") -> set[str]:
    names: set[str] = set()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            names |= _named_routes(pattern, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(f"{namespace}{pattern.name}")
    return names


def test_every_action_names_its_refusal():
    actions = [door.id for door in DOORS if door.method == "post" and not door.public and not door.refusal]
    assert actions == []


def test_every_route_is_in_the_matrix():
    routes = {name for name in _named_routes(get_resolver()) if not name.startswith("admin:")}
    assert routes - {door.route for door in DOORS} == set()


def test_a_token_is_held_to_its_scopes_and_its_users_role(site, release_manager):
    raw = services.create_api_token(release_manager, name="ci", scopes=[ApiToken.Scope.READ], by=SYSTEM)[1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/releases/").status_code == 200
    assert client.post("/api/endpoints/churn-scoring/rollback/", {"reason": "x"}).status_code == 403
    assert not _rolled_back()
    # A write refused for the token's scope is evidence like any other refused write.
    [event] = AuditEvent.objects.filter(action="api_token.scope_refused")
    assert (event.actor, event.object_type, event.new["scope"]) == ("relman", "api_token", "endpoints:rollback")
