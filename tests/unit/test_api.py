"""The REST API: token and session auth, scopes and roles, every endpoint, errors as JSON."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.serializers import ModelSerializer

from audit.models import AuditEvent
from releases import lineage, services
from releases.api import serializers as s
from releases.models import ApiToken, Approval, Deployment, Endpoint, Release
from releases.models.access import hash_token
from tests.factories import SYSTEM, content_hash
from tests.unit.conftest import api, client_for, pending_release, token_for

# Authentication and authorisation --------------------------------------------------------


def test_anonymous_gets_401_json(db):
    response = Client().get("/api/releases/")
    assert response.status_code == 401
    assert response.json()["error"] == "Authentication credentials were not provided."
    assert response["WWW-Authenticate"] == "Bearer"


def test_unknown_token_is_401(db):
    response = api("rl_not-a-token").get("/api/releases/")
    assert response.status_code == 401
    assert response.json()["error"] == "unknown or revoked API token"


def test_token_is_stored_hashed_and_works(ci_account):
    raw = token_for(ci_account, "read")

    token = ApiToken.objects.get()
    assert raw not in (token.token_hash, token.hint)
    assert token.token_hash == hash_token(raw)
    assert api(raw).get("/api/releases/").status_code == 200
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.new == {
        "user": "ci",
        "scopes": ["read"],
        "hint": token.hint,
        "expires_at": token.expires_at.isoformat(),
    }


def test_revoked_token_stops_working(ci_account):
    raw = token_for(ci_account, "read")
    services.revoke_api_token(ApiToken.objects.get(), by=SYSTEM, reason="leaked in a log")

    assert api(raw).get("/api/releases/").status_code == 401
    assert AuditEvent.objects.get(action="api_token.revoked").reason == "leaked in a log"


def test_token_without_the_scope_is_403(ci_account):
    raw = token_for(ci_account, "read")

    response = api(raw).post("/api/dataset-versions/", {}, content_type="application/json")

    assert response.status_code == 403
    assert response.json()["error"] == "this token lacks the scope datasets:write"


def test_token_acts_with_its_users_roles(oncall):
    raw = token_for(oncall, "datasets:write")

    response = api(raw).post(
        "/api/dataset-versions/",
        {"name": "churn-train", "version": 17, "uri": "s3://d/17", "content_hash": content_hash("x")},
        content_type="application/json",
    )

    assert response.status_code == 403
    assert "needs the role release-managers or ml-leads" in response.json()["error"]


def test_schema_needs_a_login_and_docs_redirect_to_login(db, auditor):
    assert Client().get("/api/schema/").status_code == 401
    docs = Client().get("/api/docs/")
    assert docs.status_code == 302
    assert docs["Location"].startswith("/login/")
    schema = client_for(auditor).get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/deployments/" in schema.content
    assert client_for(auditor).get("/api/docs/").status_code == 200


# Dataset versions ------------------------------------------------------------------------------


def test_register_dataset_version(ci_account):
    body = {"name": "churn-train", "version": 17, "uri": "s3://d/17", "content_hash": content_hash("17")}
    client = api(token_for(ci_account, "datasets:write", "read"))

    first = client.post("/api/dataset-versions/", body, content_type="application/json")
    again = client.post("/api/dataset-versions/", body, content_type="application/json")
    changed = client.post(
        "/api/dataset-versions/", {**body, "content_hash": content_hash("other")}, content_type="application/json"
    )

    assert (first.status_code, again.status_code, changed.status_code) == (201, 200, 409)
    assert first.json()["key"] == "churn-train:17"
    assert changed.json()["rule"] == "immutable_version"
    assert "already registered" in changed.json()["error"]
    event = AuditEvent.objects.get(action="dataset_version.registered")
    assert (event.actor, event.object_key) == ("ci", "churn-train:17")
    assert client.get("/api/dataset-versions/?dataset=churn-train").json()[0]["content_hash"] == content_hash("17")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "churn-train", "version": 0, "uri": "s3://d", "content_hash": "sha256:" + "a" * 64},
        {"name": "churn-train", "version": 1, "uri": "s3://d", "content_hash": "md5:abc"},
        {"name": "Churn Train!", "version": 1, "uri": "s3://d", "content_hash": "sha256:" + "a" * 64},
        {"version": 1},
    ],
)
def test_bad_dataset_version_is_400_json(ci_account, body):
    response = api(token_for(ci_account)).post("/api/dataset-versions/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]
    assert not AuditEvent.objects.filter(action="dataset_version.registered").exists()


def test_bad_limit_is_400(ci_account):
    response = api(token_for(ci_account)).get("/api/releases/?limit=lots")
    assert response.status_code == 400
    assert "limit" in response.json()["fields"]


# Releases ---------------------------------------------------------------------------------------


def test_create_and_submit_release(world, ci_account):
    world.dataset("churn-train:17")
    mv = world.model_version("churn-model/42", commit=world.commit("v42"), datasets=("churn-train:17",))
    client = api(token_for(ci_account, "releases:write", "read"))
    body = {"name": "churn-v42", "model_version": mv.key, "validation_report_uri": "s3://r/42.html", "submit": True}

    created = client.post("/api/releases/", body, content_type="application/json")

    assert created.status_code == 201
    data = created.json()
    assert data["state"] == "pending"
    release = Release.objects.get(name="churn-v42")
    assert release.state == "pending"
    assert data["lineage_digest"] == lineage.trace("churn-v42").digest == release.lineage_digest
    assert data["completeness"]["present"] == 5
    assert [m["link"] for m in data["completeness"]["missing"]] == ["deployment"]
    assert [e.action for e in AuditEvent.objects.filter(object_key="churn-v42").order_by("seq")] == [
        "release.created",
        "release.submitted",
    ]
    again = client.post("/api/releases/", body, content_type="application/json")
    assert again.status_code == 200
    conflict = client.post(
        "/api/releases/", {**body, "validation_report_uri": "s3://other"}, content_type="application/json"
    )
    assert conflict.status_code == 409
    assert conflict.json()["rule"] == "immutable_release"


def test_release_with_bad_name_or_unknown_model_version(world, ci_account):
    client = api(token_for(ci_account))
    unknown = client.post(
        "/api/releases/", {"name": "churn-v42", "model_version": "churn-model/9"}, content_type="application/json"
    )
    assert unknown.status_code == 404
    assert "is not registered" in unknown.json()["error"]


def test_submit_release(world, ci_account):
    world.dataset("churn-train:17")
    mv = world.model_version("churn-model/42", commit=world.commit("v42"), datasets=("churn-train:17",))
    world.release("churn-v42", mv, by=ci_account)

    response = api(token_for(ci_account)).post("/api/releases/churn-v42/submit/")

    assert response.status_code == 200
    assert Release.objects.get(name="churn-v42").state == "pending"
    assert AuditEvent.objects.filter(action="release.submitted", actor="ci").count() == 1
    assert api(token_for(ci_account)).post("/api/releases/churn-v42/submit/").status_code == 409


def test_read_trace(world, release_manager, lead, auditor):
    release = world.full_release(42, by=release_manager, approver=lead)

    data = client_for(auditor).get("/api/releases/churn-v42/").json()

    trace = lineage.trace("churn-v42")
    assert data["lineage_digest"] == trace.digest
    assert data["chain"] == trace.chain()
    assert data["approval"] == {"valid": True, "invalidated": False, "approvals_required": 1, "reasons": []}
    [approval] = data["approvals"]
    assert (approval["approver_name"], approval["meaning"]) == ("Lena Lead", "Approved for production")
    assert approval["signed_at"].endswith("Z")
    assert [d["key"] for d in data["dataset_versions"]] == ["churn-train:17"]
    assert data["commit"] == trace.commit_sha
    assert release.name == data["name"]


def test_output_fields_are_read_off_the_model_once_and_each_serializer_has_its_own(world, release_manager, lead):
    world.full_release(42, by=release_manager, approver=lead)
    trace = lineage.trace("churn-v42")

    class AsModelSerializerWrites(ModelSerializer):
        class Meta:
            model = Approval
            fields = s.ApprovalOut.Meta.fields

    first, second = s.ApprovalOut(trace.approvals, many=True), s.ApprovalOut(trace.approvals[0])
    assert first.data == AsModelSerializerWrites(trace.approvals, many=True).data
    assert "_fields_read_once" in s.ApprovalOut.__dict__
    assert second.data == first.data[0]
    assert second.fields["decision"] is not first.child.fields["decision"]
    assert second.fields["decision"].parent is second


def test_read_unknown_release_is_404_json(db, auditor):
    response = client_for(auditor).get("/api/releases/churn-v9/")
    assert response.status_code == 404
    assert response.json()["error"] == "no release named 'churn-v9'"


# Deployments and rollback -------------------------------------------------------------------------


def test_deployment_gate_is_409_json_and_audited(world, ci_account):
    pending_release(world, ci_account)
    world.endpoint("churn-scoring")

    response = api(token_for(ci_account)).post(
        "/api/deployments/", {"endpoint": "churn-scoring", "release": "churn-v42"}, content_type="application/json"
    )

    assert response.status_code == 409
    assert response.json() == {
        "error": "churn-v42 is waiting for approval, not approved; production endpoints only take approved releases",
        "rule": "promotion_gate",
    }
    assert not Deployment.objects.exists()
    assert AuditEvent.objects.get(action="deployment.refused").actor == "ci"


def test_deployment_to_staging_and_approved_to_production(world, ci_account, lead):
    release = world.full_release(42, by=ci_account, approver=lead)
    world.endpoint("churn-scoring")
    world.endpoint("churn-shadow", "staging")
    client = api(token_for(ci_account))

    for name in ("churn-shadow", "churn-scoring"):
        response = client.post(
            "/api/deployments/",
            {"endpoint": name, "release": "churn-v42", "reason": "pipeline 881"},
            content_type="application/json",
        )
        assert response.status_code == 201
        assert response.json()["endpoint"] == name
    assert Deployment.objects.filter(release=release, source="api").count() == 2
    assert AuditEvent.objects.filter(action="deployment.recorded", actor="ci").count() == 2


def test_deployment_backdated_before_its_release_existed_is_409(world, ci_account, lead):
    world.full_release(42, by=ci_account, approver=lead)
    world.endpoint("churn-scoring")

    response = api(token_for(ci_account)).post(
        "/api/deployments/",
        {"endpoint": "churn-scoring", "release": "churn-v42", "deployed_at": "2020-01-01T00:00:00Z"},
        content_type="application/json",
    )

    assert response.status_code == 409
    assert response.json()["rule"] == "before_release"
    assert not Deployment.objects.exists()
    assert AuditEvent.objects.get(action="deployment.refused").new["rule"] == "before_release"


def test_backfilling_a_deployment_needs_its_own_token_scope(world, ci_account, lead):
    world.full_release(42, by=ci_account, approver=lead)
    world.endpoint("churn-scoring")
    history = {
        "endpoint": "churn-scoring",
        "release": "churn-v42",
        "deployed_at": "2020-01-01T00:00:00Z",
        "backfill": True,
        "reason": "imported from the old deploy tool",
    }

    deployer = api(token_for(ci_account, ApiToken.Scope.DEPLOYMENTS))
    refused = deployer.post("/api/deployments/", history, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["error"] == "this token lacks the scope deployments:backfill"
    assert not Deployment.objects.exists()
    assert AuditEvent.objects.get(action="api_token.scope_refused").new["scope"] == "deployments:backfill"

    historian = api(token_for(ci_account, ApiToken.Scope.DEPLOYMENTS, ApiToken.Scope.BACKFILL))
    response = historian.post("/api/deployments/", history, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["deployed_at"].startswith("2020-01-01T00:00:00")
    event = AuditEvent.objects.get(action="deployment.backfilled")
    assert (event.actor, event.reason) == ("ci", "imported from the old deploy tool")


def test_deployment_to_unknown_endpoint_is_404(world, ci_account):
    response = api(token_for(ci_account)).post(
        "/api/deployments/", {"endpoint": "nope", "release": "churn-v42"}, content_type="application/json"
    )
    assert response.status_code == 404
    assert response.json()["error"] == "no endpoint named 'nope'"


def test_rollback_through_the_api(world, release_manager, lead, oncall):
    v41 = world.full_release(41, by=release_manager, approver=lead)
    v42 = world.full_release(42, by=release_manager, approver=lead, dataset="churn-train:18")
    endpoint = world.endpoint()
    world.deploy(endpoint, v41, by=release_manager, hours_ago=48)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=1)
    client = api(token_for(oncall, "endpoints:rollback", "read"))

    missing_reason = client.post("/api/endpoints/churn-scoring/rollback/", {}, content_type="application/json")
    response = client.post(
        "/api/endpoints/churn-scoring/rollback/",
        {"reason": "INC-311", "target": "churn-v41"},
        content_type="application/json",
    )
    again = client.post(
        "/api/endpoints/churn-scoring/rollback/",
        {"reason": "INC-311", "target": "churn-v41"},
        content_type="application/json",
    )

    assert missing_reason.status_code == 400
    assert response.status_code == 201
    assert (response.json()["release"], response.json()["kind"]) == ("churn-v41", "rollback")
    assert again.status_code == 409
    assert again.json()["rule"] == "rollback_target_changed"
    assert Deployment.objects.filter(kind="rollback").count() == 1
    assert AuditEvent.objects.get(action="deployment.rolled_back").reason == "INC-311"
    [status] = client.get("/api/endpoints/").json()
    assert status["live_release"] == "churn-v41"


def test_release_manager_cannot_roll_back(world, release_manager):
    world.endpoint()
    response = client_for(release_manager).post(
        "/api/endpoints/churn-scoring/rollback/", {"reason": "x"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "needs the role on-call or ml-leads" in response.json()["error"]


# Endpoints declared by the deployment pipeline -----------------------------------------------------

CHURN_SCORING = {
    "name": "churn-scoring",
    "environment": "production",
    "registered_model": "churn-model",
    "mlflow_alias": "production",
}


def events_since(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_declaring_an_endpoint_is_201_then_200_for_the_same_values(world, ci_account):
    world.model_version("churn-model/42")
    client = api(token_for(ci_account, "endpoints:write", "read"))
    body = {**CHURN_SCORING, "description": "Scores churn for the retention team"}

    created = client.post("/api/endpoints/", body, content_type="application/json")
    again = client.post("/api/endpoints/", CHURN_SCORING, content_type="application/json")

    assert (created.status_code, again.status_code) == (201, 200)
    assert created.json() == again.json() == client.get("/api/endpoints/churn-scoring/").json()
    assert created.json() == {
        **body,
        "live_release": None,
        "live_since": None,
        "deployed_by": None,
        "rollback_target": None,
        "rollback_blocker": "Nothing is live on this endpoint.",
    }
    endpoint = Endpoint.objects.select_related("registered_model").get()
    assert (endpoint.environment, endpoint.registered_model.name, endpoint.mlflow_alias) == (
        "production",
        "churn-model",
        "production",
    )
    assert endpoint.description == "Scores churn for the retention team"
    [event] = AuditEvent.objects.filter(action="endpoint.created")
    assert (event.actor, event.object_type, event.object_key) == ("ci", "endpoint", "churn-scoring")
    assert event.new == {
        "environment": "production",
        "registered_model": "churn-model",
        "mlflow_alias": "production",
        "description": "Scores churn for the retention team",
    }


def test_declaring_other_values_under_an_endpoints_name_is_409_naming_what_differs(world, ci_account):
    world.model_version("churn-model/42")
    client = api(token_for(ci_account, "endpoints:write"))
    client.post("/api/endpoints/", CHURN_SCORING, content_type="application/json")
    before = last_seq()

    response = client.post(
        "/api/endpoints/",
        {**CHURN_SCORING, "environment": "staging", "mlflow_alias": "champion", "description": "shadow"},
        content_type="application/json",
    )

    assert response.status_code == 409
    assert response.json() == {
        "error": "endpoint churn-scoring already exists with environment 'production' (not 'staging'), "
        "MLflow alias 'production' (not 'champion'), another description; declare a new endpoint name",
        "rule": "immutable_endpoint",
    }
    endpoint = Endpoint.objects.get()
    assert (endpoint.environment, endpoint.mlflow_alias, endpoint.description) == ("production", "production", "")
    [event] = events_since(before)
    assert (event.action, event.actor, event.object_key) == ("endpoint.creation_refused", "ci", "churn-scoring")
    assert event.reason == response.json()["error"]
    assert event.new == {
        "rule": "immutable_endpoint",
        "environment": "staging",
        "registered_model": "churn-model",
        "mlflow_alias": "champion",
    }


@pytest.mark.parametrize(
    ("changes", "rule", "error"),
    [
        pytest.param(
            {"environment": "prod"},
            "unknown_environment",
            "environment must be one of production, staging, not 'prod'",
            id="environment",
        ),
        pytest.param(
            {"registered_model": "churn"},
            "unknown_model",
            "registered model 'churn' is not known; sync the MLflow server it is registered on first",
            id="unknown-model",
        ),
        pytest.param(
            {"mlflow_alias": "prod alias"},
            "mlflow_alias",
            "MLflow would refuse the alias: Invalid alias name: 'prod alias'. "
            "Names may only contain alphanumerics, underscores (_), and dashes (-).",
            id="alias-characters",
        ),
        pytest.param(
            {"mlflow_alias": "Latest"},
            "mlflow_alias",
            "MLflow would refuse the alias: 'latest' alias name (case insensitive) is reserved.",
            id="alias-latest",
        ),
        pytest.param(
            {"mlflow_alias": "v3"},
            "mlflow_alias",
            "MLflow would refuse the alias: Version alias name 'v3' is reserved.",
            id="alias-version",
        ),
        pytest.param(
            {"registered_model": ""},
            "alias_needs_model",
            "the alias 'production' is an alias of a registered model: name the model too",
            id="alias-without-model",
        ),
        pytest.param(
            {"name": "churn scoring"},
            "invalid",
            "endpoint name 'churn scoring' is not valid: Use letters, digits, dot, dash and underscore; "
            "start with a letter or digit.",
            id="name",
        ),
    ],
)
def test_declaring_an_endpoint_with_bad_values_is_400_and_audited_once(world, ci_account, changes, rule, error):
    world.model_version("churn-model/42")
    client = api(token_for(ci_account, "endpoints:write"))
    before = last_seq()

    response = client.post("/api/endpoints/", {**CHURN_SCORING, **changes}, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"error": error, "rule": rule}
    assert not Endpoint.objects.exists()
    [event] = events_since(before)
    assert (event.action, event.new["rule"], event.reason) == ("endpoint.creation_refused", rule, error)


def test_an_endpoint_declaration_missing_its_environment_is_400_naming_the_field(world, ci_account):
    response = api(token_for(ci_account, "endpoints:write")).post(
        "/api/endpoints/", {"name": "churn-scoring"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {"environment": ["This field is required."]}
    assert not Endpoint.objects.exists()


def test_a_token_without_the_endpoints_scope_is_403_and_audited_once(world, ci_account):
    world.model_version("churn-model/42")
    client = api(token_for(ci_account, "read", "deployments:write"))
    before = last_seq()

    response = client.post("/api/endpoints/", CHURN_SCORING, content_type="application/json")

    assert response.status_code == 403
    assert response.json()["error"] == "this token lacks the scope endpoints:write"
    assert not Endpoint.objects.exists()
    [event] = events_since(before)
    assert (event.action, event.actor, event.new["scope"]) == ("api_token.scope_refused", "ci", "endpoints:write")


@pytest.mark.parametrize("door", ["token", "session"])
def test_declaring_an_endpoint_without_the_role_is_403_and_audited_once(world, oncall, door):
    world.model_version("churn-model/42")
    client = api(token_for(oncall, "endpoints:write")) if door == "token" else client_for(oncall)
    before = last_seq()

    response = client.post("/api/endpoints/", CHURN_SCORING, content_type="application/json")

    assert response.status_code == 403
    message = "oncall may not declare an endpoint: it needs the role release-managers or ml-leads"
    assert response.json() == {"error": message, "rule": "role"}
    assert not Endpoint.objects.exists()
    [event] = events_since(before)
    assert (event.action, event.actor, event.reason) == ("endpoint.creation_refused", "oncall", message)


def test_read_unknown_endpoint_is_404_json(db, auditor):
    response = client_for(auditor).get("/api/endpoints/churn-nowhere/")
    assert response.status_code == 404
    assert response.json()["error"] == "no endpoint named 'churn-nowhere'"
