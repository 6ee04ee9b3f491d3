"""Write the report's machine-readable outputs: ``kpis.csv``, ``data-quality.csv`` and
``measure-reports.ndjson`` (one summary MeasureReport per line), each under a temporary name
and renamed into place when complete (:class:`~fhir_iapt.emit._atomic.AtomicFile`).

The CSVs hold codes, counts and ids only. A cell that a spreadsheet would run as a formula
(starting ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is written with a leading
``'`` so that opening the file runs nothing; numbers are written as numbers. The ids of a
data-quality check are joined by ``|``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import orjson

from fhir_iapt.emit._atomic import AtomicFile
from fhir_iapt.report._kpis import Counts
from fhir_iapt.report._measures import measure_reports
from fhir_iapt.report._model import KpiValue, QualityValue, ReportData

KPIS_FILE = "kpis.csv"
QUALITY_FILE = "data-quality.csv"
MEASURE_REPORTS_FILE = "measure-reports.ndjson"
REPORT_FILE = "report.html"

KPI_COLUMNS = (
    "kpi",
    "provider",
    "pathway",
    "month",
    "numerator",
    "denominator",
    "rate",
    "note",
    "figures",
)
QUALITY_COLUMNS = (
    "check",
    "title",
    "provider",
    "month",
    "count",
    "denominator",
    "share",
    "note",
    "figures",
    "ids",
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
#: data-quality.csv's ids column joins the ids with this (a file name may hold spaces)
IDS_SEPARATOR = "|"


def _text(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA) else value


def _number(value: int | float | None) -> str:
    if value is None:
        return ""
    return f"{value:.6f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def _figures(data: ReportData) -> str:
    return "published" if data.suppressed else "exact"


def _kpi_row(value: KpiValue, figures: str) -> list[str]:
    g = value.group
    return [
        value.kpi,
        _text(g.provider),
        g.pathway,
        g.month,
        _number(value.numerator),
        _number(value.denominator),
        _number(value.rate),
        value.note,
        figures,
    ]


def _quality_row(value: QualityValue, figures: str) -> list[str]:
    return [
        value.check,
        value.title,
        _text(value.provider),
        value.month,
        _number(value.count),
        _number(value.denominator),
        _number(value.share),
        value.note,
        figures,
        _text(IDS_SEPARATOR.join(value.ids)),
    ]


def _csv(path: Path, header: Iterable[str], rows: Iterable[list[str]]) -> None:
    out = AtomicFile(path)
    try:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            if buffer.tell() > 1 << 16:
                out.write(buffer.getvalue().encode("utf-8"))
                buffer.seek(0)
                buffer.truncate()
        out.write(buffer.getvalue().encode("utf-8"))
    except BaseException:
        out.discard()
        raise
    out.commit()


def write_kpis(path: Path, data: ReportData) -> None:
    figures = _figures(data)
    _csv(path, KPI_COLUMNS, (_kpi_row(v, figures) for v in data.kpis))


def write_quality(path: Path, data: ReportData) -> None:
    figures = _figures(data)
    _csv(path, QUALITY_COLUMNS, (_quality_row(v, figures) for v in data.quality))


def write_measure_reports(
    path: Path, counts: Iterable[Counts], *, suppress: bool, generated: date
) -> int:
    """One MeasureReport per line; returns how many."""
    out = AtomicFile(path)
    written = 0
    try:
        for report in measure_reports(counts, suppress=suppress, generated=generated):
            out.write(orjson.dumps(report, option=orjson.OPT_APPEND_NEWLINE))
            written += 1
    except BaseException:
        out.discard()
        raise
    out.commit()
    return written


def write_text(path: Path, text: str) -> None:
    out = AtomicFile(path)
    try:
        out.write(text.encode("utf-8"))
    except BaseException:
        out.discard()
        raise
    out.commit()


__all__ = [
    "IDS_SEPARATOR",
    "KPIS_FILE",
    "KPI_COLUMNS",
    "MEASURE_REPORTS_FILE",
    "QUALITY_COLUMNS",
    "QUALITY_FILE",
    "REPORT_FILE",
    "write_kpis",
    "write_measure_reports",
    "write_quality",
    "write_text",
]
