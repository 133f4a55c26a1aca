"""The product story in a real browser: see what is live, trace it, quarantine its data, roll back."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEvent
from releases.models import DatasetVersion, Deployment
from tests.browser.conftest import Visit

pytestmark = pytest.mark.browser

PERSONAS = [("lead", "Lena Lead"), ("lead2", "Omar Second"), ("auditor", "Ada Auditor"), ("oncall", "Otto Oncall")]


def test_each_persona_logs_in_and_sees_the_board(visit: Visit, demo_world: None) -> None:
    visit.go("/login/")
    visit.shot("login")
    for username, full_name in PERSONAS:
        visit.login(username)
        header = visit.page.locator("header.top")
        assert full_name in header.inner_text()
        assert "churn-v42" in visit.page.locator("table.board").first.inner_text()
        visit.logout()


def test_wrong_password_is_refused_with_a_message(visit: Visit, demo_world: None) -> None:
    visit.go("/login/")
    visit.page.get_by_label("Username").fill("lead")
    visit.page.get_by_label("Password").fill("not the password")
    visit.page.get_by_role("button", name="Log in").click()
    assert visit.page.locator("form .error").count() == 1
    # The failed login answers 200 with the form again; nothing to add to the console.


def test_story_trace_quarantine_roll_back(visit: Visit, demo_world: None) -> None:
    page = visit.page
    # On-call opens the board: churn-v42 is live on production, and the board already names churn-v41.
    visit.login("oncall")
    production = page.locator("tr", has=page.get_by_role("link", name="churn-scoring", exact=True))
    assert "churn-v42" in production.inner_text()
    assert "churn-v41" in production.inner_text()
    visit.shot("board")

    # An ML lead opens the trace and sees the training data.
    visit.logout()
    visit.login("lead")
    page.get_by_role("link", name="churn-v42", exact=True).first.click()
    page.wait_for_url(re.compile(r".*/releases/churn-v42/$"))
    assert "churn-train:18" in (page.locator("svg.chain-wide [data-link='data']").text_content() or "")
    assert "churn-train:18" in page.locator("dl.chain").inner_text()
    visit.shot("trace-churn-v42")

    # Quarantine from the dataset page, reached from the chain diagram's data node.
    page.locator("svg.chain-wide a[data-link='data']").click()
    page.wait_for_url(re.compile(r".*/datasets/churn-train/18/$"))
    assert "churn-v42" in page.locator("#impact-h + .impact-grid").inner_text()
    page.get_by_role("link", name="Quarantine churn-train:18…").click()
    page.wait_for_url(re.compile(r".*/datasets/churn-train/18/quarantine/$"))
    assert "churn-v42" in page.locator("#what-h + ul").inner_text()
    visit.shot("dataset-quarantine-confirm")
    reason = page.get_by_label(re.compile(r"^Reason \(required"))
    reason.fill("upstream partner changed the label mapping")
    reason.press("Tab")
    page.keyboard.press("Enter")  # the confirm button, reached from the keyboard
    page.wait_for_url(re.compile(r".*/datasets/churn-train/18/$"))
    assert "is quarantined" in page.locator("ul.messages").inner_text()
    visit.shot("dataset-quarantined")
    version = DatasetVersion.objects.get(dataset__name="churn-train", version=18)
    assert version.status == DatasetVersion.Status.QUARANTINED
    assert AuditEvent.objects.filter(action="dataset_version.quarantined", object_key="churn-train:18").exists()

    # On-call rolls back from the board's button.
    visit.logout()
    visit.login("oncall")
    production = page.locator("tr", has=page.get_by_role("link", name="churn-scoring", exact=True))
    button = production.get_by_role("link", name=re.compile("Roll back to churn-v41"))
    assert button.count() == 1, "the board offers the roll-back action to on-call"
    button.click()
    page.get_by_label(re.compile("Reason")).fill("AUC dropped after churn-v42; INC-1234")
    visit.shot("rollback-confirm")
    page.get_by_role("button", name=re.compile("Confirm: roll back to churn-v41")).click()
    page.wait_for_url(re.compile(r".*/$"))

    production = page.locator("tr", has=page.get_by_role("link", name="churn-scoring", exact=True))
    assert "churn-v41" in production.locator("td").nth(1).inner_text()
    assert "rolled back" in production.inner_text()
    staging = page.locator("tr", has=page.get_by_role("link", name="churn-scoring-staging", exact=True))
    assert "churn-train:18 is quarantined" in staging.inner_text()
    visit.shot("board-after-rollback")
    latest = Deployment.objects.filter(endpoint__name="churn-scoring").order_by("-deployed_at", "-id").first()
    assert latest is not None
    assert (latest.release.name, latest.kind) == ("churn-v41", Deployment.Kind.ROLLBACK)
    assert AuditEvent.objects.filter(action="deployment.rolled_back", object_key="churn-scoring").exists()


def test_search_box_jumps_from_the_keyboard(visit: Visit, demo_world: None) -> None:
    visit.login("auditor")
    box = visit.page.get_by_label(re.compile("Search by release"))
    for query, url, heading in (
        ("churn-train:18", r".*/datasets/churn-train/18/$", "churn-train:18"),
        ("churn-model/41", r".*/models/churn-model/\?before=42#v41$", "churn-model"),
        ("churn-v40", r".*/releases/churn-v40/$", "churn-v40"),
    ):
        box = visit.page.get_by_label(re.compile("Search by release"))
        box.fill(query)
        box.press("Enter")
        visit.page.wait_for_url(re.compile(url))
        assert heading in visit.page.locator("h1").first.inner_text()


def test_every_example_the_search_box_gives_finds_something(visit: Visit, demo_world: None) -> None:
    visit.login("lead")
    visit.go("/search/")
    placeholder = visit.page.get_by_label(re.compile("Search by release")).get_attribute("placeholder") or ""
    examples = [text.strip(" …") for text in placeholder.split(",")]
    examples += visit.page.locator("main p.muted code").all_inner_texts()
    assert len(examples) >= 8
    for example in examples:
        visit.go(f"/search/?q={example}")
        assert "Nothing matches" not in visit.page.locator("main").inner_text(), example


def test_search_lists_partial_matches_by_kind(visit: Visit, demo_world: None) -> None:
    visit.login("lead")
    box = visit.page.get_by_label(re.compile("Search by release"))
    box.fill("churn")
    box.press("Enter")
    visit.page.wait_for_url(re.compile(r".*/search/\?q=churn$"))
    headings = visit.page.locator("main h2").all_inner_texts()
    assert any(h.startswith("Releases") for h in headings)
    assert any(h.startswith("Dataset versions") for h in headings)
    releases = visit.page.locator("section[aria-labelledby='found-release'] li").all_inner_texts()
    assert [r.split()[0] for r in releases] == ["churn-v43", "churn-v42", "churn-v41", "churn-v40"]
    visit.shot("search-partial")
    visit.page.get_by_role("link", name="churn-train:18").click()
    visit.page.wait_for_url(re.compile(r".*/datasets/churn-train/18/$"))
