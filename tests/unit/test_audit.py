"""The audit log: hash chain, append-only at every level, audit_verify."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import log, vocabulary
from audit.models import AppendOnlyError, AuditEvent
from tests.conftest import insider_cursor
from tests.factories import SYSTEM

# Actions only these tests write; registered like every action the product records.
vocabulary.register("test.event", "An event written by the audit log tests.")


def _events(count: int) -> list[AuditEvent]:
    with transaction.atomic():
        return [
            log.record("test.event", actor=SYSTEM, object_type="thing", object_key=str(i), new={"i": i}, reason="r")
            for i in range(count)
        ]


def _verify() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_events_are_numbered_and_chained():
    first, second, third = _events(3)
    assert [e.seq for e in (first, second, third)] == [1, 2, 3]
    assert first.prev_hash == log.GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    stored = AuditEvent.objects.get(seq=2)
    assert stored.compute_hash() == stored.hash


@pytest.mark.django_db(transaction=True)
def test_events_must_be_written_inside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        log.record("test.event", actor=SYSTEM, object_type="t", object_key="k")


@pytest.mark.django_db
def test_orm_refuses_update_and_delete():
    [event] = _events(1)
    event.reason = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get().reason == "r"


@pytest.mark.django_db
def test_audit_verify_passes_on_an_intact_log():
    _events(5)
    assert _verify() == (
        0,
        "audit log intact: 5 events verified\n"
        "checkpoints: none yet (manage.py audit_checkpoint signs one)\n"
        "not yet checkpointed: 5\n",
        "",
    )


@pytest.fixture
def tamper(behind_the_apps_back):
    # Behind the ORM's back, as the tables' owner with the append-only trigger lifted.
    return behind_the_apps_back


@pytest.mark.django_db(transaction=True)
def test_audit_verify_names_the_first_edited_event(tamper):
    _events(5)
    tamper("UPDATE audit_auditevent SET reason = %s WHERE seq = %s", ["nothing to see", 3])
    code, _, err = _verify()
    assert code == 1
    assert err == "audit log broken at #3: event #3 was changed after it was written; no checkpoint covers it yet\n"


@pytest.mark.django_db(transaction=True)
def test_audit_verify_names_a_deleted_event(tamper):
    _events(5)
    tamper("DELETE FROM audit_auditevent WHERE seq = %s", [2])
    code, _, err = _verify()
    assert code == 1
    assert err.startswith("audit log broken at #2: event #2 is missing")


@pytest.mark.django_db(transaction=True)
def test_audit_verify_catches_a_rehashed_event_through_the_next_link(tamper):
    events = _events(4)
    forged = AuditEvent.objects.get(seq=2)
    forged.reason = "forged"
    new_hash = forged.compute_hash()
    tamper("UPDATE audit_auditevent SET reason = %s, hash = %s WHERE seq = %s", ["forged", new_hash, 2])
    assert events[2].prev_hash != new_hash
    code, _, err = _verify()
    assert code == 1
    assert err.startswith("audit log broken at #3: event #3 does not link to event #2")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_auditevent SET reason = 'x'", "DELETE FROM audit_auditevent", "TRUNCATE audit_auditevent"],
)
def test_postgres_refuses_update_delete_and_truncate(postgres, sql):
    _events(2)
    # As the application's role a missing privilege refuses first; as the owner, the trigger.
    with (
        pytest.raises(DatabaseError, match=r"append-only|Cannot|permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert AuditEvent.objects.count() == 2


@pytest.mark.django_db
def test_events_written_during_a_request_carry_its_request_id(rf):
    from django.http import HttpResponse

    from audit.middleware import RequestIdMiddleware

    def view(request):
        _events(1)
        return HttpResponse("ok")

    response = RequestIdMiddleware(view)(rf.get("/", HTTP_X_REQUEST_ID="ci-run-123"))
    assert response["X-Request-ID"] == "ci-run-123"
    assert AuditEvent.objects.get().request_id == "ci-run-123"
    RequestIdMiddleware(view)(rf.get("/"))
    generated = AuditEvent.objects.get(seq=2).request_id
    assert len(generated) == 32


# Any text PostgreSQL stores: no NUL, no lone surrogates.
_TEXT = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FFF, blacklist_categories=["Cs"]))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.sampled_from([0.862, -1.5, 1e-05]) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actor=_TEXT.filter(lambda s: 0 < len(s) <= 150), reason=_TEXT, old=_JSON, new=_JSON, whole_second=st.booleans())
def test_the_verifiers_fast_hash_is_the_events_own_hash(monkeypatch, actor, reason, old, new, whole_second):
    """walk_chain rehashes rows read back as plain values; it must agree with AuditEvent.compute_hash
    for any text and JSON, and for times with and without microseconds."""
    when = timezone.now().replace(microsecond=0 if whole_second else 123456)
    monkeypatch.setattr(log.timezone, "now", lambda: when)
    with transaction.atomic():
        event = log.record(
            "test.event",
            actor=log.SystemActor(actor),
            object_type="thing",
            object_key="k",
            old=old,
            new=new,
            reason=reason,
        )
    assert AuditEvent.objects.get(seq=event.seq).compute_hash() == event.hash
    hashes = list(log.walk_chain())
    assert hashes[-1] == event.hash


@pytest.mark.django_db(transaction=True)
def test_reading_ahead_walks_the_same_log(postgres, monkeypatch):
    """Outside a transaction on PostgreSQL, audit_verify reads the next page on a second connection."""
    monkeypatch.setattr(log, "_PAGE", 10)
    _events(25)
    assert (
        list(log.walk_chain(read_ahead=True))
        == list(log.walk_chain())
        == [e.hash for e in AuditEvent.objects.order_by("seq")]
    )
    walk = log.walk_chain(read_ahead=True)
    assert next(walk)
    walk.close()  # stopping early stops the reader too
    with insider_cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq BETWEEN 11 AND 20")
    with pytest.raises(log.LogBroken, match=r"event #11 is missing \(next found is #21\)"):
        list(log.walk_chain(read_ahead=True))
