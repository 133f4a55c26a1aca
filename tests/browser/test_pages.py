"""Every page renders in Chromium without console errors, with its screenshot at laptop and phone widths."""

from __future__ import annotations

import re

import pytest

from releases import services
from releases.models import Commit, ExperimentRun, ModelVersion
from tests.browser.conftest import Visit
from tests.factories import SYSTEM

pytestmark = pytest.mark.browser


def test_compare_page_highlights_what_changed(visit: Visit, demo_world: None) -> None:
    page = visit.page
    visit.login("lead")
    visit.go("/releases/churn-v42/")
    page.get_by_role("link", name="Compare with churn-v41").click()
    page.wait_for_url(re.compile(r".*/releases/compare/\?a=churn-v41&b=churn-v42$"))
    changed = page.locator("table.compare tr.changed").all_inner_texts()
    assert any("Dataset churn-train (training)" in row and "churn-train:18" in row for row in changed)
    assert any(row.startswith("Git commit") for row in changed)
    assert page.locator("#commits-h").count() == 1
    assert page.locator("ul.commits li").count() >= 1
    visit.shot("compare")


def test_investigate_page_shows_what_was_live_and_the_diff(visit: Visit, demo_world: None) -> None:
    page = visit.page
    visit.login("oncall")
    visit.go("/investigate/")
    page.get_by_label("Endpoint", exact=True).fill("churn-scoring")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state()
    live = page.locator("#live-h + p").inner_text()
    assert "churn-v42" in live
    assert "churn-train:18" in page.locator("section.card dl.chain").first.inner_text()
    assert "churn-v41" in page.locator("#cmp-h").inner_text()
    visit.shot("investigate")


def test_every_page_renders(visit: Visit, demo_world: None) -> None:
    run = ExperimentRun.objects.get(name="churn-v42")
    commit = Commit.objects.filter(runs=run).get()
    pages = {
        "release-list": ("/releases/", "churn-v41"),
        "release-list-filtered": ("/releases/?model=churn-model&state=approved", "churn-v40"),
        "trace-fraud-v8": ("/releases/fraud-v8/", "missing"),
        "endpoint": ("/endpoints/churn-scoring/", "Deployment timeline"),
        "model": ("/models/churn-model/", "Metrics across versions"),
        "run": (f"/runs/{run.run_id}/", "churn-train:18"),
        "commit": (f"/commits/{commit.sha}/", "churn-v42"),
        "dataset": ("/datasets/churn-train/17/", "churn-v41"),
        "approvals": ("/approvals/", "fraud-v8"),
        "search-results": ("/search/?q=zz-nothing", "Nothing matches"),
    }
    visit.login("lead")
    for name, (path, expected) in pages.items():
        visit.go(path)
        assert expected in visit.page.locator("main").inner_text(), f"{name}: {expected!r} not shown"
        visit.shot(name)
    # The "live at" picker: a moment before churn-v42 went live shows churn-v41 and its trace.
    visit.go("/endpoints/churn-scoring/")
    picker = visit.page.get_by_label("What was live at (UTC)")
    picker.fill(_moment_between(visit))
    picker.press("Enter")
    visit.page.wait_for_url(re.compile(r".*\?at=.*"))
    then = visit.page.locator(".status-box.then")
    assert "churn-v41" in then.locator("p.big").inner_text()
    assert then.locator("svg.chain-wide").count() == 1
    visit.shot("endpoint-live-at")


def _moment_between(visit: Visit) -> str:
    from releases.models import Deployment

    v41, v42 = (
        Deployment.objects.get(endpoint__name="churn-scoring", release__name=name).deployed_at
        for name in ("churn-v41", "churn-v42")
    )
    return (v41 + (v42 - v41) / 2).strftime("%Y-%m-%dT%H:%M")


def test_rollback_confirm_button_is_as_serious_as_the_boards(visit: Visit, demo_world: None) -> None:
    visit.login("oncall")
    production = visit.page.locator("tr", has=visit.page.get_by_role("link", name="churn-scoring", exact=True))
    board_button = production.get_by_role("link", name=re.compile("Roll back to churn-v41"))
    board_style = board_button.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")
    board_button.click()
    visit.page.wait_for_url(re.compile(r".*/endpoints/churn-scoring/rollback/.*"))
    confirm = visit.page.get_by_role("button", name="Confirm: roll back to churn-v41")
    confirm_style = confirm.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")
    assert confirm_style == board_style
    assert "Why churn-v41 is safe to restore" in visit.page.locator("main").inner_text()
    visit.shot("rollback-confirm-why-safe")
    visit.go("/endpoints/churn-scoring/")
    plain = visit.page.get_by_role("button", name="Show")  # an ordinary submit button, for contrast
    assert plain.evaluate("e => getComputedStyle(e).backgroundColor") != board_style[0]


def test_a_long_list_pages_with_its_total(visit: Visit, demo_world: None) -> None:
    """Sixty more versions of churn-model: the page lists fifty with the total and links to the rest."""
    newest = ModelVersion.objects.filter(registered_model__name="churn-model").order_by("-version")[0]
    assert newest.registered_model.server is not None
    services.register_model_versions(
        newest.registered_model.server,
        [services.ModelVersionData(name="churn-model", version=100 + i) for i in range(60)],
        by=SYSTEM,
    )
    total = ModelVersion.objects.filter(registered_model__name="churn-model").count()
    page = visit.page
    visit.login("lead")
    visit.go("/models/churn-model/")
    pager = page.get_by_role("navigation", name="Pages of versions")
    assert f"1\N{EN DASH}50 of {total} versions" in pager.inner_text()
    visit.shot("model-versions-paged")
    pager.get_by_role("link", name="Next →").click()
    page.wait_for_url(re.compile(r".*/models/churn-model/\?before=110#versions-h$"))
    assert f"51\N{EN DASH}{total} of {total} versions" in pager.inner_text()
    assert page.locator("#v109").is_visible()
    pager.get_by_role("link", name="← Previous").click()
    page.wait_for_url(re.compile(r".*\?after=109#versions-h$"))
    assert page.locator("#v159").count() == 1
