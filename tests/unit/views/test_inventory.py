"""The model inventory: every registered model with its owner, purpose, validators, last validation,
status, live endpoints, open quarantines and releases in a period; its CSV; owner and purpose kept by
ML leads, audited.
"""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.http import StreamingHttpResponse
from django.utils import timezone

from audit.models import AuditEvent
from releases import lineage, services
from releases.errors import InvalidInput, PermissionRefused
from releases.models import DatasetVersion, RegisteredModel
from tests.factories import SYSTEM, World
from tests.unit.conftest import client_for, last_event, pending_release


@pytest.fixture
def inventory_world(world: World, ci_account, lead, lead2, release_manager):
    """churn-model: v41 live in production, v42 approved by both leads; fraud-model: one pending release on
    quarantined data; empty-model: registered, never released."""
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead2, dataset="churn-train:18")
    world.deploy(world.endpoint("churn-scoring"), v41, by=release_manager)
    world.deploy(world.endpoint("churn-canary", "staging"), v42, by=release_manager)
    world.dataset("fraud-train:3")
    fraud = world.model_version("fraud-model/3", commit=world.commit("fraud"), datasets=("fraud-train:3",))
    services.create_release(name="fraud-v3", model_version=fraud.key, submit=True, by=ci_account)
    services.quarantine_dataset_version(
        DatasetVersion.objects.by_key("fraud-train:3").get(), by=lead, reason="label leak"
    )
    RegisteredModel.objects.create(name="empty-model")
    return world


def _rows() -> dict[str, lineage.InventoryRow]:
    rows = lineage.inventory(list(lineage.inventory_models()), lineage.Period.last_year())
    return {row.model.name: row for row in rows}


def test_each_model_with_its_validators_status_endpoints_and_quarantines(inventory_world):
    rows = _rows()
    assert list(rows) == ["churn-model", "empty-model", "fraud-model"]
    churn = rows["churn-model"]
    assert churn.validators == ["Lena Lead", "Omar Second"]
    assert churn.last_validated is not None
    assert churn.newest_release.name == "churn-v42"
    assert churn.status.key == "approved"
    assert churn.live_endpoints == ["churn-scoring", "churn-canary (staging)"]
    assert churn.open_quarantines == []
    assert churn.releases_in_period == 2
    fraud = rows["fraud-model"]
    assert (fraud.validators, fraud.last_validated, fraud.status.key) == ([], None, "pending")
    assert fraud.open_quarantines == ["fraud-train:3"]
    assert fraud.live_endpoints == []
    empty = rows["empty-model"]
    assert (empty.newest_release, empty.status, empty.releases_in_period) == (None, None, 0)


def test_the_status_is_the_one_status_rule(inventory_world):
    for row in _rows().values():
        if row.newest_release is not None:
            assert row.status == lineage.release_status(lineage.trace(row.newest_release.name))


def test_releases_are_counted_in_the_period_only(inventory_world):
    now = timezone.now()
    before = lineage.Period(now - datetime.timedelta(days=30), now - datetime.timedelta(days=1))
    rows = {r.model.name: r for r in lineage.inventory(list(lineage.inventory_models()), before)}
    assert rows["churn-model"].releases_in_period == 0


def test_the_page_for_every_role_and_the_describe_link_for_ml_leads(inventory_world, auditor, lead):
    html = client_for(auditor).get("/inventory/").content.decode()
    assert "churn-model" in html
    assert "⚠ Not described yet" in html
    assert "⚠ fraud-train:3" in html
    assert "Describe…" not in html
    assert "Describe…" in client_for(lead).get("/inventory/").content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=someday", "“someday” is not a date and time."),
        ("from=2026-11-02T00:00&to=2026-11-01T00:00", "The period is empty"),
        ("from=2000-01-01T00:00&to=2026-01-01T00:00", "at most 10 years"),
    ],
)
def test_a_period_that_cannot_be_used_is_named(query, message, inventory_world, auditor):
    response = client_for(auditor).get(f"/inventory/?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert client_for(auditor).get(f"/inventory.csv?{query}").status_code == 400


def test_the_csv_has_one_row_per_model(inventory_world, auditor):
    response = client_for(auditor).get("/inventory.csv")
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    rows = {row["model"]: row for row in csv.DictReader(io.StringIO(body))}
    assert set(rows) == {"churn-model", "empty-model", "fraud-model"}
    assert rows["churn-model"]["validators"] == "Lena Lead; Omar Second"
    assert rows["churn-model"]["approval_status"] == "Approved"
    assert rows["churn-model"]["live_endpoints"] == "churn-scoring; churn-canary (staging)"
    assert rows["fraud-model"]["open_quarantines"] == "fraud-train:3"
    assert rows["empty-model"]["approval_status"] == "no release"


# Owner and purpose -------------------------------------------------------------------------------


def test_an_ml_lead_describes_a_model_and_it_is_audited(inventory_world, lead):
    response = client_for(lead).post(
        "/inventory/churn-model/describe/", {"owner": "Risk analytics", "purpose": "Churn scores for retention"}
    )
    assert response.status_code == 302
    model = RegisteredModel.objects.get(name="churn-model")
    assert (model.owner, model.purpose) == ("Risk analytics", "Churn scores for retention")
    event = last_event("model.described")
    assert (event.actor, event.object_type, event.object_key) == ("lead", "registered_model", "churn-model")
    assert event.old == {"owner": "", "purpose": ""}
    assert event.new == {"owner": "Risk analytics", "purpose": "Churn scores for retention"}
    html = client_for(lead).get("/inventory/").content.decode()
    assert "Risk analytics" in html


def test_describing_again_with_the_same_words_records_nothing(inventory_world, lead):
    model = RegisteredModel.objects.get(name="churn-model")
    services.describe_model(model, owner="Risk", purpose="Churn", by=lead)
    services.describe_model(model, owner=" Risk ", purpose="Churn", by=lead)
    assert AuditEvent.objects.filter(action="model.described").count() == 1


@pytest.mark.parametrize("persona", ["auditor", "oncall", "release_manager", "ci_account"])
def test_only_ml_leads_describe_a_model_and_a_refusal_is_evidence(persona, request, inventory_world):
    user = request.getfixturevalue(persona)
    response = client_for(user).post("/inventory/churn-model/describe/", {"owner": "x", "purpose": "y"})
    assert response.status_code == 403
    assert RegisteredModel.objects.get(name="churn-model").owner == ""
    refused = last_event("model.description_refused")
    assert (refused.actor, refused.new["rule"]) == (user.username, "role")


@pytest.mark.parametrize(
    ("owner", "purpose", "message"),
    [
        ("", "Churn", "needs both the model's owner and its purpose"),
        ("Risk", "   ", "needs both the model's owner and its purpose"),
        ("x" * 201, "Churn", "keep the owner under 200 characters"),
        ("Risk\x00", "Churn", "plain text"),
    ],
)
def test_bad_descriptions_are_refused_with_a_reason(owner, purpose, message, inventory_world, lead):
    model = RegisteredModel.objects.get(name="churn-model")
    with pytest.raises(InvalidInput, match=message):
        services.describe_model(model, owner=owner, purpose=purpose, by=lead)
    response = client_for(lead).post("/inventory/churn-model/describe/", {"owner": owner, "purpose": purpose})
    assert response.status_code == 400
    assert RegisteredModel.objects.get(name="churn-model").owner == ""


def test_describing_an_unknown_model_is_a_404(db, lead):
    assert client_for(lead).get("/inventory/nothing/describe/").status_code == 404


def test_the_service_refuses_an_auditor_and_lets_a_system_job_through(inventory_world, auditor):
    with pytest.raises(PermissionRefused):
        services.describe_model(RegisteredModel.objects.get(name="churn-model"), owner="a", purpose="b", by=auditor)
    # A system job passes (the demo builder describes its models).
    services.describe_model(RegisteredModel.objects.get(name="churn-model"), owner="a", purpose="b", by=SYSTEM)


def test_a_pending_release_alone_is_not_a_validation(world, ci_account):
    pending_release(world, ci_account)
    [row] = [r for r in _rows().values() if r.model.name == "churn-model"]
    assert (row.validators, row.last_validated, row.status.key) == ([], None, "pending")
