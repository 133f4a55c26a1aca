"""The auditor's workspace in Chromium: the trail, an event with its proof, the inventory, and evidence for
a period asked for on the page, prepared by the worker and downloaded; each with its screenshot."""

from __future__ import annotations

import datetime
import io
import zipfile

import pytest
from django.utils import timezone

from audit import signing, verifier
from releases.models import EvidenceExport
from tests.browser.conftest import Visit

pytestmark = pytest.mark.browser


def test_the_auditor_reads_the_trail_an_event_and_the_inventory(visit: Visit, demo_world: None) -> None:
    visit.login("auditor")
    visit.go("/audit/")
    assert "Audit trail" in visit.page.locator("h1").inner_text()
    assert visit.page.locator("table.audit-trail tbody tr").count() >= 10
    visit.shot("audit-trail")
    visit.page.locator("table.audit-trail tbody tr a").first.click()
    visit.page.wait_for_load_state()
    assert "Audit event #" in visit.page.locator("h1").inner_text()
    visit.shot("audit-event")
    visit.go("/inventory/")
    assert "churn-model" in visit.page.locator("main").inner_text()
    visit.shot("inventory")


def test_the_auditor_asks_for_a_period_and_downloads_a_bundle_that_verifies(visit: Visit, demo_world: None) -> None:
    page = visit.page
    visit.login("auditor")
    visit.go("/audit/")
    page.get_by_role("link", name="Evidence for a period").click()
    page.wait_for_url("**/audit/evidence/")
    today = timezone.now().date()
    page.get_by_label("From (day)").fill((today - datetime.timedelta(days=365)).isoformat())
    page.get_by_label("To (day, included)").fill(today.isoformat())
    assert page.get_by_label("production").is_checked()
    visit.shot("period-evidence")
    page.get_by_role("button", name="Prepare the bundle").click()
    # Without a broker the worker runs when the request commits: the bundle is ready on the next page.
    page.wait_for_url("**/audit/evidence/*/")
    assert "Ready:" in page.locator("main").inner_text()
    visit.shot("period-evidence-ready")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    data = download.value.path().read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        files = {name: bundle.read(name) for name in bundle.namelist()}
    checked = verifier.verify_bundle(files, trusted_key_pem=signing.public_key_pem().encode())
    assert checked[-1].startswith("population of ")
    assert "churn-v42" in files["population.json"].decode()


def test_a_bundle_being_prepared_shows_its_progress(visit: Visit, demo_world: None) -> None:
    from django.contrib.auth.models import User

    export = EvidenceExport.objects.create(
        requested_by=User.objects.get(username="auditor"),
        since=timezone.now() - datetime.timedelta(days=90),
        until=timezone.now(),
        environments=["production"],
        state=EvidenceExport.State.RUNNING,
        releases_done=312,
        releases_total=1000,
    )
    visit.login("auditor")
    visit.go(f"/audit/evidence/{export.pk}/")
    progress = visit.page.get_by_role("progressbar")
    assert progress.get_attribute("value") == "31"
    assert "312 of 1000" in visit.page.locator("main").inner_text()
    visit.shot("period-evidence-progress")
