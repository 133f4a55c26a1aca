"""Every main page at laptop and phone widths: nothing cut off sideways, every nav link reachable,
SVG labels legible, every piece of text at WCAG AA contrast (4.5:1) against what is really behind it.

The measuring happens in the page (layout_checks.js), on what Chromium computed and drew.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from releases.models import Commit, ExperimentRun
from tests.browser.conftest import DESKTOP, PHONE, Visit

pytestmark = pytest.mark.browser

CHECKS = (Path(__file__).parent / "layout_checks.js").read_text()
MIN_CONTRAST = 4.5


def check(visit: Visit, name: str, argument: Any = None) -> list[str]:
    """Run one of layout_checks.js's checks in the page; its problems in words."""
    return list(visit.page.evaluate(f"(argument) => ({CHECKS}).{name}(argument)", argument))


def main_pages() -> dict[str, str]:
    run = ExperimentRun.objects.get(name="churn-v42")
    commit = Commit.objects.filter(runs=run).get()
    return {
        "board": "/",
        "releases": "/releases/",
        "release": "/releases/churn-v42/",
        "compare": "/releases/compare/?a=churn-v41&b=churn-v42",
        "dataset version": "/datasets/churn-train/18/",
        "endpoint": "/endpoints/churn-scoring/",
        "endpoint live at": f"/endpoints/churn-scoring/?at={run.start_time:%Y-%m-%dT%H:%M}",
        "approvals": "/approvals/",
        "sync": "/sync/",
        "model": "/models/churn-model/",
        "run": f"/runs/{run.run_id}/",
        "commit": f"/commits/{commit.sha}/",
        "investigate": "/investigate/?endpoint=churn-scoring",
        "search": "/search/?q=churn",
        "release waiting for a signature": "/releases/churn-v43/",
        "roll back": "/endpoints/churn-scoring/rollback/",
        "deploy": "/endpoints/churn-scoring-staging/deploy/",
        "audit trail": "/audit/",
        "audit event": "/audit/events/1/",
        "inventory": "/inventory/",
        "evidence for a period": "/audit/evidence/",
    }


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_main_pages_fit_the_screen_with_readable_text(visit: Visit, demo_world: None, viewport: Any) -> None:
    # The superuser sees every nav item and every action (approve, roll back, quarantine, sync now).
    visit.page.set_viewport_size(viewport)
    visit.login("admin")
    problems: list[str] = []
    for name, path in main_pages().items():
        visit.go(path)
        for found in (
            check(visit, "overflow"),
            check(visit, "nav"),
            check(visit, "svgText"),
            check(visit, "contrast", MIN_CONTRAST),
        ):
            problems += [f"{name}: {problem}" for problem in found]
    assert problems == [], f"at {viewport['width']} px:\n" + "\n".join(problems)


def test_the_checks_see_what_they_are_meant_to(visit: Visit, demo_world: None) -> None:
    """Each check, shown a page with its fault, reports it (so a pass means something)."""
    visit.page.set_viewport_size(PHONE)
    visit.login("admin")
    visit.go("/releases/churn-v42/")
    visit.add_style(
        "header.top nav { flex: 0 0 12rem; flex-wrap: nowrap; overflow-x: auto; }"
        " h1 { color: #aaa; } dl.chain { width: 900px; }"
        " figure.chain-diagram svg.chain-tall { width: 150px; }"
    )
    assert any("dl.chain spans" in problem for problem in check(visit, "overflow"))
    assert any("cut off by a box" in problem for problem in check(visit, "nav"))
    assert any("svg text" in problem and "px" in problem for problem in check(visit, "svgText"))
    assert any(problem.startswith("h1") for problem in check(visit, "contrast", MIN_CONTRAST))
