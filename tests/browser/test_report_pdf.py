"""The evidence report an auditor prints: the bundle's report.html printed to PDF by Chromium, and the PDF
read back with pypdf (page size, page count, page 1's verification instructions, every event and signer)."""

from __future__ import annotations

import datetime
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdf
import pypdfium2
import pytest
from django.utils import timezone

from audit import signing
from audit.models import AuditEvent, Checkpoint
from releases import lineage, services
from releases.evidence import export_evidence, export_period_evidence
from releases.models import Deployment, Release
from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS
from tests.factories import World, approve

pytestmark = pytest.mark.browser

# The layout and contrast checks the app's pages go through (tests/browser/test_layout.py).
LAYOUT_CHECKS = (Path(__file__).parent / "layout_checks.js").read_text()
# A4 in PostScript points (1/72 inch): 210 mm x 297 mm.
A4_POINTS = (595.28, 841.89)
A4_MM = (210, 297)
PRINT_CONTRAST = 7  # WCAG AAA: what survives a greyscale printer
SCREEN_CONTRAST = 4.5
REGIONS = ("eu", "us", "apac", "latam", "mena")
ROUNDS = 2
# Long enough to wrap in its cell, so a row that breaks over a page would show.
LONG_REASON = (
    "AUC fell from 0.86 to 0.71 within an hour of the rollout; traced to the changed label mapping in "
    "churn-train:18 from the upstream partner (ticket INC-2041), restoring the last safe release"
)


# Several lines in its cell, so that the approval's row can be put across the foot of a page.
SECOND_OPINION = (
    "Second pair of eyes: the chain, the datasets and the validation report checked against the model card; "
    "the label mapping change in churn-train:18 was reviewed with the data owner and accepted for production"
)


@pytest.fixture
def busy_release(
    db: Any, settings: Any, ci_account: Any, lead: Any, lead2: Any, release_manager: Any, oncall: Any
) -> Release:
    """churn-v42, signed by two leads (four eyes), deployed, rolled back and redeployed twice on six endpoints:
    a report of several pages, with the rollbacks' long reasons wrapping in their cells."""
    settings.LINEAGE_REQUIRED_APPROVALS = 2
    world = World.create()
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    approve(v41, by=lead2)
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    approve(v42, by=lead2, meaning="Reviewed", comment=SECOND_OPINION)
    endpoints = [world.endpoint(f"churn-scoring-{region}") for region in REGIONS]
    endpoints.append(world.endpoint("churn-canary", "staging"))
    for endpoint in endpoints:
        world.deploy(endpoint, v41, by=release_manager, hours_ago=48)
        world.deploy(endpoint, v42, by=release_manager, hours_ago=24)
    for _ in range(ROUNDS):
        for endpoint in endpoints:
            services.roll_back(endpoint, by=oncall, reason=LONG_REASON, source=Deployment.Source.UI)
            services.record_deployment(
                endpoint, v42, by=release_manager, source=Deployment.Source.API, reason="label mapping fixed upstream"
            )
    return v42


@dataclass
class OfflinePage:
    """A browser page opened as an auditor opens the report from disk, with every request it tried to make."""

    page: Any
    requested: list[str] = field(default_factory=list)


@pytest.fixture
def offline(browser: Any) -> Iterator[OfflinePage]:
    """A page that refuses, and records, every request: the report must need nothing from outside.

    Tests name it before their database fixtures (as the other browser tests name ``visit`` first), so the
    browser starts before the test database is set up and stops after it is torn down: stopped first, it
    leaves a PostgreSQL connection open that keeps the test database from being dropped."""
    context = browser.new_context(viewport=DESKTOP)
    current = OfflinePage(context.new_page())

    def refuse(route: Any) -> None:
        current.requested.append(route.request.url)
        route.abort()

    context.route("**/*", refuse)
    yield current
    context.close()


def check_page(page: Any, name: str, argument: Any = None) -> list[str]:
    """One of layout_checks.js's checks, run in the page: its problems in words."""
    return list(page.evaluate(f"(argument) => ({LAYOUT_CHECKS}).{name}(argument)", argument))


def squeezed(text: str) -> str:
    """Text without any whitespace: a PDF's text comes back with line breaks where the layout wrapped."""
    return re.sub(r"\s+", "", text)


def one_line(text: str) -> str:
    return " ".join(text.split())


def print_layout(page: Any, html: str) -> tuple[float, float]:
    """Lay ``html`` out as Chromium prints it: print media, the viewport as wide as the page's printable area.
    Returns that area (CSS px): A4 less the margins of the report's own @page rule."""
    page.set_content(html)
    page.emulate_media(media="print")
    area = page.evaluate(
        """([width, height]) => {
            const readable = (sheet) => { try { return [...sheet.cssRules]; } catch { return []; } };
            const rules = [...document.styleSheets].flatMap(readable);
            const rule = rules.find((r) => r instanceof CSSPageRule);
            if (!rule) return null;
            const m = rule.style;
            const probe = document.createElement('div');
            probe.style.width = `calc(${width}mm - ${m.marginLeft} - ${m.marginRight})`;
            probe.style.height = `calc(${height}mm - ${m.marginTop} - ${m.marginBottom})`;
            document.body.append(probe);
            const box = probe.getBoundingClientRect();
            probe.remove();
            return [box.width, box.height];
        }""",
        A4_MM,
    )
    assert area is not None, "the report has no @page rule"
    width, height = area
    assert 600 < width < 794, f"printable width {width} px"
    page.set_viewport_size({"width": int(width), "height": int(height)})
    return width, height


def a4_numbered_pages(reader: Any) -> list[str]:
    """The text of each page of a printed report of several pages, each A4 and numbered in its bottom margin
    ("Page N of M", from the report's @page margin boxes)."""
    pages = [p.extract_text() for p in reader.pages]
    count = len(pages)
    assert count > 1
    for number, pdf_page in enumerate(reader.pages, start=1):
        size = (float(pdf_page.mediabox.width), float(pdf_page.mediabox.height))
        assert size == pytest.approx(A4_POINTS, abs=1), f"page {number} is {size} pt, not A4"
        assert f"Page {number} of {count}" in pages[number - 1], f"page {number} has no page number"
    return pages


def print_pdf(page: Any) -> tuple[bytes, Any]:
    """Print to PDF as Chromium's print dialog would by default (A4, no background graphics); the PDF and
    pypdf's reading of it."""
    pdf = page.pdf(format="A4", print_background=False, prefer_css_page_size=True)
    return pdf, pypdf.PdfReader(io.BytesIO(pdf))


# Elements, as printed, reaching past either side of the printable width, or holding content wider than themselves.
CUT_OFF = """(width) => {
    const problems = [];
    for (const el of document.body.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;
        const name = el.tagName.toLowerCase() + (el.className ? '.' + el.className : '');
        if (r.right > width + 0.5 || r.left < -0.5)
            problems.push(`${name} spans ${Math.round(r.left)}..${Math.round(r.right)} px of ${Math.round(width)}`);
        // Content wider than its box: clipped, or spilling over the next cell (inline boxes have no clientWidth).
        if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
            problems.push(`${name} holds content ${el.scrollWidth - el.clientWidth} px wider than itself`);
    }
    return problems;
}"""


@pytest.fixture
def exported(busy_release: Release, auditor: Any) -> tuple[str, dict[str, bytes]]:
    """The auditor's evidence bundle for the busy release: its file name and its files."""
    bundle_name, data = export_evidence(busy_release, by=auditor)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        return bundle_name, {name: bundle.read(name) for name in bundle.namelist()}


def test_the_evidence_report_prints_to_a4_with_the_verification_on_page_one(
    offline: OfflinePage, busy_release: Release, exported: tuple[str, dict[str, bytes]]
) -> None:
    """Printed by Chromium and read back with pypdf: A4 pages, numbered; page 1 says how to verify, with the key
    fingerprint whole; every signer and every proved audit event is there, each event's row whole on a page
    under its table's header row; nothing runs past the right edge; links print their address."""
    bundle_name, files = exported
    html = files["report.html"].decode()
    proved = [e["fields"]["seq"] for e in json.loads(files["events.json"])]
    trace = lineage.trace(busy_release.name)
    # The events the bundle proves are the ones the report must list.
    events = list(AuditEvent.objects.filter(seq__in=proved).order_by("seq"))
    assert len(events) == len(proved)
    checkpoint = Checkpoint.objects.order_by("-size").first()
    assert checkpoint is not None
    fingerprint = signing.fingerprint()
    approvers = [f"{a.approver_name} ({a.approver.get_username()})" for a in trace.approvals]
    assert len(approvers) == 2
    assert len(events) >= 36, "the fixture is meant to fill several pages"

    page = offline.page
    width, _ = print_layout(page, html)
    assert offline.requested == [], f"the report fetched {offline.requested}"
    assert page.locator("script").count() == 0
    # As printed: nothing reaches past the printable width or holds more than fits in it.
    assert page.evaluate(CUT_OFF, width) == []
    # Black (or near) on white paper: nothing needs colour, or a background the printer leaves out, to be read.
    assert check_page(page, "contrast", PRINT_CONTRAST) == []
    first_heading = page.locator("main h2").first.inner_text()

    pdf, reader = print_pdf(page)
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / "evidence-report.pdf").write_bytes(pdf)
    _save_first_page_png(pdf)
    pages = a4_numbered_pages(reader)

    # Page 1: title, who exported it and when (UTC), how to verify, the key fingerprint whole, the checkpoint.
    first = pages[0]
    assert f"Release evidence: {busy_release.name}" in one_line(first)
    assert "by auditor" in one_line(first)
    assert re.search(r"Exported \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", one_line(first))
    key_line = one_line(first).partition("python verify.py")[0]
    assert fingerprint in squeezed(key_line), "the key fingerprint is not written out whole on page 1"
    assert f"python verify.py --key {fingerprint} THIS.zip" in one_line(first)
    assert "out of band" in one_line(first)
    assert squeezed(bundle_name) in squeezed(first)
    assert f"{checkpoint.size} events" in one_line(first)
    assert checkpoint.root_hash in squeezed(first)
    assert trace.digest in squeezed(first)
    # ... and nothing else: the report proper starts at the top of page 2.
    assert first_heading not in first.splitlines()
    assert first_heading in pages[1].splitlines()[:3]
    rest = "\n".join(pages[1:])

    # Links print where they go.
    assert trace.commit is not None
    assert squeezed(f"<{trace.commit.url}>") in squeezed(rest)

    # Every signer, every audit event; each event's row whole on one page, under the table's header row.
    everything = squeezed("\n".join(pages))
    for approver in approvers:
        assert squeezed(approver) in everything, f"{approver} is not in the PDF"
    header = squeezed("# When (UTC) Action Object Actor Reason")
    event_pages: set[int] = set()
    for event in events:
        row = squeezed(
            f"{event.seq} {event.at:%Y-%m-%d %H:%M:%S} {event.action} {event.object_type} {event.object_key}"
            f" {event.actor} {event.reason}"
        )
        found = [number for number, text in enumerate(pages) if row in squeezed(text)]
        assert found, f"audit event #{event.seq} is not on any page in one piece"
        event_pages.update(found)
    assert len(event_pages) > 1, "the events should run over more than one page"
    for number in event_pages:
        assert header in squeezed(pages[number]), f"page {number + 1} lists events without the header row"
    # The events' heading is on the page where their table starts.
    heading_page = next(n for n, text in enumerate(pages) if f"Audit events ({len(events)})" in text.splitlines())
    assert min(event_pages) == heading_page


# Moves ``target`` down (a spacer before ``before``) until the point ``fraction`` of the way down its box is at
# ``y`` px from the top of page 2. The report proper starts at the top of page 2, its first heading's top margin
# kept after the break, and as page 2 has no break before the spacer, layout offsets are page offsets there.
PUSH_DOWN = """([before, target, fraction, y]) => {
    const main = document.querySelector('main');
    const top = main.getBoundingClientRect().top - parseFloat(getComputedStyle(main.firstElementChild).marginTop);
    const element = document.querySelector(target);
    const point = () => { const r = element.getBoundingClientRect(); return r.top + fraction * r.height - top; };
    const spacer = document.createElement('div');
    document.querySelector(before).before(spacer);
    spacer.style.height = '1px';  // a spacer with height stops the margins around it collapsing: measure with it
    spacer.style.height = `${1 + y - point()}px`;
    return point();
}"""


def pushed_down_pdf(offline: OfflinePage, html: str, target: str, fraction: float, room: float) -> list[str]:
    """The text of each page with ``target`` (in the approvals section) moved to ``room`` px above the foot of
    page 2 (below it when negative)."""
    _, height = print_layout(offline.page, html)
    at = offline.page.evaluate(PUSH_DOWN, ["#approvals-h", target, fraction, height - room])
    assert at == pytest.approx(height - room, abs=1)
    _, reader = print_pdf(offline.page)
    return [p.extract_text() for p in reader.pages]


def test_a_heading_at_the_foot_of_a_page_goes_over_with_its_table(
    offline: OfflinePage, exported: tuple[str, dict[str, bytes]]
) -> None:
    """The approvals heading, at the foot of page 2 with room for itself but not for its table's first rows, is
    printed on page 3 above them rather than alone at the bottom of page 2."""
    pages = pushed_down_pdf(offline, exported[1]["report.html"].decode(), "#approvals-h", fraction=1, room=10)
    [heading_page] = [n for n, text in enumerate(pages) if "Approvals" in text.splitlines()]
    assert heading_page == 2, f"the heading is on page {heading_page + 1}"
    assert "Lena Lead (lead)" in pages[heading_page]


def test_a_row_across_the_foot_of_a_page_goes_over_whole(
    offline: OfflinePage, exported: tuple[str, dict[str, bytes]]
) -> None:
    """An approval whose comment takes several lines, its middle at the foot of page 2, is printed whole on
    page 3 (without the rule, Chromium splits a row that tall, leaving enough lines on either side)."""
    last = "table.approvals tbody tr:last-child"
    pages = pushed_down_pdf(offline, exported[1]["report.html"].decode(), last, fraction=0.5, room=0)
    row = squeezed("Omar Second (lead2) approved Reviewed")
    [row_page] = [n for n, text in enumerate(pages) if row in squeezed(text)]
    assert row_page == 2, f"the row starts on page {row_page + 1}"
    assert squeezed(SECOND_OPINION) in squeezed(pages[row_page]), "the row is split over two pages"


def _save_first_page_png(pdf: bytes, name: str = "evidence-report-page1.png") -> None:
    """Page 1 as an image, drawn from the PDF itself (PDFium), for a person to look at."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        document[0].render(scale=150 / 72).to_pil().save(SCREENSHOTS / name)
    finally:
        document.close()


@pytest.mark.parametrize(("viewport", "width"), [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_the_evidence_report_reads_on_screen(
    offline: OfflinePage, exported: tuple[str, dict[str, bytes]], viewport: dict[str, int], width: str
) -> None:
    """Opened from the bundle in a browser: it fits a laptop and a phone, its text readable."""
    page = offline.page
    page.set_viewport_size(viewport)
    page.set_content(exported[1]["report.html"].decode())
    assert offline.requested == []
    problems = check_page(page, "overflow") + check_page(page, "contrast", SCREEN_CONTRAST)
    assert problems == [], f"at {viewport['width']} px:\n" + "\n".join(problems)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"evidence-report-{width}.png"), full_page=True)


def test_the_period_report_prints_to_a4_with_the_verification_on_page_one(
    offline: OfflinePage, busy_release: Release, auditor: Any
) -> None:
    """A period's report, printed the same way: A4 pages, numbered; page 1 says how to verify, with the key
    fingerprint whole and what the population holds; every deployment and rollback of the population is a
    row whole on one page, under the table's header row; nothing runs past the right edge."""
    period = lineage.Period.checked(timezone.now() - datetime.timedelta(days=3), timezone.now())
    bundle_name, data, *_ = export_period_evidence(period, ["production"], by=auditor)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        html = bundle.read("report.html").decode()
        population = json.loads(bundle.read("population.json"))["changes"]
    assert len(population) == 5 * (2 + 2 * ROUNDS), "five production endpoints, each deployed and rolled back"
    fingerprint = signing.fingerprint()

    page = offline.page
    width, _ = print_layout(page, html)
    assert offline.requested == []
    assert page.locator("script").count() == 0
    assert page.evaluate(CUT_OFF, width) == []
    assert check_page(page, "contrast", PRINT_CONTRAST) == []

    pdf, reader = print_pdf(page)
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / "evidence-period-report.pdf").write_bytes(pdf)
    _save_first_page_png(pdf, "evidence-period-report-page1.png")
    pages = a4_numbered_pages(reader)

    first = pages[0]
    assert squeezed(f"Evidence for a period: {period.label}") in squeezed(first)
    assert fingerprint in squeezed(one_line(first).partition("python verify.py")[0])
    assert f"python verify.py --key {fingerprint} THIS.zip" in one_line(first)
    assert squeezed(bundle_name) in squeezed(first)
    rollbacks = sum(1 for change in population if change["kind"] == "rollback")
    assert f"{len(population)} deployments and rollbacks ({rollbacks} rollbacks)" in one_line(first)
    unapproved = sum(1 for change in population if not change["approved_when_deployed"])
    assert f"{unapproved} went live without the approvals the rule requires" in one_line(first)

    header = squeezed("When (UTC) Kind Endpoint Release Replaced By Why Approvals in force")
    row_pages: set[int] = set()
    for change in population:
        when = datetime.datetime.fromisoformat(change["deployed_at"])
        row = squeezed(f"{when:%Y-%m-%d %H:%M:%S} {change['kind']} {change['endpoint']} {change['release']}")
        found = [number for number, text in enumerate(pages) if row in squeezed(text)]
        assert found, f"{change['kind']} on {change['endpoint']} at {when} is not on any page in one piece"
        row_pages.update(found)
    assert min(row_pages) >= 1, "the population starts on page 2"
    for number in row_pages:
        assert header in squeezed(pages[number]), f"page {number + 1} lists changes without the header row"
