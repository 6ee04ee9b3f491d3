"""The progress display and how far a conversion has read (for the bar's total and time left)."""

from __future__ import annotations

import io
from pathlib import Path

from fhir_iapt.cli._progress import Progress
from fhir_iapt.pipeline import ReadProgress, convert_files

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_read_progress_reaches_the_inputs_total_size() -> None:
    """Across two files, bytes_read grows while reading and ends at their summed size."""
    files = [EXAMPLES / "diabetes.csv", EXAMPLES / "diabetes.csv"]
    total = sum(f.stat().st_size for f in files)
    read = ReadProgress()
    seen = []
    for _ in convert_files(files, mapping="diabetes-csv", validation="none", progress=read):
        seen.append(read.bytes_read)
    assert 0 < seen[0] <= total
    assert seen == sorted(seen)
    assert read.bytes_read == total


def test_progress_on_a_terminal_shows_total_rate_time_left_and_counts() -> None:
    """The bar names the bytes of the total, the records and their rate, and every count."""
    out = io.StringIO()
    with Progress(
        "convert",
        total_bytes=4096,
        position=lambda: 2048,
        stream=out,
        force_terminal=True,
        width=160,
    ) as progress:
        progress.update(10, converted=7, skipped=2, rejected=1)
    text = out.getvalue()
    assert "convert" in text
    assert "2.0/4.0 KiB" in text
    assert "10 records" in text
    assert "7 converted, 2 skipped, 1 rejected" in text
    assert "/s" in text


def test_progress_bar_is_erased_when_the_run_ends() -> None:
    """Transient: after the last redraw the line is cleared, so the summary replaces it."""
    out = io.StringIO()
    with Progress(
        "convert", total_bytes=10, position=lambda: 10, stream=out, force_terminal=True, width=160
    ) as progress:
        progress.update(1, converted=1, skipped=0, rejected=0)
    text = out.getvalue()
    last_counts = text.rfind("1 converted")
    assert last_counts >= 0
    assert "\x1b[2K" in text[last_counts:]


def test_no_display_when_not_a_terminal() -> None:
    """Piped or redirected stderr gets nothing from the progress display."""
    out = io.StringIO()
    with Progress("convert", total_bytes=10, position=lambda: 5, stream=out) as progress:
        progress.update(3, converted=3, skipped=0, rejected=0)
    assert out.getvalue() == ""
