"""Evidence for a period: the population of production changes with each release's record, one signed
bundle that verify.py checks; from the command, and from the page through a worker with progress."""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from audit import signing, verifier
from audit.models import AuditEvent
from releases import evidence, lineage, services
from releases.errors import InvalidInput, PermissionRefused
from releases.models import Deployment, EvidenceExport
from tests.factories import World

REPOSITORY_VERIFIER = Path(verifier.__file__)


@pytest.fixture
def history(deployed_world: World, release_manager, oncall) -> dict[str, Deployment]:
    """churn-v41 (backfilled 48 h ago, before its approval), churn-v42 (3 h ago), then a rollback to v41 now
    on production; churn-v42 also on a staging endpoint."""
    production = deployed_world.endpoint("churn-scoring")
    staging = deployed_world.endpoint("churn-staging", "staging")
    v42 = Deployment.objects.get(release__name="churn-v42")
    on_staging = services.record_deployment(staging, v42.release, by=release_manager, source=Deployment.Source.API)
    rollback = services.roll_back(production, by=oncall, reason="INC-7: AUC alert", source=Deployment.Source.UI)
    return {"v42": v42, "staging": on_staging, "rollback": rollback}


def _last_days(days: int = 3) -> lineage.Period:
    today = timezone.now().date()
    since = datetime.datetime.combine(today - datetime.timedelta(days=days), datetime.time.min, tzinfo=datetime.UTC)
    return lineage.Period.checked(since, since + datetime.timedelta(days=days + 1))


def _files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}


def _verify(files: dict[str, bytes]) -> list[str]:
    return verifier.verify_bundle(files, trusted_key_pem=signing.public_key_pem().encode())


def _re_sign(files: dict[str, bytes]) -> None:
    """Re-sign the manifest with the server's own key: what only the server (or its key's thief) could do,
    so that the checks behind the manifest are the ones tested."""
    import hashlib

    manifest = json.loads(files["MANIFEST.json"])
    manifest["files"] = {
        name: hashlib.sha256(data).hexdigest()
        for name, data in sorted(files.items())
        if name not in ("MANIFEST.json", "MANIFEST.sig")
    }
    files["MANIFEST.json"] = verifier.canonical_json(manifest).encode()
    files["MANIFEST.sig"] = (signing.sign(files["MANIFEST.json"]) + "\n").encode()


def test_a_period_bundle_holds_the_population_and_each_release_and_verifies(history, auditor):
    data = evidence.export_period_evidence(_last_days(), ["production"], by=auditor).data
    files = _files(data)

    population = json.loads(files["population.json"])
    changes = population["changes"]
    assert [(c["kind"], c["release"], c["replaced"]) for c in changes] == [
        ("deploy", "churn-v41", None),
        ("deploy", "churn-v42", "churn-v41"),
        ("rollback", "churn-v41", "churn-v42"),
    ]
    rollback = changes[-1]
    assert rollback["actor"] == "oncall"
    assert rollback["reason"] == "INC-7: AUC alert"
    assert rollback["deployed_at"] == history["rollback"].deployed_at.isoformat()
    assert rollback["environment"] == "production"
    # The backfilled deployments predate their approvals; the rollback came after churn-v41 was signed.
    assert [c["approved_when_deployed"] for c in changes] == [False, False, True]
    [in_force] = rollback["approvals_in_force"]
    assert (in_force["approver"], in_force["counts_now"]) == ("lead2", True)
    assert in_force["signed_digest"] == lineage.trace("churn-v41").digest
    # Staging is outside the chosen environments.
    assert "churn-staging" not in files["population.json"].decode()

    assert {name.split("/")[1] for name in files if name.startswith("releases/")} == {"churn-v41", "churn-v42"}
    for release in ("churn-v41", "churn-v42"):
        trace = json.loads(files[f"releases/{release}/trace.json"])
        assert trace["lineage_digest"] == lineage.trace(release).digest
        # Each release in the standard forms too, as its own bundle carries them.
        assert {f"releases/{release}/cyclonedx/bom.json", f"releases/{release}/openlineage/events.json"} <= set(files)
        assert f"releases/{release}/intoto/approval-1-lead2.dsse.json" in files
    csv_lines = files["population.csv"].decode().splitlines()
    assert csv_lines[0].startswith("deployed_at,kind,environment,endpoint,release,replaced")
    assert len(csv_lines) == 4

    checked = _verify(files)
    assert checked[-1].startswith("population of 3 deployment(s) and rollback(s) from ")
    assert "each recorded in the signed log, 2 release record(s) checked" in checked[-1]
    assert any(line.startswith("churn-v41: lineage digest sha256:") for line in checked)
    assert (
        "churn-v42: 1 in-toto statement(s) in DSSE envelopes signed with the trusted key agree with approvals.json"
        in checked
    )
    export = AuditEvent.objects.filter(action="evidence.exported").get()
    assert (export.object_type, export.actor) == ("evidence", "auditor")
    assert export.new["changes"] == 3
    assert export.new["environments"] == ["production"]


def test_choosing_staging_too_brings_its_changes_and_nothing_else(history, auditor):
    data = evidence.export_period_evidence(_last_days(), ["production", "staging"], by=auditor).data
    changes = json.loads(_files(data)["population.json"])["changes"]
    assert [c["endpoint"] for c in changes if c["environment"] == "staging"] == ["churn-staging"]
    assert len(changes) == 4


def test_a_period_that_ended_before_the_rollback_leaves_it_out(history, auditor):
    until = history["rollback"].deployed_at
    period = lineage.Period.checked(until - datetime.timedelta(days=5), until)
    data = evidence.export_period_evidence(period, ["production"], by=auditor).data
    kinds = [c["kind"] for c in json.loads(_files(data)["population.json"])["changes"]]
    assert kinds == ["deploy", "deploy"]


def _tamper_change(field: str, value: Any) -> Any:
    def tamper(files: dict[str, bytes]) -> None:
        population = json.loads(files["population.json"])
        population["changes"][-1][field] = value
        files["population.json"] = json.dumps(population).encode()

    return tamper


def _backdate_approval(files: dict[str, bytes]) -> None:
    population = json.loads(files["population.json"])
    population["changes"][-1]["approvals_in_force"][0]["signed_at"] = "2001-01-01T00:00:00+00:00"
    files["population.json"] = json.dumps(population).encode()


def _drop_change(files: dict[str, bytes]) -> None:
    population = json.loads(files["population.json"])
    population["changes"].pop()
    files["population.json"] = json.dumps(population).encode()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_tamper_change("deployed_at", "2026-01-01T00:00:00+00:00"), "is not among the signed log's events"),
        (_tamper_change("lineage_digest", "sha256:" + "0" * 64), "does not match the record of churn-v41"),
        (_backdate_approval, "lists an approval by lead2 that is not a checked signature made before it"),
        (_drop_change, "population.json is not the population the signed log says was exported"),
    ],
)
def test_a_population_that_differs_from_the_signed_record_is_named(history, auditor, tamper, message):
    data = evidence.export_period_evidence(_last_days(), ["production"], by=auditor).data
    files = _files(data)
    tamper(files)
    _re_sign(files)
    with pytest.raises(verifier.VerificationError, match=message):
        _verify(files)


def test_a_release_record_missing_from_a_period_bundle_is_named(history, auditor):
    data = evidence.export_period_evidence(_last_days(), ["production"], by=auditor).data
    files = {name: body for name, body in _files(data).items() if not name.startswith("releases/churn-v42/")}
    _re_sign(files)
    with pytest.raises(verifier.VerificationError, match=r"release churn-v42 is listed but its record"):
        _verify(files)


def test_the_command_writes_a_period_bundle_the_auditors_own_verifier_accepts(history, auditor, tmp_path: Path):
    today = timezone.now().date()
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "export_evidence",
        "--from",
        (today - datetime.timedelta(days=3)).isoformat(),
        "--to",
        today.isoformat(),
        "--out",
        str(tmp_path / "q.zip"),
        "--as",
        "auditor",
        stdout=out,
        stderr=err,
    )
    assert "2/2 releases read" in err.getvalue()
    result = subprocess.run(
        [sys.executable, "-I", str(REPOSITORY_VERIFIER), "--key", signing.fingerprint(), str(tmp_path / "q.zip")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "population of 3 deployment(s) and rollback(s)" in result.stdout
    assert result.stdout.splitlines()[-1] == "VERIFIED"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-03-01", "--to", "2026-02-01"], "The period is empty"),
        (["--from", "2010-01-01", "--to", "2026-01-01"], "Choose a period of at most 10 years."),
        (["--from", "2026-01-01", "--to", "2026-03-31", "--environment", "prod"], "Unknown environment “prod”"),
        (["--from", "2026-W01-1", "--to", "2026-03-31"], "is not a day. Use YYYY-MM-DD"),
        (["--from", "\uff12\uff10\uff12\uff16-01-01", "--to", "2026-03-31"], "is not a day. Use YYYY-MM-DD"),
        (["--from", "2026-01-01"], "give a release, or a period with both --from and --to"),
        (["churn-v42", "--from", "2026-01-01", "--to", "2026-03-31"], "give either a release or a period"),
        (["--from", "1990-01-01", "--to", "1990-03-31"], "No deployment or rollback on production endpoints"),
    ],
)
def test_bad_periods_exit_2_with_one_line(history, auditor, tmp_path: Path, args: list[str], message: str):
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match=message) as refused:
        call_command("export_evidence", *args, "--out", str(tmp_path), "--as", "auditor")
    assert refused.value.returncode == 2
    assert "\n" not in str(refused.value)
    assert not list(tmp_path.iterdir())
    refusals = AuditEvent.objects.filter(seq__gt=before)
    if "No deployment" in message:
        # Nothing to export is a refused export, on record like any other.
        assert [(e.action, e.new["rule"]) for e in refusals] == [("evidence.export_refused", "empty_population")]
    else:
        assert not refusals.exists()


def test_only_auditors_and_leads_export_a_period_and_a_refusal_is_on_record(history, oncall):
    with pytest.raises(PermissionRefused):
        evidence.export_period_evidence(_last_days(), ["production"], by=oncall)
    refusal = AuditEvent.objects.filter(action="evidence.export_refused").get()
    assert refusal.actor == "oncall"
    assert refusal.object_type == "evidence"


def test_the_population_takes_the_same_queries_whatever_its_size(world, ci_account, lead, release_manager):
    def count_queries() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            assert lineage.population(_last_days(), ["production"])
        return len(queries)

    endpoint = world.endpoint("churn-scoring")
    first = world.full_release(1, by=ci_account, approver=lead)
    world.deploy(endpoint, first, by=release_manager)
    small = count_queries()
    for number in range(2, 7):
        release = world.full_release(number, by=ci_account, approver=lead, dataset=f"churn-train:{number}")
        world.deploy(world.endpoint(f"churn-{number}"), release, by=release_manager)
    assert count_queries() == small


# The page and the worker


def test_an_auditor_asks_on_the_page_follows_the_progress_and_downloads_a_bundle_that_verifies(
    client: Client, history, auditor, django_capture_on_commit_callbacks
):
    client.force_login(auditor)
    today = timezone.now().date()
    page = client.get("/audit/evidence/")
    assert page.status_code == 200
    assert b'name="environment" value="production" checked' in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/audit/evidence/",
            {
                "from": (today - datetime.timedelta(days=3)).isoformat(),
                "to": today.isoformat(),
                "environment": "production",
            },
        )
    export = EvidenceExport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/audit/evidence/{export.pk}/"
    # Without a broker the worker ran in-process when the request committed.
    assert (export.state, export.releases_done, export.releases_total, export.changes) == ("ready", 2, 2, 3)
    status = client.get(response["Location"])
    assert b"Ready:" in status.content
    assert b'http-equiv="refresh"' not in status.content
    download = client.get(f"/audit/evidence/{export.pk}/download/")
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith('attachment; filename="evidence-production-')
    files = _files(b"".join(download.streaming_content))
    assert _verify(files)[-1].startswith("population of 3 deployment(s)")
    actions = list(AuditEvent.objects.filter(object_type="evidence").values_list("action", flat=True).order_by("seq"))
    assert actions == ["evidence.requested", "evidence.exported"]


def test_while_a_worker_prepares_it_the_page_shows_progress_and_refreshes_itself(client: Client, history, auditor):
    export = EvidenceExport.objects.create(
        requested_by=auditor,
        since=timezone.now() - datetime.timedelta(days=3),
        until=timezone.now(),
        environments=["production"],
        state=EvidenceExport.State.RUNNING,
        releases_done=1,
        releases_total=4,
    )
    client.force_login(auditor)
    page = client.get(f"/audit/evidence/{export.pk}/").content.decode()
    assert '<meta http-equiv="refresh" content="2">' in page
    assert '<progress id="evidence-progress" class="evidence-progress" max="100" value="25">' in page
    assert "1 of 4" in page
    assert client.get(f"/audit/evidence/{export.pk}/download/").status_code == 409


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"from": "2026-03-01", "to": "2026-02-01"}, "The period is empty"),
        ({"from": "2001-01-01", "to": "2026-01-01"}, "Choose a period of at most 10 years."),
        ({"from": "2026-01-01", "to": "2026-02-01", "environment": "qa"}, "Unknown environment “qa”"),
        ({"from": "yesterday", "to": "2026-02-01"}, "is not a day"),
        ({"from": "1990-01-01", "to": "1990-02-01"}, "there is nothing to export for this period"),
    ],
)
def test_bad_periods_on_the_page_get_a_clear_message_and_no_bundle(
    client: Client, history, auditor, values: dict[str, str], message: str
):
    client.force_login(auditor)
    response = client.post("/audit/evidence/", values)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not EvidenceExport.objects.exists()


def test_a_bundle_past_its_expiry_is_gone_and_says_so(
    client: Client, history, auditor, settings, tmp_path: Path, django_capture_on_commit_callbacks
):
    settings.LINEAGE_EVIDENCE_DIR = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        export = evidence.request_period_evidence(_last_days(), ["production"], by=auditor)
    export.refresh_from_db()
    stored = tmp_path / export.bundle.name
    assert stored.exists()
    client.force_login(auditor)
    listing = client.get("/audit/evidence/").content.decode()
    assert f'href="/audit/evidence/{export.pk}/download/"' in listing
    later = export.expires_at + datetime.timedelta(seconds=1)
    # Past its expiry before beat has deleted it: the page and the download already treat it as gone.
    with time_machine.travel(later, tick=False):
        client.force_login(auditor)  # a day later the session has ended too
        listing = client.get("/audit/evidence/").content.decode()
        assert f'href="/audit/evidence/{export.pk}/download/"' not in listing
        assert '<td data-label="State">expired</td>' in listing
        assert client.get(f"/audit/evidence/{export.pk}/download/").status_code == 410
    assert evidence.expire_bundles(now=later) == 1
    assert not stored.exists()
    export.refresh_from_db()
    assert export.state == EvidenceExport.State.EXPIRED
    gone = client.get(f"/audit/evidence/{export.pk}/download/")
    assert gone.status_code == 410
    assert b"This bundle has expired and was deleted" in gone.content


def test_a_worker_finding_the_requester_no_longer_may_export_records_the_refusal(history, auditor):
    export = EvidenceExport.objects.create(
        requested_by=auditor,
        since=timezone.now() - datetime.timedelta(days=3),
        until=timezone.now() + datetime.timedelta(days=1),
        environments=["production"],
    )
    auditor.groups.clear()
    evidence.build_requested_evidence(str(export.pk))
    export.refresh_from_db()
    assert export.state == EvidenceExport.State.FAILED
    assert "may not export evidence" in export.error
    assert AuditEvent.objects.filter(action="evidence.export_refused", actor="auditor").count() == 1


def test_the_period_rule_is_one_rule():
    moment = datetime.datetime(2024, 2, 29, tzinfo=datetime.UTC)
    assert lineage.Period.checked(moment, moment.replace(year=2034, day=28)).until.year == 2034
    with pytest.raises(InvalidInput, match="at most 10 years"):
        lineage.Period.checked(moment, moment.replace(year=2034, month=3, day=1))
    with pytest.raises(InvalidInput, match="empty"):
        lineage.Period.checked(moment, moment)
    assert lineage.environments([]) == ("production",)
    assert lineage.environments(["staging", "production", "staging"]) == ("production", "staging")
