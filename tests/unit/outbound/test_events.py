"""Every outbound event, from the real action through the services to a receiver on loopback
(releases/outbound/events.py): what the document says, and that each is the audit event it stands for."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit import checkpoints, log, vocabulary
from audit import tasks as audit_tasks
from audit.models import AuditEvent, VerificationRun
from releases import services, tasks
from releases.models import Deployment
from tests.factories import SYSTEM, World, approve, reject
from tests.unit.conftest import pending_release
from tests.unit.outbound.conftest import Receiver, subscribe

pytestmark = pytest.mark.usefixtures("secret")
vocabulary.register("test.outbound", "An event written by the outbound event tests.")

# The document's keys, always all present (null when the event is not about that kind of thing).
DOCUMENT_KEYS = {
    "version",
    "type",
    "title",
    "summary",
    "occurred_at",
    "actor",
    "reason",
    "release",
    "model_version",
    "lineage_digest",
    "endpoint",
    "environment",
    "dataset_version",
    "source",
    "details",
    "links",
    "audit_event",
}


def _document(receiver: Receiver, event_type: str) -> dict[str, Any]:
    """The one document the receiver got, checked against the audit event it announces."""
    [got] = receiver.received
    document = got.document
    assert set(document) == DOCUMENT_KEYS
    assert (document["version"], document["type"]) == (1, event_type)
    assert got.headers["X-Lineage-Event"] == event_type
    action, _ = vocabulary.OUTBOUND_EVENTS[event_type]
    event = AuditEvent.objects.get(seq=document["audit_event"]["seq"])
    assert document["audit_event"] == {
        "seq": event.seq,
        "action": action,
        "object_type": event.object_type,
        "object_key": event.object_key,
        "hash": event.hash,
    }
    assert event.action == action
    assert document["occurred_at"] == event.at.isoformat().replace("+00:00", "Z")
    assert (document["actor"], document["reason"]) == (event.actor, event.reason)
    assert document["links"]["audit_event"].endswith(f"/audit/events/{event.seq}/")
    return document


@pytest.fixture
def run(django_capture_on_commit_callbacks: Any) -> Any:
    """Perform an action; its announcements run once it commits, as they do after a request."""

    def perform(action: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return action()

    return perform


def test_every_outbound_event_stands_for_one_registered_action():
    actions = [action for action, _ in vocabulary.OUTBOUND_EVENTS.values()]
    assert len(set(actions)) == len(actions)
    assert set(actions) <= set(vocabulary.ACTIONS)
    assert {vocabulary.ANNOUNCED[action] for action in actions} == set(vocabulary.OUTBOUND_EVENTS)


def test_a_submitted_release_is_announced_as_waiting_for_a_signature(receiver, world, release_manager, run):
    subscribe(receiver.url, ["release.submitted"])
    release = run(lambda: pending_release(world, release_manager))
    document = _document(receiver, "release.submitted")
    assert document["summary"] == "churn-v42 is waiting for a signature (submitted by relman)"
    assert document["title"] == "Waiting for a signature"
    assert (document["release"], document["model_version"]) == ("churn-v42", "churn-model/42")
    assert document["lineage_digest"] == release.lineage_digest
    assert document["links"]["release"] == "/releases/churn-v42/"
    assert document["links"]["approvals"] == "/approvals/"
    assert (document["endpoint"], document["dataset_version"], document["source"]) == (None, None, None)


def test_an_approved_release_is_announced(receiver, world, release_manager, lead, run, settings):
    settings.LINEAGE_BASE_URL = "https://lineage.example.com"
    subscribe(receiver.url, ["release.approved"])
    release = pending_release(world, release_manager)
    run(lambda: approve(release, by=lead))
    document = _document(receiver, "release.approved")
    assert document["summary"] == "churn-v42 is approved: it has every signature it needs (last by lead)"
    assert document["links"]["release"] == "https://lineage.example.com/releases/churn-v42/"


def test_an_approval_that_is_not_yet_enough_is_not_announced_as_approved(
    receiver, world, release_manager, lead, run, settings
):
    settings.LINEAGE_REQUIRED_APPROVALS = 2
    subscribe(receiver.url, ["release.approved"])
    release = pending_release(world, release_manager)
    run(lambda: approve(release, by=lead))
    assert receiver.received == []


def test_a_rejected_release_is_announced_with_the_comment(receiver, world, release_manager, lead, run):
    subscribe(receiver.url, ["release.rejected"])
    release = pending_release(world, release_manager)
    run(lambda: reject(release, by=lead, comment="the holdout AUC dropped"))
    document = _document(receiver, "release.rejected")
    assert document["summary"] == "churn-v42 was rejected by lead: the holdout AUC dropped"
    assert document["reason"] == "the holdout AUC dropped"


@pytest.fixture
def approved_on_18(world: World, release_manager: User, lead2: User) -> Any:
    """churn-v42, approved, trained on churn-train:18."""
    return world.full_release(42, by=release_manager, approver=lead2, dataset="churn-train:18")


def test_a_quarantine_is_announced_with_the_releases_that_used_the_data(receiver, world, approved_on_18, lead, run):
    subscribe(receiver.url, ["dataset_version.quarantined"])
    version = world.dataset("churn-train:18")
    run(lambda: services.quarantine_dataset_version(version, by=lead, reason="partner changed the label mapping"))
    document = _document(receiver, "dataset_version.quarantined")
    assert document["summary"] == "churn-train:18 was quarantined by lead: partner changed the label mapping"
    assert document["dataset_version"] == "churn-train:18"
    assert document["details"] == {"releases_using": ["churn-v42"]}
    assert document["links"]["dataset_version"] == "/datasets/churn-train/18/"


def test_an_invalidated_approval_is_announced(receiver, world, approved_on_18, lead, run):
    subscribe(receiver.url, ["release.approval_invalidated"])
    version = world.dataset("churn-train:18")
    run(lambda: services.quarantine_dataset_version(version, by=lead, reason="partner changed the label mapping"))
    document = _document(receiver, "release.approval_invalidated")
    assert document["summary"] == (
        "churn-v42 lost its approval: churn-train:18 quarantined: partner changed the label mapping"
    )
    assert document["release"] == "churn-v42"


def test_a_deployment_is_announced(receiver, world, approved_on_18, release_manager, run):
    subscribe(receiver.url, ["deployment.deployed"])
    endpoint = world.endpoint("churn-scoring")
    run(lambda: services.record_deployment(endpoint, approved_on_18, by=release_manager, source=Deployment.Source.API))
    document = _document(receiver, "deployment.deployed")
    assert document["summary"] == "churn-v42 is live on churn-scoring (production), deployed by relman"
    assert (document["release"], document["endpoint"], document["environment"]) == (
        "churn-v42",
        "churn-scoring",
        "production",
    )
    assert document["details"]["kind"] == "deploy"
    assert document["details"]["source"] == "api"
    assert document["links"]["endpoint"] == "/endpoints/churn-scoring/"


def test_a_rollback_is_announced_with_its_reason(receiver, world, release_manager, lead2, oncall, run):
    subscribe(receiver.url, ["deployment.rolled_back"])
    v41 = world.full_release(41, by=release_manager, approver=lead2)
    v42 = world.full_release(42, by=release_manager, approver=lead2)
    endpoint = world.endpoint("churn-scoring")
    world.deploy(endpoint, v41, by=release_manager, hours_ago=2)
    world.deploy(endpoint, v42, by=release_manager, hours_ago=1)
    run(
        lambda: services.roll_back(
            endpoint, by=oncall, reason="INC-311: claims triage regressed", source=Deployment.Source.UI
        )
    )
    document = _document(receiver, "deployment.rolled_back")
    assert document["summary"] == (
        "churn-scoring (production) was rolled back to churn-v41 by oncall: INC-311: claims triage regressed"
    )
    assert (document["release"], document["details"]["kind"]) == ("churn-v41", "rollback")
    assert (document["model_version"], document["lineage_digest"]) == ("churn-model/41", v41.lineage_digest)
    assert document["links"]["release"] == "/releases/churn-v41/"


def _git(*args: str, cwd: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def test_a_source_failing_longer_than_the_threshold_is_announced_once_and_its_recovery_too(
    receiver, settings, tmp_path: Path, db, run
):
    settings.LINEAGE_GIT_CACHE_DIR = tmp_path / "cache"
    settings.LINEAGE_SYNC_ALERT_MINUTES = 30
    subscribe(receiver.url, ["sync.failing", "sync.recovered"])
    origin = tmp_path / "origin"
    state = services.add_git_repository(name="churn", url=str(origin), by=SYSTEM)
    start = timezone.now()

    def sync_at(minutes: int) -> str:
        with time_machine.travel(start + datetime.timedelta(minutes=minutes), tick=True):
            return str(run(lambda: tasks.sync_source.delay(state.pk).get()))

    assert sync_at(0).startswith("failed: cannot clone")
    assert sync_at(20).startswith("failed")
    assert receiver.received == [], "failing for 20 minutes is under the threshold"
    sync_at(31)
    document = _document(receiver, "sync.failing")
    assert document["source"] == "churn"
    # Whole minutes since the first failure was recorded, which took as long as a failed clone (a second or so).
    assert re.match(
        r"Sync of git source churn has failed for 3[01] minutes \(3 attempts in a row\): ", document["summary"]
    )
    assert "cannot clone" in document["reason"]
    assert document["links"]["sync"] == "/sync/"
    for minutes in (40, 50, 90):
        sync_at(minutes)
    assert len(receiver.received) == 1, "one incident, announced once"
    assert AuditEvent.objects.filter(action="sync.failing").count() == 1
    origin.mkdir()
    _git("init", "-q", cwd=origin)
    _git("commit", "-q", "--allow-empty", "-m", "first", cwd=origin)
    assert not sync_at(95).startswith("failed")
    assert len(receiver.received) == 2
    recovered = receiver.received[1].document
    assert recovered["type"] == "sync.recovered"
    assert re.fullmatch(r"Sync of git source churn works again after failing for 9[45] minutes", recovered["summary"])
    state.refresh_from_db()
    assert (state.failing_since, state.failure_alerted_at, state.failures_in_a_row) == (None, None, 0)
    # A new incident is announced again.
    origin.rename(tmp_path / "moved")
    sync_at(100)
    sync_at(131)
    assert [r.document["type"] for r in receiver.received] == ["sync.failing", "sync.recovered", "sync.failing"]


def test_a_failed_verification_is_announced_once_until_acknowledged(
    receiver, behind_the_apps_back, django_capture_on_commit_callbacks
):
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    subscribe(receiver.url, ["audit.verification_failed"])
    with transaction.atomic():
        log.record_many([log.PendingEvent("test.outbound", "thing", str(i)) for i in range(10)], actor=SYSTEM)
    with transaction.atomic():
        checkpoints.issue_checkpoint()
    behind_the_apps_back("UPDATE audit_auditevent SET reason = 'nothing to see' WHERE seq = 4", None)
    assert audit_tasks.verify_log() is False
    document = _document(receiver, "audit.verification_failed")
    first = VerificationRun.objects.get(ok=False)
    assert document["summary"] == f"Audit log verification failed at event #{first.broken_seq}: {first.problem}"
    assert document["details"] == {"broken_seq": first.broken_seq, "problem": first.problem, "run": first.pk}
    assert document["links"]["audit_trail"] == "/audit/"
    assert audit_tasks.verify_log() is False
    assert len(receiver.received) == 1, "the alarm is already up: the second failure is not announced"
    for failed in VerificationRun.objects.filter(ok=False):
        services.acknowledge_alarm(failed, note="restored from the backup", by=admin)
    assert audit_tasks.verify_log() is False
    assert len(receiver.received) == 2, "acknowledged, the next failure is a new incident"
