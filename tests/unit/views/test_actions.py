"""Deploying from the endpoint page: the promotion gate's refusal is a form error."""

from __future__ import annotations

from django.urls import reverse

from audit.models import AuditEvent
from releases.models import Deployment
from tests.unit.conftest import client_for, gate_refusals, pending_release


def test_page_gate_refuses_unapproved_release_on_production(world, release_manager):
    pending_release(world, release_manager)
    world.endpoint("churn-scoring")

    response = client_for(release_manager).post(
        reverse("releases:deploy", args=["churn-scoring"]), {"release": "churn-v42"}
    )

    assert response.status_code == 409
    assert "production endpoints only take approved releases" in response.content.decode()
    assert not Deployment.objects.exists()
    assert len(gate_refusals("churn-scoring")) == 1


def test_page_records_deployment_on_staging(world, release_manager):
    pending_release(world, release_manager)
    world.endpoint("churn-shadow", "staging")

    response = client_for(release_manager).post(
        reverse("releases:deploy", args=["churn-shadow"]), {"release": "churn-v42", "reason": "shadow traffic"}
    )

    assert response.status_code == 302
    deployment = Deployment.objects.get()
    assert (deployment.release.name, deployment.source, deployment.reason) == ("churn-v42", "ui", "shadow traffic")
    assert AuditEvent.objects.get(action="deployment.recorded").object_key == "churn-shadow"


def test_page_deploy_unknown_release_is_a_form_error(world, release_manager):
    world.endpoint("churn-scoring")

    response = client_for(release_manager).post(
        reverse("releases:deploy", args=["churn-scoring"]), {"release": "churn-v99"}
    )

    assert response.status_code == 400
    assert "No release named churn-v99." in response.content.decode()
