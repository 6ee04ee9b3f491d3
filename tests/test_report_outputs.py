"""The report's CSV files: one row per figure, numbers as numbers, blank where suppressed, and
no cell a spreadsheet would run as a formula (a sending clinic's code comes from a bundle)."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from fhir_iapt.report._kpis import DEFINITIONS
from fhir_iapt.report._model import Group, KpiValue, QualityValue, ReportData
from fhir_iapt.report._write import write_kpis, write_quality

HOSTILE = '=HYPERLINK("http://example.org","x")'


def _data(suppressed: bool) -> ReportData:
    group = Group(HOSTILE, "diabetes", "2024-05")
    return ReportData(
        definitions=DEFINITIONS,
        kpis=(
            KpiValue("referrals-sent", group, 12, None, None),
            KpiValue("loop-closure-matched", group, None, 10, None, "suppressed"),
            KpiValue("recovery-rate", Group("RXA", "other", "2024-05"), 6, 8, 0.75),
        ),
        quality=(
            QualityValue(
                "consent-not-recorded",
                "No consent",
                HOSTILE,
                "2024-05",
                1,
                12,
                1 / 12,
                ("-1+1", "E2"),
            ),
        ),
        suppressed=suppressed,
        generated=date(2024, 6, 1),
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_kpis_csv_has_one_row_per_value_and_blank_for_suppressed(tmp_path: Path) -> None:
    """Counts and rates as written numbers, a suppressed one blank with its note, and whether
    the figures are published or exact."""
    write_kpis(tmp_path / "kpis.csv", _data(True))
    rows = _rows(tmp_path / "kpis.csv")
    assert [(r["kpi"], r["numerator"], r["denominator"], r["rate"], r["note"]) for r in rows] == [
        ("referrals-sent", "12", "", "", ""),
        ("loop-closure-matched", "", "10", "", "suppressed"),
        ("recovery-rate", "6", "8", "0.75", ""),
    ]
    assert {r["figures"] for r in rows} == {"published"}
    write_kpis(tmp_path / "exact.csv", _data(False))
    assert {r["figures"] for r in _rows(tmp_path / "exact.csv")} == {"exact"}


def test_no_cell_starts_a_formula(tmp_path: Path) -> None:
    """A provider or id starting with = + - @ is written with a leading quote."""
    write_kpis(tmp_path / "kpis.csv", _data(True))
    write_quality(tmp_path / "quality.csv", _data(True))
    kpis = _rows(tmp_path / "kpis.csv")
    assert kpis[0]["provider"] == "'" + HOSTILE
    quality = _rows(tmp_path / "quality.csv")
    assert quality[0]["provider"] == "'" + HOSTILE
    assert quality[0]["ids"] == "'-1+1|E2"  # ids are joined by |: a file name may hold spaces
    for path in (tmp_path / "kpis.csv", tmp_path / "quality.csv"):
        for row in _rows(path):
            assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values()), row
