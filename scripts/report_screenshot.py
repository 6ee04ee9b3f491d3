"""Take docs/report.png, the README's picture of report.html: the report of the bundled
examples, opened in Debian's chromium (headless, the network cut off) and photographed from the
top to the end of its first pathway.

Usage:
  python scripts/report_screenshot.py                  # fhir-iapt report examples/tt-dataset/
                                                       #   --dataset tt-v2.1
  python scripts/report_screenshot.py -- ARG...        # fhir-iapt report ARG... instead
  python scripts/report_screenshot.py --html FILE      # a report.html already written
  python scripts/report_screenshot.py --fixture        # the tests' hand-built figures
  add --full-page for the whole page, --out PATH for another file than docs/report.png

It needs /usr/bin/chromium (apt-get install chromium) and the test extra (playwright).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Route, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
DEFAULT_ARGS = ("examples/tt-dataset/", "--dataset", "tt-v2.1")


def _from_cli(args: list[str], out: Path) -> Path:
    """Run ``fhir-iapt report ARGS --out OUT`` in this process; the report.html it wrote.
    Unless ARGS name a ``--ledger``, the default ledger is pointed at a file that does not
    exist (the report then leaves the referral loop out), so the picture never shows the
    ledger of whoever runs the script."""
    from fhir_iapt.cli import COMMANDS, main

    if "report" not in COMMANDS:
        sys.exit("fhir-iapt has no report command yet: use --fixture or --html FILE")
    if not any(a == "--ledger" or a.startswith("--ledger=") for a in args):
        os.environ["FHIR_IAPT_LEDGER"] = str(out.parent / "no-ledger.sqlite")
    try:
        main(["report", *args, "--out", str(out)], standalone_mode=False)
    except SystemExit as stop:  # exit 1: some rows rejected, the report is still written
        if stop.code not in (0, 1, None):
            raise
    return out / "report.html"


def _from_fixture(out: Path) -> Path:
    """report.html of the hand-built figures in tests/report_helpers.py."""
    sys.path.insert(0, str(ROOT / "tests"))
    from report_helpers import report_data

    from fhir_iapt.report._html import render_html

    path = out / "report.html"
    path.write_text(render_html(report_data(hostile=False)), encoding="utf-8")
    return path


def screenshot(html: Path, png: Path, *, full_page: bool) -> None:
    """Photograph ``html`` into ``png`` (1280 px wide), refusing every request but the file."""
    if not CHROMIUM.is_file():
        sys.exit(f"no browser at {CHROMIUM}: apt-get install -y chromium")
    url = html.resolve().as_uri()
    refused: list[str] = []

    def route(r: Route) -> None:
        if r.request.url == url:
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", route)
            page = context.new_page()
            page.goto(url, wait_until="load")
            if not full_page:
                height = page.evaluate(
                    "(() => { const s = document.querySelector('section.pathway');"
                    " return s ? Math.ceil(s.getBoundingClientRect().bottom) + 16"
                    " : document.documentElement.scrollHeight; })()"
                )
                page.set_viewport_size({"width": 1280, "height": int(height)})
            png.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(png), full_page=full_page)
        finally:
            browser.close()
    if refused:
        sys.exit(f"the report asked for {len(refused)} outside resource(s): {refused[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--html", type=Path, help="a report.html already written")
    source.add_argument("--fixture", action="store_true", help="the tests' hand-built figures")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--full-page", action="store_true", help="the whole page")
    parser.add_argument("report_args", nargs="*", help="after --: fhir-iapt report's arguments")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if options.html is not None:
            html = options.html
        elif options.fixture:
            html = _from_fixture(Path(scratch))
        else:
            os.chdir(ROOT)
            html = _from_cli(options.report_args or list(DEFAULT_ARGS), Path(scratch) / "out")
        screenshot(html, options.out, full_page=options.full_page)
    print(options.out)


if __name__ == "__main__":
    main()
