"""report.html in a real browser: Debian's chromium, headless, driven by playwright, with the
network cut off. The page loads with nothing but itself, logs no error, and every chart draws
the marks its figures call for, with JavaScript on and off."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    ConsoleMessage,
    Page,
    Request,
    Route,
    ViewportSize,
    sync_playwright,
)
from report_helpers import PATHWAYS, report_data

from fhir_iapt.report._html import render_html

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
DATA = report_data()


@dataclass
class Loaded:
    """A page as the browser loaded it, with everything it asked for and said."""

    page: Page
    url: str
    screenshot: Path
    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(DATA), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=[True, False], ids=["javascript-on", "javascript-off"])
def loaded(request: pytest.FixtureRequest, report_file: Path) -> Iterator[Loaded]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Debian's chromium is not at {CHROMIUM}: the report's browser test needs it "
            "(apt-get install -y chromium; .ci/run installs it)"
        )
    url = report_file.as_uri()
    shot = report_file.with_name(f"report-js-{'on' if request.param else 'off'}.png")
    with sync_playwright() as p:
        # chromium's sandbox needs user namespaces, which a root CI container lacks
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            context = browser.new_context(viewport=VIEWPORT, java_script_enabled=request.param)
            loaded = Loaded(page=context.new_page(), url=url, screenshot=shot)

            def route(r: Route) -> None:
                if r.request.url == url:
                    r.continue_()
                else:
                    loaded.refused.append(r.request.url)
                    r.abort()

            def console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    loaded.console_errors.append(message.text)

            def asked(r: Request) -> None:
                loaded.requests.append(r.url)

            context.route("**/*", route)
            loaded.page.on("request", asked)
            loaded.page.on("console", console)
            loaded.page.on("pageerror", lambda error: loaded.page_errors.append(str(error)))
            loaded.page.goto(url, wait_until="load")
            loaded.page.screenshot(path=str(shot), full_page=True)
            yield loaded
        finally:
            browser.close()


def test_loads_without_the_network_or_errors(loaded: Loaded) -> None:
    """The browser asks for the file and nothing else, and logs no console or page error."""
    assert loaded.requests == [loaded.url]
    assert loaded.refused == []
    assert loaded.console_errors == []
    assert loaded.page_errors == []


def test_screenshot_is_the_whole_page(loaded: Loaded) -> None:
    """The full-page screenshot is a PNG as wide as the viewport and as tall as the page."""
    data = loaded.screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == VIEWPORT["width"]
    assert height == loaded.page.evaluate("document.documentElement.scrollHeight")


def _expected_marks(pathway: str) -> dict[str, dict[str, int]]:
    """What each of the pathway's charts must draw, counted from the figures: one point per
    rate shown, one bar per funnel stage with a published count."""

    def points(kpi: str) -> int:
        return sum(
            1
            for v in DATA.kpis
            if v.kpi == kpi and v.group.pathway == pathway and v.rate is not None
        )

    stages = ("referrals-sent", "referrals-received", "entered-treatment", "finished-treatment")
    bars = sum(
        1
        for kpi in (*stages, "recovery-rate")
        if any(
            v.kpi == kpi and v.group.pathway == pathway and v.numerator is not None
            for v in DATA.kpis
        )
    )
    return {
        "recovery": {"kpi_recovery_rate_points": points("recovery-rate")},
        "waits": {
            "kpi_first_treatment_6_weeks_points": points("first-treatment-6-weeks"),
            "kpi_first_treatment_18_weeks_points": points("first-treatment-18-weeks"),
        },
        "funnel": {"funnel_bars": bars},
    }


def test_every_chart_has_drawn(loaded: Loaded) -> None:
    """Each pathway's three charts are on the page with a size, and each draws its expected
    number of marks, every one with a size and inside its chart."""
    page = loaded.page
    charts = page.locator("figure[data-chart] svg")
    assert charts.count() == 3 * len(PATHWAYS)
    for pathway in PATHWAYS:
        for kind, marks in _expected_marks(pathway).items():
            figure = page.locator(f"section#pathway-{pathway} figure[data-chart={kind}]")
            svg = figure.locator("svg")
            assert svg.count() == 1, (pathway, kind)
            box = svg.bounding_box()
            assert box is not None, (pathway, kind)
            assert box["width"] > 100, (pathway, kind)
            assert box["height"] > 100, (pathway, kind)
            for name, expected in marks.items():
                items = figure.locator(f'svg g[class*="{name}_"][class$="_marks"] > path')
                rects = items.evaluate_all(
                    "els => els.map(e => { const r = e.getBoundingClientRect();"
                    " return [r.x, r.y, r.width, r.height]; })"
                )
                assert len(rects) == expected, (pathway, kind, name)
                for x, y, width, height in rects:
                    assert width > 0, (pathway, kind, name)
                    assert height > 0, (pathway, kind, name)
                    assert box["x"] <= x <= box["x"] + box["width"], (pathway, kind, name)
                    assert box["y"] <= y <= box["y"] + box["height"], (pathway, kind, name)
