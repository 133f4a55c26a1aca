"""Headless Chromium (Debian's build) driven by Playwright against pytest-django's live server."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, unavailable

# Playwright's sync API keeps an event loop on the test thread; the ORM calls the tests make
# between browser steps are still plain synchronous calls, so Django's guard is relaxed here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("LINEAGE_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
# Runs in every page before its own scripts: each Content-Security-Policy violation the browser reports
# is handed to the test (Playwright's binding is outside the page, so the policy does not block it).
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} on ${event.documentURI}` +
      (event.sourceFile ? ` (${event.sourceFile}:${event.lineNumber})` : "")
  );
});
"""
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed")
    if not CHROMIUM.exists():
        unavailable(f"Chromium is not installed at {CHROMIUM}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@dataclass
class Visit:
    """One browser context (one person's session) with console errors collected."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def go(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None
        assert response.status < 500, f"{path} answered {response.status}"
        assert response.header_value("content-security-policy"), f"{path} has no Content-Security-Policy"
        return response

    def login(self, username: str, password: str = PASSWORD) -> None:
        self.go("/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(re.compile(r".*/$"))

    def logout(self) -> None:
        self.page.get_by_role("button", name="Log out").click()
        self.page.wait_for_url(re.compile(r".*/login/.*"))

    def add_style(self, css: str) -> None:
        """Restyle the page from a test, as a constructed stylesheet: the page's policy refuses an inline
        <style> (as it should), while stylesheets built through the CSSOM are not markup it governs."""
        self.page.evaluate(
            """(css) => {
                const sheet = new CSSStyleSheet();
                sheet.replaceSync(css);
                document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
            }""",
            css,
        )

    def shot(self, name: str) -> None:
        """Full-page screenshots at laptop and phone widths."""
        SCREENSHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
        self.page.set_viewport_size(PHONE)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
        self.page.set_viewport_size(DESKTOP)
        assert self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (
            f"{name} scrolls sideways at {DESKTOP['width']} px"
        )


@pytest.fixture
def visit(browser: Any, live_server: Any) -> Iterator[Visit]:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    current = Visit(page=page, base=live_server.url)
    context.expose_function("reportCspViolation", lambda report: current.csp_violations.append(report))
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page.on("console", lambda message: current.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: current.errors.append(str(error)))
    yield current
    # Reports arrive asynchronously: let the last page deliver its own before closing.
    page.wait_for_timeout(100)
    context.close()
    assert current.csp_violations == [], f"Content-Security-Policy violations: {current.csp_violations}"
    assert current.errors == [], f"JavaScript console errors: {current.errors}"


@pytest.fixture
def demo_world(transactional_db: Any, tmp_path: Path) -> None:
    """DESIGN's story world (churn-v40..v42, staging, fraud-v8), built through the services."""
    from releases.demo.world import build

    build(password=PASSWORD, root=tmp_path / "demo", say=lambda _line: None)
