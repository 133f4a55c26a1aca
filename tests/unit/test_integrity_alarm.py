"""Integrity at a glance: every verification is kept; a failed one is an audit event, an ERROR, an email
and a banner on every page for every role until an administrator acknowledges it, audited.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.cache import cache
from django.db import transaction

from audit import alarm, checkpoints, log, tasks, vocabulary
from audit.models import Acknowledgment, AuditEvent, VerificationRun
from releases import services
from releases.errors import InvalidInput, PermissionRefused, RuleViolation
from tests.conftest import PASSWORD
from tests.factories import SYSTEM
from tests.unit.conftest import client_for, last_event

vocabulary.register("test.alarm", "An event written by the integrity alarm tests.")

BANNER = "Audit log verification failed"


def _events(count: int) -> None:
    with transaction.atomic():
        log.record_many([log.PendingEvent("test.alarm", "thing", str(i)) for i in range(count)], actor=SYSTEM)


def _checkpointed_log() -> None:
    _events(10)
    with transaction.atomic():
        checkpoints.issue_checkpoint()


@pytest.fixture
def admin(db: Any) -> User:
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def broken(behind_the_apps_back, settings) -> VerificationRun:
    """A checkpointed log rewritten behind the application's back, then verified by beat."""
    settings.LINEAGE_ALERT_EMAILS = ["security@example.com"]
    _checkpointed_log()
    behind_the_apps_back("UPDATE audit_auditevent SET reason = 'nothing to see' WHERE seq = 4", None)
    assert tasks.verify_log() is False
    return VerificationRun.objects.get(ok=False)


def test_an_intact_log_is_verified_on_schedule_and_kept(db, auditor):
    _checkpointed_log()
    assert tasks.verify_log() is True
    run = VerificationRun.objects.get()
    newest = checkpoints.latest()
    assert (run.ok, run.trigger, run.newest_checkpoint, run.broken_seq) == (True, "schedule", newest.size, None)
    assert alarm.current() is None
    html = client_for(auditor).get("/audit/").content.decode()
    assert "Intact" in html
    assert BANNER not in html


def test_audit_verify_by_hand_is_kept_too(db):
    from django.core.management import call_command

    _checkpointed_log()
    call_command("audit_verify", stdout=io.StringIO())
    assert VerificationRun.objects.get().trigger == "command"


def test_a_failed_verification_is_an_event_an_error_and_an_email(caplog, broken):
    event = last_event("audit.verification_failed")
    assert event.new["broken_seq"] == 4
    assert event.new["run"] == broken.pk
    assert broken.broken_seq == 4
    assert "event #4 was changed after it was written; it contradicts checkpoint" in broken.problem
    assert any(
        r.levelno == logging.ERROR and "verification failed at #4" in r.getMessage()
        for r in caplog.get_records("setup")
    )
    [sent] = mail.outbox
    assert sent.to == ["security@example.com"]
    assert "failed at #4" in sent.body


@pytest.mark.parametrize("persona", ["auditor", "oncall", "release_manager", "lead", "ci_account"])
@pytest.mark.parametrize("path", ["/", "/releases/", "/inventory/"])
def test_every_role_sees_the_alarm_on_every_page(persona, path, request, broken):
    html = client_for(request.getfixturevalue(persona)).get(path).content.decode()
    assert BANNER in html
    assert "at event #4" in html
    assert "An administrator must acknowledge it." in html


def test_the_banner_costs_no_query(broken, django_assert_num_queries):
    cache.delete(alarm.KEY)
    with django_assert_num_queries(0):
        assert alarm.current() is None
    alarm.refresh()
    with django_assert_num_queries(0):
        assert alarm.current()["broken_seq"] == 4


def test_a_lost_cache_shows_the_alarm_again_at_the_next_run(broken, auditor):
    cache.delete(alarm.KEY)
    assert BANNER not in client_for(auditor).get("/").content.decode()
    tasks.verify_log()
    assert BANNER in client_for(auditor).get("/").content.decode()


def test_an_administrator_acknowledges_it_and_the_banner_goes(broken, admin, auditor):
    client = client_for(admin)
    page = client.get(f"/audit/alarm/{broken.pk}/acknowledge/")
    assert page.status_code == 200
    assert "event #4 was changed after it was written; it contradicts checkpoint" in page.content.decode()
    response = client.post(f"/audit/alarm/{broken.pk}/acknowledge/", {"note": "restored from backup, INC-7"})
    assert response.status_code == 302
    acknowledgment = Acknowledgment.objects.get(run=broken)
    assert (acknowledgment.by, acknowledgment.note) == (admin, "restored from backup, INC-7")
    event = last_event("audit.alarm_acknowledged")
    assert (event.actor, event.reason, event.new["broken_seq"]) == ("root", "restored from backup, INC-7", 4)
    assert alarm.current() is None
    assert BANNER not in client_for(auditor).get("/").content.decode()
    # The failure stays on record.
    assert VerificationRun.objects.filter(ok=False).count() == 1


@pytest.mark.parametrize("persona", ["auditor", "lead", "oncall"])
def test_only_an_administrator_acknowledges_and_a_refusal_is_evidence(persona, request, broken):
    client = client_for(request.getfixturevalue(persona))
    assert client.get(f"/audit/alarm/{broken.pk}/acknowledge/").status_code == 403
    assert client.post(f"/audit/alarm/{broken.pk}/acknowledge/", {"note": "fine"}).status_code == 403
    assert not Acknowledgment.objects.exists()
    refused = last_event("audit.acknowledgment_refused")
    assert refused.new["rule"] == "admin_only"
    assert alarm.current() is not None


def test_an_acknowledgment_needs_a_note_and_happens_once(broken, admin):
    with pytest.raises(InvalidInput, match="a reason is required"):
        services.acknowledge_alarm(broken, note="  ", by=admin)
    response = client_for(admin).post(f"/audit/alarm/{broken.pk}/acknowledge/", {"note": ""})
    assert response.status_code == 400
    services.acknowledge_alarm(broken, note="seen", by=admin)
    with pytest.raises(RuleViolation, match="already acknowledged"):
        services.acknowledge_alarm(broken, note="again", by=admin)
    assert Acknowledgment.objects.count() == 1


def test_an_intact_run_has_nothing_to_acknowledge(db, admin):
    _checkpointed_log()
    tasks.verify_log()
    run = VerificationRun.objects.get()
    with pytest.raises(RuleViolation, match="found the log intact"):
        services.acknowledge_alarm(run, note="x", by=admin)
    assert client_for(admin).get(f"/audit/alarm/{run.pk}/acknowledge/").status_code == 404


def test_the_service_refuses_a_non_administrator(broken, auditor):
    with pytest.raises(PermissionRefused, match="only an administrator may"):
        services.acknowledge_alarm(broken, note="x", by=auditor)
    assert AuditEvent.objects.filter(action="audit.acknowledgment_refused").count() == 1
