"""The Content-Security-Policy holds in Chromium: pages and the API docs run under it with no violation
(tests/browser/conftest.py fails any test whose pages report one), and a violation is caught."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Visit

pytestmark = pytest.mark.browser


def test_the_api_docs_run_from_this_site_under_the_policy(visit: Visit, demo_world: None) -> None:
    visit.login("lead")
    requested: list[str] = []
    visit.page.on("request", lambda request: requested.append(request.url))
    visit.go("/api/docs/")
    visit.page.locator(".swagger-ui .opblock").first.wait_for()
    assert "Release lineage API" in visit.page.locator(".swagger-ui .info").inner_text()
    # Open an operation and its "Authorize" box: more of Swagger UI's drawing, under the same policy.
    visit.page.locator(".swagger-ui .opblock-summary").first.click()
    visit.page.locator(".swagger-ui .opblock-body").first.wait_for()
    visit.page.locator(".swagger-ui .btn.authorize").click()
    visit.page.locator(".swagger-ui .modal-ux").wait_for()
    visit.page.wait_for_timeout(300)
    assert all(url.startswith(visit.base) or url.startswith("data:") for url in requested), requested
    visit.shot("api-docs")


def test_the_admin_runs_under_the_policy(visit: Visit, demo_world: None) -> None:
    visit.login("admin")
    visit.go("/admin/")
    visit.go("/admin/releases/release/")
    visit.go("/admin/releases/gitrepository/add/")


def test_an_inline_script_is_refused_and_reported(visit: Visit, demo_world: None) -> None:
    visit.login("lead")
    visit.go("/")
    ran = visit.page.evaluate(
        """() => new Promise((resolve) => {
            window.inlineRan = false;
            const script = document.createElement("script");
            script.textContent = "window.inlineRan = true";
            document.body.append(script);
            setTimeout(() => resolve(window.inlineRan), 200);
        })"""
    )
    assert ran is False
    assert any(v.startswith("script-src-elem blocked inline") for v in visit.csp_violations), visit.csp_violations
    # The check under test would fail this test on teardown: what it found is what was expected.
    visit.csp_violations.clear()
    visit.errors[:] = [e for e in visit.errors if "Content Security Policy" not in e]
