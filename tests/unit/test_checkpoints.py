"""Signed checkpoints: issued as C2SP notes, appended outside the database, signed after approvals,
deployments and rollbacks, served at a stable URL without signing in."""

from __future__ import annotations

import base64
import io

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from audit import checkpoints, log, merkle, signing, verifier, vocabulary
from audit.models import AuditEvent, Checkpoint
from releases import services
from releases.models import Deployment
from tests.factories import SYSTEM, World

vocabulary.register("test.checkpointed", "An event written by the checkpoint tests.")


def _events(count: int) -> None:
    with transaction.atomic():
        log.record_many([log.PendingEvent("test.checkpointed", "thing", str(i)) for i in range(count)], actor=SYSTEM)


def _issue() -> Checkpoint:
    with transaction.atomic():
        return checkpoints.issue_checkpoint()


def _leaves() -> list[bytes]:
    return [
        merkle.leaf_hash(bytes.fromhex(h)) for h in AuditEvent.objects.order_by("seq").values_list("hash", flat=True)
    ]


@pytest.mark.django_db
def test_a_checkpoint_is_a_signed_note_of_origin_size_and_root(settings):
    _events(5)
    checkpoint = _issue()
    root = merkle.root(_leaves())
    text = f"release-lineage\n5\n{base64.b64encode(root).decode()}\n"
    assert checkpoint.note.startswith(text + "\n\u2014 release-lineage ")
    assert checkpoint.root_hash == root.hex()
    assert checkpoint.key_id == signing.fingerprint()[:16]
    body, _ = verifier.open_checkpoint(checkpoint.note, signing.public_key_raw())
    assert (body.origin, body.size, body.root) == ("release-lineage", 5, root)
    _, signed = verifier.verify_note(checkpoint.note, [verifier.parse_verifier_key(signing.note_key().vkey)])
    assert signed == [signing.note_key()]


@pytest.mark.django_db
def test_the_log_key_is_a_note_verifier_key_with_a_pinnable_fingerprint():
    key = verifier.parse_verifier_key(signing.note_key().vkey)
    assert key.name == "release-lineage"
    assert key.public_key == signing.public_key_raw()
    assert signing.fingerprint() == verifier.key_fingerprint(signing.public_key_raw())
    assert len(signing.fingerprint()) == 64


@pytest.mark.django_db
def test_a_checkpoint_is_reused_while_nothing_is_added():
    _events(2)
    first = _issue()
    assert _issue().pk == first.pk
    _events(1)
    assert _issue().size == 3
    assert list(Checkpoint.objects.values_list("size", flat=True)) == [3, 2]


@pytest.mark.django_db
def test_each_checkpoint_is_appended_outside_the_database_after_commit(settings, django_capture_on_commit_callbacks):
    _events(2)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        first = _issue()
    assert not settings.LINEAGE_CHECKPOINT_LOG.exists()
    for callback in pending:
        callback()
    with django_capture_on_commit_callbacks(execute=True):
        _events(1)
        second = _issue()
    assert checkpoints.read_log(settings.LINEAGE_CHECKPOINT_LOG) == [first.note, second.note]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_checkpoint_never_reaches_the_file(settings):
    _events(2)

    def sign_then_fail() -> None:
        with transaction.atomic():
            checkpoints.issue_checkpoint()
            raise RuntimeError("the transaction that signed it failed")

    with pytest.raises(RuntimeError):
        sign_then_fail()
    assert not Checkpoint.objects.exists()
    assert not settings.LINEAGE_CHECKPOINT_LOG.exists()


def test_a_checkpoint_log_cut_short_is_reported(tmp_path):
    path = tmp_path / "checkpoints.log"
    path.write_text("release-lineage\n3\nAAAA\n\n\u2014 release-lineage abc\n\nrelease-lineage\n4\n")
    with pytest.raises(verifier.VerificationError, match="cut short"):
        checkpoints.read_log(path)


def test_an_approval_is_checkpointed_once_it_commits(db, ci_account, lead, django_capture_on_commit_callbacks):
    world = World.create()
    with django_capture_on_commit_callbacks(execute=True):
        release = world.full_release(42, by=ci_account, approver=lead)
    approved = AuditEvent.objects.get(action="release.approved", object_key=release.name)
    assert Checkpoint.objects.filter(size__gte=approved.seq).exists()


def test_deployments_and_rollbacks_are_checkpointed_once_they_commit(
    db, ci_account, lead, release_manager, oncall, django_capture_on_commit_callbacks
):
    world = World.create()
    endpoint = world.endpoint()
    old = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    world.deploy(endpoint, old, by=release_manager, hours_ago=3)
    new = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    assert not Checkpoint.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        world.deploy(endpoint, new, by=release_manager)
    deployed = AuditEvent.objects.get(action="deployment.recorded", new__release="churn-v42")
    assert Checkpoint.objects.order_by("-size").first().size >= deployed.seq
    with django_capture_on_commit_callbacks(execute=True):
        services.roll_back(endpoint, by=oncall, reason="error rate up", source=Deployment.Source.UI)
    rolled_back = AuditEvent.objects.get(action="deployment.rolled_back")
    assert Checkpoint.objects.order_by("-size").first().size >= rolled_back.seq


def test_beat_signs_a_checkpoint_every_five_minutes_by_default(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert entry == {"task": "audit.tasks.sign_checkpoint", "schedule": 300.0}


@pytest.mark.django_db
def test_the_latest_checkpoint_is_served_without_signing_in(client: Client):
    assert client.get("/audit/checkpoint").status_code == 404
    _events(3)
    _issue()
    _events(2)
    newest = _issue()
    response = client.get("/audit/checkpoint")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == newest.note
    assert response["X-Log-Key"] == signing.note_key().vkey
    assert response["X-Log-Key-Fingerprint"] == f"sha256:{signing.fingerprint()}"
    key = client.get("/audit/checkpoint/key").content.decode().splitlines()
    assert key[:2] == [signing.note_key().vkey, f"sha256:{signing.fingerprint()}".join(("fingerprint ", ""))]
    assert client.post("/audit/checkpoint").status_code == 405


@pytest.mark.django_db
def test_consistency_proofs_are_served_between_checkpoints(client: Client):
    _events(3)
    old = _issue()
    _events(4)
    new = _issue()
    response = client.get("/audit/consistency/3/7")
    proof = [base64.b64decode(line) for line in response.content.decode().split()]
    assert merkle.verify_consistency(3, 7, bytes.fromhex(old.root_hash), bytes.fromhex(new.root_hash), proof)
    assert client.get("/audit/consistency/3/8").status_code == 404
    assert client.get("/audit/consistency/5/3").status_code == 404
    assert client.get("/audit/consistency/7/7").content == b""


@pytest.mark.django_db
def test_audit_checkpoint_prints_the_signed_note():
    _events(2)
    out = io.StringIO()
    call_command("audit_checkpoint", stdout=out)
    checkpoint = Checkpoint.objects.get()
    assert out.getvalue() == (f"checkpoint release-lineage size 2 root {checkpoint.root_hash}\n{checkpoint.note}")


def test_the_log_name_must_be_a_note_key_name(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    from lineage_site import settings as site_settings

    monkeypatch.setenv("LINEAGE_AUDIT_ORIGIN", "release lineage")
    with pytest.raises(ImproperlyConfigured, match="LINEAGE_AUDIT_ORIGIN must have no spaces"):
        importlib.reload(site_settings)
    monkeypatch.delenv("LINEAGE_AUDIT_ORIGIN")
    importlib.reload(site_settings)


@pytest.mark.django_db
def test_audit_checkpoint_signs_nothing_over_a_broken_log(behind_the_apps_back):
    _events(3)
    behind_the_apps_back("UPDATE audit_auditevent SET reason = 'edited' WHERE seq = 2", None)
    err = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("audit_checkpoint", stdout=io.StringIO(), stderr=err)
    assert exited.value.code == 1
    assert err.getvalue() == "audit log broken at #2: event #2 was changed after it was written; no checkpoint signed\n"
    assert not Checkpoint.objects.exists()
