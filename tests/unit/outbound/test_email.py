"""The email asking the ML leads for a signature when a release is submitted (releases/outbound/email.py)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from django.core import mail

from releases import services
from releases.models import Release
from tests.factories import World, approve
from tests.unit.conftest import pending_release


@pytest.fixture(autouse=True)
def _emails_on(settings: Any) -> None:
    settings.LINEAGE_EMAIL_SIGNATURE_REQUESTS = True
    settings.LINEAGE_BASE_URL = "https://lineage.example.com"


@pytest.fixture
def run(django_capture_on_commit_callbacks: Any) -> Any:
    def perform(action: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return action()

    return perform


def test_each_lead_who_may_sign_is_emailed_when_a_release_is_submitted(world: World, lead, lead2, release_manager, run):
    release = run(lambda: pending_release(world, release_manager))
    assert sorted(m.to[0] for m in mail.outbox) == ["lead2@example.com", "lead@example.com"]
    message = next(m for m in mail.outbox if m.to == ["lead@example.com"])
    assert message.subject == "[release lineage] churn-v42 is waiting for your signature"
    assert message.body.startswith(
        "Hello Lena Lead,\n\nchurn-v42 (churn-model/42) was submitted for approval by relman"
    )
    assert f"Lineage digest: {release.lineage_digest}" in message.body
    assert "Review and sign: https://lineage.example.com/releases/churn-v42/" in message.body
    assert "Your approval queue: https://lineage.example.com/approvals/" in message.body
    assert "cannot be approved" not in message.body


def test_the_lead_who_created_the_release_is_not_asked_to_sign_it(world: World, lead, lead2, run):
    run(lambda: pending_release(world, lead))
    assert [m.to for m in mail.outbox] == [["lead2@example.com"]]


def test_a_release_nobody_can_approve_yet_says_why(world: World, lead, release_manager, run):
    run(lambda: pending_release(world, release_manager, report=""))
    [message] = mail.outbox
    assert (
        "It cannot be approved as it stands: churn-v42 has no validation report. You may still review and reject it."
        in (message.body)
    )


def test_creating_and_submitting_in_one_call_asks_too(world: World, lead, release_manager, run):
    world.dataset("churn-train:17")
    version = world.model_version("churn-model/42", commit=world.commit("v42"), datasets=("churn-train:17",))
    run(
        lambda: services.create_release(
            name="churn-v42",
            model_version=version.key,
            validation_report_uri="s3://reports/v42.html",
            submit=True,
            by=release_manager,
        )
    )
    assert [m.to for m in mail.outbox] == [["lead@example.com"]]


def test_nothing_is_sent_when_the_setting_is_off(world: World, lead, release_manager, run, settings):
    settings.LINEAGE_EMAIL_SIGNATURE_REQUESTS = False
    run(lambda: pending_release(world, release_manager))
    assert mail.outbox == []


def test_only_a_submission_asks_for_signatures(world: World, lead, lead2, release_manager, run):
    release = pending_release(world, release_manager)
    run(lambda: approve(release, by=lead))
    assert mail.outbox == []


def test_a_mail_server_that_is_down_does_not_undo_the_submission(
    world: World, lead, release_manager, run, settings, caplog
):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    with caplog.at_level(logging.WARNING, logger="releases.tasks"):
        release = run(lambda: pending_release(world, release_manager))
    assert Release.objects.get(pk=release.pk).state == "pending"
    assert "the email asking the ML leads to sign (audit event #" in caplog.text
    assert "Connection refused" in caplog.text
