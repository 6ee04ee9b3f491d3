"""The KPIs as FHIR: the shipped Measures (one per KPI, made from the definitions), and every
MeasureReport the report writes valid against R4 and the shipped profiles and Measures; the
validator holds a MeasureReport to the Measure it names."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_iapt._data import profiles_dir
from fhir_iapt.fhir.validate import default_validator
from fhir_iapt.ledger import Ledger
from fhir_iapt.pipeline import convert_file
from fhir_iapt.report._build import ReportBuilder
from fhir_iapt.report._kpis import DEFINITIONS, Counts
from fhir_iapt.report._measures import measure, measure_report, measure_reports
from fhir_iapt.report._model import Group
from fhir_iapt.results import Converted

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TODAY = date(2026, 6, 1)
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
DAR = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


@pytest.fixture(scope="module")
def example_counts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Counts]]:
    """The bundled example's KPI populations, with the clinic examples' referrals in the
    ledger (as convert --ledger records them)."""
    folder = tmp_path_factory.mktemp("report-fhir")
    with Ledger(folder / "ledger.sqlite") as ledger:
        for example, mapping in (
            ("diabetes.csv", "diabetes-csv"),
            ("respiratory.xml", "respiratory-xml"),
            ("cardiac.json", "cardiac-json"),
        ):
            for result in convert_file(EXAMPLES / example, mapping=mapping):
                if isinstance(result, Converted):
                    ledger.record_bundle(result.bundle)
        builder = ReportBuilder(ledger=ledger)
        builder.add_dataset(EXAMPLES / "tt-dataset")
        yield builder.build(generated=TODAY)[1]


@pytest.mark.parametrize("suppress", [True, False])
def test_every_measure_report_is_valid(example_counts: list[Counts], suppress: bool) -> None:
    """R4, the IaptKpiMeasureReport profile and the Measure each names: no issue at all (not
    even a warning), published and exact, for every KPI kind and group of the example."""
    reports = list(measure_reports(example_counts, suppress=suppress, generated=TODAY))
    assert {r["measure"].split("|")[0].rsplit("/", 1)[1] for r in reports} == {
        d.id for d in DEFINITIONS
    }
    validator = default_validator()
    problems = {r["identifier"][0]["value"]: validator.validate(r) for r in reports}
    assert {key: issues for key, issues in problems.items() if issues} == {}


def test_the_shipped_measures_are_made_from_the_definitions() -> None:
    """profiles/Measure-<kpi>.json is exactly what scripts/build_measures.py writes, one per
    KPI and no other."""
    shipped = {p.name for p in profiles_dir().glob("Measure-*.json")}
    assert shipped == {f"Measure-{d.id}.json" for d in DEFINITIONS}
    for d in DEFINITIONS:
        text = (profiles_dir() / f"Measure-{d.id}.json").read_text(encoding="utf-8")
        assert json.loads(text) == measure(d), d.id


def test_the_shipped_measures_are_valid_r4() -> None:
    """Each Measure passes the R4 validator; a rate is a proportion with the four
    populations, a count a cohort with one."""
    validator = default_validator()
    for d in DEFINITIONS:
        resource = measure(d)
        assert validator.validate(resource) == [], d.id
        codes = [p["code"]["coding"][0]["code"] for p in resource["group"][0]["population"]]
        scoring = resource["scoring"]["coding"][0]["code"]
        if d.kind == "rate":
            assert scoring == "proportion"
            assert codes == ["initial-population", "denominator", "denominator-exclusion",
                             "numerator"]  # fmt: skip
        else:
            assert (scoring, codes) == ("cohort", ["initial-population"])
        assert [g["code"]["coding"][0]["code"] for g in resource["group"]] == [
            "diabetes", "respiratory", "cardiac", "other"
        ]  # fmt: skip


GROUP = Group("RXA", "diabetes", "2024-05")


def _populations(report: dict[str, Any]) -> dict[str, Any]:
    return {
        p["code"]["coding"][0]["code"]: p.get("count", p.get("_count"))
        for p in report["group"][0]["population"]
    }


def test_a_rate_reports_its_four_populations_and_score() -> None:
    """6 finished, 1 not a case, 2 recovered: initial population and denominator 6, exclusion
    1, numerator 2, score 2 / (6 - 1)."""
    report = measure_report(Counts("recovery-rate", GROUP, 2, 6, 1), suppress=False,
                            generated=TODAY)  # fmt: skip
    assert _populations(report) == {
        "initial-population": 6,
        "denominator": 6,
        "denominator-exclusion": 1,
        "numerator": 2,
    }
    assert report["group"][0]["measureScore"] == {"value": 0.4}
    assert report["period"] == {"start": "2024-05-01", "end": "2024-05-31"}
    assert report["reporter"]["identifier"]["value"] == "RXA"
    assert report["group"][0]["code"]["coding"][0]["code"] == "diabetes"


def test_a_published_report_masks_what_is_suppressed() -> None:
    """Published: counts under 5 carry data-absent-reason 'masked' instead of a count, others
    are rounded, and a rate from a count under 5 has a masked score."""
    report = measure_report(Counts("recovery-rate", GROUP, 3, 8, 0), suppress=True,
                            generated=TODAY)  # fmt: skip
    masked = {"extension": [{"url": DAR, "valueCode": "masked"}]}
    assert _populations(report) == {
        "initial-population": 10,
        "denominator": 10,
        "denominator-exclusion": masked,
        "numerator": masked,
    }
    assert report["group"][0]["measureScore"] == masked
    assert default_validator().validate(report) == []


def test_a_rate_not_available_has_a_not_applicable_score() -> None:
    """Nobody finished: no score, the reason 'not-applicable'."""
    report = measure_report(Counts("recovery-rate", GROUP, 0, 0, 0), suppress=False,
                            generated=TODAY)  # fmt: skip
    assert report["group"][0]["measureScore"] == {
        "extension": [{"url": DAR, "valueCode": "not-applicable"}]
    }


def test_a_clinic_the_ledger_does_not_know_has_no_reporter() -> None:
    """A referral recorded before the ledger knew its clinic: no reporter, still valid."""
    report = measure_report(Counts("referrals-sent", Group("unknown", "other", "2024-05"), 7),
                            suppress=False, generated=TODAY)  # fmt: skip
    assert "reporter" not in report
    assert _populations(report) == {"initial-population": 7}
    assert default_validator().validate(report) == []


def _codes(report: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    return [(i.error_code, i.expression) for i in default_validator().validate(report)]


def _valid() -> dict[str, Any]:
    return measure_report(Counts("recovery-rate", GROUP, 2, 6, 1), suppress=False,
                          generated=TODAY)  # fmt: skip


def test_a_report_whose_group_is_not_the_measures_is_refused() -> None:
    """A group code the Measure has not (and the profile's value set lacks): FI411 + FI402."""
    report = _valid()
    report["group"][0]["code"]["coding"][0]["code"] = "renal"
    codes = _codes(report)
    assert ("FI411", "MeasureReport.group[0]") in codes
    assert ("FI402", "MeasureReport.group[0].code") in codes


def test_a_report_missing_a_population_is_refused() -> None:
    """Leaving the denominator exclusion out of a recovery report: FI411 naming the group."""
    report = _valid()
    populations = report["group"][0]["population"]
    report["group"][0]["population"] = [*populations[:2], populations[3]]
    assert _codes(report) == [("FI411", "MeasureReport.group[0].population")]


def test_a_score_the_measure_does_not_allow_is_refused() -> None:
    """A proportion above 1, and a score on a cohort (count) Measure: FI411."""
    report = _valid()
    report["group"][0]["measureScore"] = {"value": 1.5}
    assert _codes(report) == [("FI411", "MeasureReport.group[0].measureScore.value")]
    count = measure_report(Counts("referrals-sent", GROUP, 7), suppress=False, generated=TODAY)
    count["group"][0]["measureScore"] = {"value": 0.5}
    assert _codes(count) == [("FI411", "MeasureReport.group[0].measureScore")]


def test_a_negative_count_breaks_the_profile() -> None:
    """Counts are 0 or more (the profile's invariant iapt-kpi-1)."""
    report = _valid()
    report["group"][0]["population"][0]["count"] = -1
    assert _codes(report) == [("FI406", "MeasureReport")]


def test_an_unknown_measure_or_version_is_a_warning() -> None:
    """A Measure (or version) not shipped: FI410, a warning: the groups are not checked."""
    for canonical in (
        "https://example.org/Measure/other",
        "https://fhir-iapt.github.io/fhir/Measure/recovery-rate|9.9.9",
    ):
        report = copy.deepcopy(_valid())
        report["measure"] = canonical
        issues = default_validator().validate(report)
        assert [(i.error_code, i.severity) for i in issues] == [("FI410", "warning")]
