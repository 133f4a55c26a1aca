"""audit_verify against the signed checkpoints, and the rewrites a database superuser can attempt.

The attacker writes SQL with the triggers switched off (on PostgreSQL as a superuser would, with
``session_replication_role = replica``; SQLite has no triggers) and recomputes hashes with the
application's own hash function. What they do not have is the signing key.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import checkpoints, log, signing, verifier, vocabulary
from audit.models import AuditEvent, Checkpoint, Verification
from releases import services
from releases.models import Approval
from tests.conftest import insider_cursor
from tests.factories import SYSTEM, World, reject

vocabulary.register("test.verified", "An event written by the audit_verify tests.")


def _events(count: int, start: int = 0) -> None:
    with transaction.atomic():
        log.record_many(
            [log.PendingEvent("test.verified", "thing", str(start + i), new={"i": start + i}) for i in range(count)],
            actor=SYSTEM,
        )


def _checkpoint() -> Checkpoint:
    with transaction.atomic():
        return checkpoints.issue_checkpoint()


def _verify(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def _signed(checkpoint: Checkpoint) -> str:
    return f"checkpoint {checkpoint.size} (signed {checkpoint.issued_at:%Y-%m-%d %H:%M:%S} UTC)"


@pytest.fixture(autouse=True)
def _rows_an_insider_can_see(transactional_db: None) -> None:
    """The insider's rewrites may run on their own login (the owner's): the test's rows must be committed."""


def _superuser() -> Any:
    """A cursor that passes every trigger: what a database superuser has."""
    return insider_cursor()


def _rechain_from(seq: int) -> None:
    """Recompute prev_hash and hash from ``seq`` on with the application's own hash function."""
    prev = AuditEvent.objects.get(seq=seq - 1).hash if seq > 1 else log.GENESIS_HASH
    with _superuser() as cursor:
        for event in AuditEvent.objects.filter(seq__gte=seq).order_by("seq"):
            event.prev_hash = prev
            prev = event.compute_hash()
            cursor.execute(
                "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE seq = %s",
                [event.prev_hash, prev, event.seq],
            )


def _rewrite_actor(seq: int, actor: str) -> None:
    with _superuser() as cursor:
        cursor.execute("UPDATE audit_auditevent SET actor = %s WHERE seq = %s", [actor, seq])
    _rechain_from(seq)


def _insert_forged_approval(at_seq: int, new: dict[str, Any] | None = None, actor: str = "lead") -> None:
    """A correctly chained ``release.approved`` event at ``at_seq``, the later events renumbered after it."""
    new = {"meaning": "Approved for production"} if new is None else new
    with _superuser() as cursor:
        for seq in AuditEvent.objects.filter(seq__gte=at_seq).order_by("-seq").values_list("seq", flat=True):
            cursor.execute("UPDATE audit_auditevent SET seq = %s WHERE seq = %s", [seq + 1, seq])
        forged = AuditEvent(
            seq=at_seq,
            at=timezone.now(),
            actor=actor,
            action="release.approved",
            object_type="release",
            object_key="churn-v42",
            new=new,
            prev_hash=AuditEvent.objects.get(seq=at_seq - 1).hash if at_seq > 1 else log.GENESIS_HASH,
        )
        forged.hash = forged.compute_hash()
        cursor.execute(
            "INSERT INTO audit_auditevent (seq, at, actor, action, object_type, object_key, old, new, reason,"
            " request_id, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, NULL, %s, '', '', %s, %s)",
            [
                forged.seq,
                forged.at,
                forged.actor,
                forged.action,
                forged.object_type,
                forged.object_key,
                json.dumps(new),
                forged.prev_hash,
                forged.hash,
            ],
        )
    _rechain_from(at_seq + 1)


@pytest.fixture
def anchored(db: Any) -> tuple[Checkpoint, Checkpoint]:
    """18 events: checkpoints at 10 and 15, three events not yet checkpointed."""
    _events(10)
    first = _checkpoint()
    _events(5, start=10)
    second = _checkpoint()
    _events(3, start=15)
    return first, second


def test_an_intact_log_reports_its_checkpoints_and_what_is_pending(anchored):
    code, out, err = _verify()
    assert (code, err) == (0, "")
    assert out == (
        "audit log intact: 18 events verified\n"
        f"checkpoints: 2 signed by key {signing.fingerprint()}, the newest at size 15\n"
        "not yet checkpointed: 3\n"
    )


def test_recomputed_hash_rewrite_is_named_with_the_checkpoint_it_contradicts(anchored):
    first, _ = anchored
    _rewrite_actor(7, "mallory")
    # The chain alone is fooled: every hash was recomputed.
    assert log.verify_chain().ok
    code, _, err = _verify()
    assert code == 1
    assert err == f"audit log broken at #7: event #7 is not the one {_signed(first)} signed: it was rewritten\n"


def test_a_rewrite_after_the_first_checkpoint_names_the_one_that_covers_it(anchored):
    _, second = anchored
    _rewrite_actor(12, "mallory")
    code, _, err = _verify()
    assert code == 1
    assert err.startswith(f"audit log broken at #12: event #12 is not the one {_signed(second)} signed")


def test_a_forged_chained_insert_inside_a_checkpoint_is_named(anchored):
    first, _ = anchored
    _insert_forged_approval(4)
    assert log.verify_chain().ok
    code, _, err = _verify()
    assert code == 1
    assert err.startswith(f"audit log broken at #4: event #4 is not the one {_signed(first)} signed")


def test_a_forged_chained_approval_after_the_newest_checkpoint_is_named(anchored):
    """No checkpoint covers it yet, but a decision event must prove its own signature: without one it is named."""
    _insert_forged_approval(19)
    assert log.verify_chain().ok
    code, _, err = _verify()
    assert code == 1
    assert err.startswith("audit log broken at #19: event #19 (release.approved of churn-v42 by lead) carries no")


def _signed_by(key: Ed25519PrivateKey, *, approver: str = "lead", release: str = "churn-v42") -> dict[str, str]:
    fields = {
        "meaning": "Approved for production",
        "lineage_digest": "sha256:" + "ab" * 32,
        "signed_at": "2026-11-27T03:12:00+00:00",
    }
    statement = verifier.approval_statement(release=release, approver=approver, decision="approved", **fields)
    return {**fields, "decision": "approved", "signature": key.sign(statement).hex()}


def test_a_forged_approval_signed_by_another_key_is_named(anchored):
    _insert_forged_approval(19, new=_signed_by(Ed25519PrivateKey.generate()))
    code, _, err = _verify()
    assert code == 1
    assert err.startswith("audit log broken at #19: event #19 is forged: approved of churn-v42 by lead: the signature")


def test_a_real_signature_moved_to_another_signer_is_named(anchored):
    """The statement is rebuilt from the event's own actor and release: a signature cannot be reattributed."""
    _insert_forged_approval(19, new=_signed_by(signing.private_key(), approver="lead"), actor="mallory")
    code, _, err = _verify()
    assert code == 1
    assert "event #19 is forged: approved of churn-v42 by mallory" in err


def test_a_replayed_signed_approval_is_named(anchored):
    signed = _signed_by(signing.private_key())
    _insert_forged_approval(19, new=signed)
    assert _verify()[0] == 0
    _insert_forged_approval(20, new=signed)
    code, _, err = _verify()
    assert code == 1
    assert "event #20 repeats the signed decision of event #19" in err


def test_a_replay_of_an_approval_verified_earlier_is_named_by_an_incremental_run(anchored):
    signed = _signed_by(signing.private_key())
    _insert_forged_approval(19, new=signed)
    _checkpoint()
    assert _verify()[0] == 0
    _insert_forged_approval(20, new=signed)
    code, _, err = _verify("--incremental")
    assert code == 1
    assert "event #20 repeats the signed decision of event #19" in err


def test_real_signed_decisions_carry_their_signature_and_verify(db, ci_account, lead):
    world = World.create()
    world.full_release(42, by=ci_account, approver=lead)
    rejected, _ = services.create_release(
        name="churn-v43",
        model_version=world.model_version("churn-model/43").key,
        validation_report_uri="s3://reports/r.html",
        submit=True,
        by=ci_account,
    )
    reject(rejected, by=lead, comment="the holdout set leaks training rows")
    code, _, err = _verify()
    assert (code, err) == (0, "")
    decisions = AuditEvent.objects.filter(action__in=["release.approved", "release.rejected"])
    assert {event.action: event.new["signature"] for event in decisions} == {
        f"release.{approval.decision}": approval.signature for approval in Approval.objects.all()
    }


def test_no_checkpoint_is_signed_over_a_log_rewritten_below_it(anchored):
    _rewrite_actor(12, "mallory")
    with pytest.raises(log.LogBroken, match="event #15 is not the event already signed"):
        _checkpoint()
    assert Checkpoint.objects.count() == 2


def test_an_edited_event_not_rehashed_is_named_with_the_checkpoint(anchored):
    first, _ = anchored
    with _superuser() as cursor:
        cursor.execute("UPDATE audit_auditevent SET reason = 'nothing to see' WHERE seq = 3")
    code, _, err = _verify()
    assert code == 1
    changed = "event #3 was changed after it was written"
    assert err == f"audit log broken at #3: {changed}; it contradicts {_signed(first)}\n"


def test_events_removed_from_the_end_of_a_checkpoint_are_named(anchored):
    _, second = anchored
    with _superuser() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq >= 14")
    code, _, err = _verify()
    assert code == 1
    missing = "event #14 is missing (the log ends at #13)"
    assert err == f"audit log broken at #14: {missing}; it contradicts {_signed(second)}\n"


def test_a_checkpoint_row_not_signed_by_the_key_is_refused(anchored):
    note = "release-lineage\n18\n" + base64.b64encode(bytes(32)).decode() + "\n"
    forged = note + "\n" + signing.note_signature(note, name="release-lineage", key=Ed25519PrivateKey.generate())
    with _superuser() as cursor:
        cursor.execute(
            "INSERT INTO audit_checkpoint (size, root_hash, origin, issued_at, key_id, signature, note)"
            " VALUES (18, %s, 'release-lineage', %s, 'x', 'x', %s)",
            ["00" * 32, timezone.now(), forged],
        )
    code, _, err = _verify()
    assert code == 1
    assert err.startswith("audit log broken: checkpoint 18 is not signed by the trusted key")


def test_changed_tree_hashes_are_caught_by_the_consistency_proofs(anchored):
    with _superuser() as cursor:
        cursor.execute('UPDATE audit_treenode SET hash = %s WHERE level = 1 AND "index" = 6', [bytes(32)])
    code, _, err = _verify()
    assert code == 1
    assert "the stored tree does not prove checkpoint 15" in err


def test_deleted_checkpoint_rows_are_caught_by_the_checkpoint_log(db, django_capture_on_commit_callbacks, settings):
    with django_capture_on_commit_callbacks(execute=True):
        _events(10)
        first = _checkpoint()
        _events(5, start=10)
        _checkpoint()
    assert len(checkpoints.read_log(settings.LINEAGE_CHECKPOINT_LOG)) == 2
    # Everything in the database rewritten, the checkpoints and the tree that covered it deleted:
    # only the range is known, from the copy outside.
    with _superuser() as cursor:
        cursor.execute("DELETE FROM audit_checkpoint")
        cursor.execute("DELETE FROM audit_treenode")
    _rewrite_actor(6, "mallory")
    code, _, err = _verify()
    assert code == 1
    assert err.startswith(
        "audit log broken at #1: events #1 to #10 do not hash to the root "
        f"checkpoint 10 (from {settings.LINEAGE_CHECKPOINT_LOG}) signed"
    )
    assert first.size == 10


def test_deleted_checkpoint_rows_alone_are_reported(db, django_capture_on_commit_callbacks, settings):
    with django_capture_on_commit_callbacks(execute=True):
        _events(4)
        _checkpoint()
    with _superuser() as cursor:
        cursor.execute("DELETE FROM audit_checkpoint")
    code, _, err = _verify()
    assert code == 1
    assert err == (
        f"audit log broken: checkpoint 4 (from {settings.LINEAGE_CHECKPOINT_LOG}) is missing from the database: "
        "checkpoint rows were deleted\n"
    )


def test_a_copy_kept_outside_is_checked_too(anchored, tmp_path: Path):
    first, _ = anchored
    copy = tmp_path / "kept.log"
    checkpoints.append_to_log(first.note, copy)
    assert _verify("--checkpoints", str(copy))[0] == 0
    other = Ed25519PrivateKey.generate()
    text = verifier.parse_note(first.note).text.replace("\n10\n", "\n11\n")
    checkpoints.append_to_log(text + "\n" + signing.note_signature(text, name="release-lineage", key=other), copy)
    code, _, err = _verify("--checkpoints", str(copy))
    assert code == 1
    assert err.startswith(f"audit log broken: checkpoint 11 in {copy} is not signed by the trusted key")


def test_incremental_verification_walks_only_the_new_events(anchored):
    assert _verify()[0] == 0
    assert Verification.objects.get().size == 15
    _events(4, start=18)
    _checkpoint()
    code, out, _ = _verify("--incremental")
    assert code == 0
    assert out.startswith("audit log intact: 7 events verified since checkpoint 15\n")
    assert out.endswith("the newest at size 22\nnot yet checkpointed: 0\n")
    assert list(Verification.objects.values_list("size", "incremental")) == [(22, True), (15, False)]


def test_incremental_verification_walks_everything_again_when_the_old_part_changed(anchored):
    first, _ = anchored
    assert _verify()[0] == 0
    _rewrite_actor(5, "mallory")
    code, out, err = _verify("--incremental")
    assert code == 1
    assert out == "the log changed at or before event #15, verified earlier: the whole log was walked\n"
    assert err.startswith(f"audit log broken at #5: event #5 is not the one {_signed(first)} signed")


def test_a_legacy_checkpoint_signed_before_notes_still_verifies(db):
    _events(3)
    with transaction.atomic():
        from audit import tree

        tree.extend(3)
        legacy = Checkpoint(
            size=3, root_hash=tree.root(3).hex(), origin="release-lineage", issued_at=timezone.now(), key_id="x"
        )
        legacy.signature = signing.sign(legacy.legacy_message())
        legacy.save()
    assert _verify()[0] == 0
    with _superuser() as cursor:
        cursor.execute("UPDATE audit_checkpoint SET root_hash = %s", ["ab" * 32])
    assert _verify()[2] == "audit log broken: checkpoint 3 is not signed by the trusted key\n"


def test_the_trusted_key_can_be_pinned(anchored):
    assert _verify("--key", signing.fingerprint())[0] == 0
    assert _verify("--key", signing.note_key().vkey)[0] == 0
    code, _, err = _verify("--key", "0" * 64)
    assert code == 1
    assert err.startswith("audit log not trusted: the server signs with key")
    other = verifier.verifier_key("release-lineage", bytes(range(32)))
    code, _, err = _verify("--key", other)
    assert code == 1
    assert "checkpoint 10 is not signed by the trusted key" in err


def test_a_malformed_key_is_bad_usage(anchored):
    with pytest.raises(CommandError, match="--key: not a note verifier key") as refused:
        call_command("audit_verify", "--key", "nonsense", stdout=io.StringIO())
    assert refused.value.returncode == 2


@pytest.mark.django_db(transaction=True)
def test_postgres_triggers_stop_the_rewrite_unless_switched_off_as_superuser(postgres):
    """On PostgreSQL the rewrite needs the triggers off; with them off, it is still named."""
    _events(10)
    first = _checkpoint()
    _events(2, start=10)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET actor = 'mallory' WHERE seq = 7")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('UPDATE audit_treenode SET hash = %s WHERE level = 0 AND "index" = 6', [bytes(32)])
    with transaction.atomic():
        _rewrite_actor(7, "mallory")
    assert AuditEvent.objects.get(seq=7).actor == "mallory"
    code, _, err = _verify()
    assert code == 1
    assert err.startswith(f"audit log broken at #7: event #7 is not the one {_signed(first)} signed")
    with transaction.atomic():
        _insert_forged_approval(3)
    assert _verify()[2].startswith(f"audit log broken at #3: event #3 is not the one {_signed(first)} signed")


def test_no_checkpoint_is_signed_over_a_rewrite_with_the_tree_rebuilt(anchored):
    """Even with the stored tree deleted and rebuilt from forged events, the server will not sign a
    tree that does not extend its own last checkpoint."""
    _rewrite_actor(3, "mallory")
    with _superuser() as cursor:
        cursor.execute("DELETE FROM audit_treenode")
    with pytest.raises(log.LogBroken, match="the log no longer extends checkpoint 15: events up to #15 were rewritten"):
        _checkpoint()
    assert Checkpoint.objects.count() == 2


def test_something_that_is_not_a_checkpoint_in_a_kept_copy_is_reported(anchored, tmp_path: Path):
    copy = tmp_path / "kept.log"
    copy.write_text("hello\n\n\u2014 someone AAAAAAAA\n\n")
    code, _, err = _verify("--checkpoints", str(copy))
    assert code == 1
    assert err.startswith(f"audit log broken: the checkpoint log {copy} holds something that is not a checkpoint")
