"""The KPIs as FHIR R4: one Measure per KPI (``profiles/Measure-<kpi>.json``, made from
:data:`~fhir_iapt.report._kpis.DEFINITIONS` by :func:`measure`; a test holds the shipped files
to it) and one summary MeasureReport per Measure x group (provider, LTC pathway, month).

* A **rate** is a ``proportion`` Measure with four populations: initial population, denominator
  (the same pathways), denominator exclusion (the recovery rates' "not a case at the start",
  none for the others: count 0) and numerator; ``measureScore`` = numerator / (denominator -
  exclusion), FHIR's proportion scoring and NHS England's formula alike.
* A **count** (referrals sent, received, entered treatment, finished) is a ``cohort`` Measure:
  one population, the initial population, and no score.
* Each Measure has one group per LTC pathway (``group.code`` from the CodeSystem
  ``iapt-ltc-pathway``); a MeasureReport carries the one group it is about. The provider (or,
  for the referral loop, the sending clinic) is ``reporter`` by ODS code, the month is
  ``period``.
* Published, a suppressed count has no ``count`` but the data-absent-reason ``masked`` on it,
  and a rate not shown has a ``measureScore`` holding only the data-absent reason (``masked``
  when suppressed, ``not-applicable`` when not available); rounded counts are the published
  ones, while the score comes from the unrounded counts (NHS England's rule, see
  :mod:`fhir_iapt.report._kpis`).

Resources are made with the project's deterministic ids (``uuid5``), so the same figures give
byte-identical output.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

from fhir_iapt.fhir.ids import deterministic_id
from fhir_iapt.fhir.options import PROJECT_NAMESPACE
from fhir_iapt.report._kpis import (
    BY_ID,
    NOT_AVAILABLE,
    UNKNOWN_CLINIC,
    Counts,
    kpi_value,
    published_count,
)
from fhir_iapt.report._model import PATHWAYS, KpiDefinition
from fhir_iapt.systems import ODS_ORGANIZATION, project_url

MEASURE_POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
MEASURE_SCORING = "http://terminology.hl7.org/CodeSystem/measure-scoring"
IMPROVEMENT_NOTATION = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"
DATA_ABSENT_REASON_EXT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
PATHWAY_SYSTEM = project_url("CodeSystem", "iapt-ltc-pathway")
REPORT_PROFILE = project_url("StructureDefinition", "IaptKpiMeasureReport")
REPORT_IDENTIFIER_SYSTEM = project_url("Id", "kpi-measure-report")
VERSION = "0.1.0"

#: The LTC pathways as the Measures' group codes say them.
PATHWAY_DISPLAY: dict[str, str] = {
    "diabetes": "Diabetes",
    "respiratory": "Respiratory (COPD, asthma)",
    "cardiac": "Cardiac",
    "other": "Other long-term condition or none recorded",
}
#: Rates where fewer is better.
_DECREASE = frozenset({"reliable-deterioration-rate"})


def measure_url(kpi: str) -> str:
    return project_url("Measure", kpi)


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _name(kpi: str) -> str:
    return "".join(part.capitalize() for part in kpi.replace(".", "-").split("-"))


def _populations(d: KpiDefinition) -> list[tuple[str, str]]:
    """(population code, description) of one KPI's Measure group."""
    if d.kind == "count":
        return [("initial-population", d.numerator)]
    return [
        ("initial-population", d.denominator),
        ("denominator", d.denominator),
        ("denominator-exclusion", d.exclusion or "none: nobody leaves the denominator"),
        ("numerator", d.numerator),
    ]


def measure(d: KpiDefinition) -> dict[str, Any]:
    """The shipped Measure of one KPI."""
    out: dict[str, Any] = {
        "resourceType": "Measure",
        "id": d.id,
        "url": measure_url(d.id),
        "version": VERSION,
        "name": _name(d.id),
        "title": d.title,
        "status": "active",
        "experimental": False,
        "publisher": "fhir-iapt",
        "description": _description(d),
        "scoring": _concept(MEASURE_SCORING, "proportion" if d.kind == "rate" else "cohort"),
    }
    if d.kind == "rate":
        direction = "decrease" if d.id in _DECREASE else "increase"
        out["improvementNotation"] = _concept(IMPROVEMENT_NOTATION, direction)
    out["group"] = [
        {
            "code": _concept(PATHWAY_SYSTEM, pathway, PATHWAY_DISPLAY[pathway]),
            "population": [
                {
                    "code": _concept(MEASURE_POPULATION, code),
                    "description": text,
                    "criteria": {"language": "text/plain", "expression": text},
                }
                for code, text in _populations(d)
            ],
        }
        for pathway in PATHWAYS
    ]
    return out


def _description(d: KpiDefinition) -> str:
    if d.kind == "count":
        text = f"{d.title}: {d.numerator}."
    else:
        text = f"{d.title} = {d.numerator} / ({d.denominator}"
        text += f" - {d.exclusion})." if d.exclusion else ")."
    if d.target is not None:
        text += f" Standard: at least {round(d.target * 100)}%."
    text += f" Counted per provider (or sending clinic), LTC pathway and month. Source: {d.source}."
    return text


def _absent(code: str) -> dict[str, Any]:
    return {"extension": [{"url": DATA_ABSENT_REASON_EXT, "valueCode": code}]}


def _population(code: str, count: int, *, suppress: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"code": _concept(MEASURE_POPULATION, code)}
    shown = published_count(count) if suppress else count
    if shown is None:
        out["_count"] = _absent("masked")
    else:
        out["count"] = shown
    return out


def _period(month: str) -> dict[str, str]:
    year, number = (int(part) for part in month.split("-"))
    last = calendar.monthrange(year, number)[1]
    return {"start": f"{month}-01", "end": f"{month}-{last:02d}"}


def measure_report(counts: Counts, *, suppress: bool, generated: date) -> dict[str, Any]:
    """The summary MeasureReport of one KPI for one group."""
    d = BY_ID[counts.kpi]
    group = counts.group
    key = f"{counts.kpi}|{group.provider}|{group.pathway}|{group.month}"
    report: dict[str, Any] = {
        "resourceType": "MeasureReport",
        "id": deterministic_id(PROJECT_NAMESPACE, "measure-report", key),
        "meta": {"profile": [REPORT_PROFILE]},
        "identifier": [{"system": REPORT_IDENTIFIER_SYSTEM, "value": key}],
        "status": "complete",
        "type": "summary",
        "measure": f"{measure_url(d.id)}|{VERSION}",
        "date": generated.isoformat(),
    }
    if group.provider != UNKNOWN_CLINIC:
        report["reporter"] = {
            "type": "Organization",
            "identifier": {"system": ODS_ORGANIZATION, "value": group.provider},
        }
    report["period"] = _period(group.month)
    populations: list[dict[str, Any]]
    if d.kind == "count":
        populations = [_population("initial-population", counts.numerator, suppress=suppress)]
    else:
        populations = [
            _population(code, value, suppress=suppress)
            for code, value in (
                ("initial-population", counts.denominator),
                ("denominator", counts.denominator),
                ("denominator-exclusion", counts.exclusion),
                ("numerator", counts.numerator),
            )
        ]
    out_group: dict[str, Any] = {
        "code": _concept(PATHWAY_SYSTEM, group.pathway, PATHWAY_DISPLAY[group.pathway]),
        "population": populations,
    }
    if d.kind == "rate":
        value = kpi_value(counts, suppress=suppress)
        if value.rate is not None:
            out_group["measureScore"] = {"value": round(value.rate, 6)}
        else:
            out_group["measureScore"] = _absent(
                "not-applicable" if value.note == NOT_AVAILABLE else "masked"
            )
    report["group"] = [out_group]
    return report


def measure_reports(
    counts: Iterable[Counts], *, suppress: bool, generated: date
) -> Iterator[dict[str, Any]]:
    for item in counts:
        yield measure_report(item, suppress=suppress, generated=generated)


__all__ = [
    "DATA_ABSENT_REASON_EXT",
    "MEASURE_POPULATION",
    "PATHWAY_DISPLAY",
    "PATHWAY_SYSTEM",
    "REPORT_IDENTIFIER_SYSTEM",
    "REPORT_PROFILE",
    "VERSION",
    "measure",
    "measure_report",
    "measure_reports",
    "measure_url",
]
