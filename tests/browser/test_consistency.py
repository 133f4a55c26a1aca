"""One status per release on every page, at laptop and phone width, through the lead's quarantine and
the on-call rollback: no two pages may show one release with two different statuses."""

from __future__ import annotations

import re
from typing import Any

import pytest

from releases import lineage
from releases.models import Release
from tests.browser.conftest import DESKTOP, PHONE, Visit

pytestmark = pytest.mark.browser

# Every status badge on the page with the release it belongs to (the row, heading or line it sits in).
BADGES_JS = """
() => [...document.querySelectorAll('.state')].map(badge => {
  const holder = badge.closest('tr, h1, p, li, dd') || badge.parentElement;
  const link = holder.querySelector('a.release-name, a[href^="/releases/"]');
  const name = link ? link.textContent.trim() : (holder.textContent.trim().split(/\\s+/)[0] || '');
  return [name, badge.textContent.trim()];
})
"""
PAGES = ("/", "/releases/", "/releases/churn-v42/", "/releases/churn-v41/", "/endpoints/churn-scoring/")


def statuses_seen(visit: Visit) -> dict[str, dict[str, set[str]]]:
    """For each release, the status labels each page shows it with."""
    seen: dict[str, dict[str, set[str]]] = {}
    for path in PAGES:
        visit.go(path)
        for name, label in visit.page.evaluate(BADGES_JS):
            if re.fullmatch(r"[a-z0-9-]+-v\d+", name):
                seen.setdefault(name, {}).setdefault(label, set()).add(path)
    return seen


def assert_one_status_each(visit: Visit) -> dict[str, str]:
    seen = statuses_seen(visit)
    disagreements = {name: labels for name, labels in seen.items() if len(labels) > 1}
    assert disagreements == {}, f"two statuses for one release: {disagreements}"
    shown = {name: next(iter(labels)) for name, labels in seen.items()}
    # And the pages say what the rule says.
    for name, label in shown.items():
        assert label == lineage.release_status(lineage.trace(name)).label, name
    return shown


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_statuses_agree_through_quarantine_and_rollback(visit: Visit, demo_world: None, viewport: Any) -> None:
    page = visit.page
    page.set_viewport_size(viewport)
    visit.login("lead")
    before = assert_one_status_each(visit)
    assert before["churn-v42"] == "Approved"

    # The lead quarantines churn-train:18 after reading what it will do.
    visit.go("/datasets/churn-train/18/")
    page.get_by_role("link", name="Quarantine churn-train:18…").click()
    page.wait_for_url(re.compile(r".*/datasets/churn-train/18/quarantine/$"))
    page.get_by_label(re.compile(r"^Reason \(required")).fill("upstream partner changed the label mapping")
    page.get_by_role("button", name=re.compile("Confirm: quarantine churn-train:18")).click()
    page.wait_for_url(re.compile(r".*/datasets/churn-train/18/$"))

    after_quarantine = assert_one_status_each(visit)
    assert after_quarantine["churn-v42"] == "Approval invalidated"
    visit.go("/releases/churn-v42/")
    banner = page.locator("#status-banner")
    assert banner.is_visible()
    assert "churn-train:18" in banner.inner_text()

    # On-call rolls back from the board, after reading why the target is safe.
    visit.logout()
    visit.login("oncall")
    production = page.locator("tr", has=page.get_by_role("link", name="churn-scoring", exact=True))
    production.get_by_role("link", name=re.compile("Roll back to churn-v41")).click()
    assert "churn-v41" in page.locator("main").inner_text()
    page.get_by_label(re.compile("Reason")).fill("AUC dropped after churn-v42; INC-1234")
    confirm = page.get_by_role("button", name=re.compile("Confirm: roll back to churn-v41"))
    assert confirm.is_visible()
    confirm.click()
    page.wait_for_url(re.compile(r".*/$"))
    production = page.locator("tr", has=page.get_by_role("link", name="churn-scoring", exact=True))
    assert "churn-v41" in production.inner_text()

    after_rollback = assert_one_status_each(visit)
    assert after_rollback["churn-v41"] == "Approved"
    assert after_rollback["churn-v42"] == "Approval invalidated"
    assert Release.objects.get(name="churn-v42").state == Release.State.APPROVED, "the recorded state is unchanged"
    # Nothing on the phone layout is cut off while showing these statuses.
    for path in PAGES:
        visit.go(path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
