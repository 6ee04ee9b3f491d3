"""The same figures from the national data set and from the equivalent episode export: one
small data set written table by table, the export rows written by hand from the same story
(dates, treatment contacts, first and last scores), both read with one ledger. Also the
bundled example (examples/tt-dataset/ and examples/tt-dataset-episodes.csv)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from dataset_helpers import (
    GAD7,
    NHS_NUMBERS,
    PHQ9,
    complaint,
    contact,
    ltc,
    referral,
    s606,
    write_submission,
)

from fhir_iapt.ledger import Ledger, LedgerEntry
from fhir_iapt.report._build import ReportBuilder
from fhir_iapt.report._model import KpiValue, ReportData

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "https://example.org/Id/clinic-referral"
PATHWAY = "https://fhir-iapt.github.io/fhir/Id/tt-dataset-pathway"
TODAY = date(2024, 6, 1)


def _dataset(folder: Path) -> Path:
    """Provider RXX, April 2024: R1 recovers (diabetes), R2 is not a case (respiratory, F41.2,
    with an assessment and a missed contact), R3 is open after one treatment, R4 improves with
    no LTC and no SPIN for its social-anxiety descriptor."""
    write_submission(
        folder,
        referrals=[
            referral("R1", lpid="P1", received="2024-03-01", disch="2024-04-20", end="46"),
            referral("R2", lpid="P2", received="2024-04-01", disch="2024-04-25", end="46"),
            referral("R3", lpid="P3", received="2024-04-05"),
            referral("R4", lpid="P4", received="2024-02-01", disch="2024-04-30", end="46"),
        ],
        contacts=[
            contact("C11", "2024-04-02", srid="R1"),
            contact("C12", "2024-04-09", srid="R1"),
            contact("C13", "2024-04-16", srid="R1"),
            contact("C21", "2024-04-03", srid="R2", app="01"),
            contact("C22", "2024-04-10", srid="R2"),
            contact("C23", "2024-04-12", srid="R2", attend="3"),
            contact("C24", "2024-04-17", srid="R2"),
            contact("C31", "2024-04-08", srid="R3"),
            contact("C41", "2024-04-01", srid="R4"),
            contact("C42", "2024-04-08", srid="R4"),
        ],
        ltcs=[ltc("44054006", srid="R1"), ltc("13645005", srid="R2"), ltc("84114007", srid="R3")],
        complaints=[
            complaint("F41.1", srid="R1"),
            complaint("F41.2", srid="R2"),
            complaint("F32.1", srid="R3"),
            complaint("F40.1", srid="R4"),
        ],
        refer_scores=[
            s606(PHQ9, "15", "2024-04-02", srid="R1"),
            s606(PHQ9, "6", "2024-04-16", srid="R1"),
            s606(GAD7, "12", "2024-04-02", srid="R1"),
            s606(GAD7, "5", "2024-04-16", srid="R1"),
            s606(PHQ9, "7", "2024-04-10", srid="R2"),
            s606(PHQ9, "5", "2024-04-17", srid="R2"),
            s606(GAD7, "6", "2024-04-10", srid="R2"),
            s606(GAD7, "4", "2024-04-17", srid="R2"),
            s606(PHQ9, "14", "2024-04-08", srid="R3"),
            s606(PHQ9, "18", "2024-04-01", srid="R4"),
            s606(PHQ9, "11", "2024-04-08", srid="R4"),
            s606(GAD7, "14", "2024-04-01", srid="R4"),
            s606(GAD7, "9", "2024-04-08", srid="R4"),
        ],
    )
    return folder


HEADER = (
    "pathway_id,referral_identifier_system,referral_identifier,nhs_number,service_ods,"
    "referral_received_date,discharge_date,problem_descriptor,ltc_snomed,treatment_contacts,"
    "end_code,phq9_first,phq9_last,gad7_first,gad7_last,adsm,adsm_first,adsm_last,wsas_first,"
    "wsas_last,first_score_date,last_score_date,consent_share_outcomes,first_treatment_date"
)
# The same four pathways as the export would state them (R2: 2 treatment contacts, the
# assessment and the missed one are not; R3: open, one contact, only a first score).
ROWS = [
    f"RXXR1,{SYSTEM},REF-1,{NHS_NUMBERS[0]},RXX,2024-03-01,2024-04-20,F41.1,44054006,3,46,"
    "15,6,12,5,,,,,,2024-04-02,2024-04-16,Y,2024-04-02",
    f"RXXR2,{SYSTEM},REF-2,{NHS_NUMBERS[1]},RXX,2024-04-01,2024-04-25,F41.2,13645005,2,46,"
    "7,5,6,4,,,,,,2024-04-10,2024-04-17,,2024-04-10",
    f"RXXR3,{PATHWAY},RXXR3,{NHS_NUMBERS[2]},RXX,2024-04-05,,F32.1,84114007,1,,"
    "14,,,,,,,,,2024-04-08,,,2024-04-08",
    f"RXXR4,{PATHWAY},RXXR4,{NHS_NUMBERS[3]},RXX,2024-02-01,2024-04-30,F40.1,,2,46,"
    "18,11,14,9,,,,,,2024-04-01,2024-04-08,,2024-04-01",
]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """R1's and R2's referrals (R2's patient gave no answer on sharing outcomes), and one
    referral no pathway answers."""
    with Ledger(tmp_path / "ledger.sqlite") as opened:
        opened.record_all(
            [
                LedgerEntry(
                    SYSTEM, "REF-1", NHS_NUMBERS[0], date(2024, 2, 20), "RXX", "44054006",
                    True, "C1", True,
                ),
                LedgerEntry(
                    SYSTEM, "REF-2", NHS_NUMBERS[1], date(2024, 3, 25), "RXX", "13645005",
                    None, "C2", True,
                ),
                LedgerEntry(
                    SYSTEM, "REF-9", "9434765870", date(2023, 11, 1), "RXX", "44054006",
                    True, "C1", False,
                ),
            ]
        )  # fmt: skip
        yield opened


def _report(ledger: Ledger, *, dataset: Path | None = None, export: Path | None = None,
            suppress: bool = False) -> ReportData:  # fmt: skip
    builder = ReportBuilder(ledger=ledger)
    if dataset is not None:
        builder.add_dataset(dataset)
    if export is not None:
        builder.add_export(export)
    assert builder.rejected == []
    assert builder.unusable == []
    return builder.build(suppress=suppress, generated=TODAY)[0]


def _by_key(values: tuple[KpiValue, ...]) -> dict[tuple[str, str, str, str], KpiValue]:
    return {(v.kpi, v.group.provider, v.group.pathway, v.group.month): v for v in values}


@pytest.mark.parametrize("suppress", [False, True])
def test_the_data_set_and_the_export_give_the_same_figures(
    tmp_path: Path, ledger: Ledger, suppress: bool
) -> None:
    """Every KPI value (exact and published) is the same from either input."""
    dataset = _dataset(tmp_path / "dataset")
    export = tmp_path / "episodes.csv"
    export.write_text("\n".join([HEADER, *ROWS]) + "\n")
    from_dataset = _report(ledger, dataset=dataset, suppress=suppress)
    from_export = _report(ledger, export=export, suppress=suppress)
    assert from_dataset.kpis == from_export.kpis
    assert len(from_dataset.kpis) > 0


def test_the_fixture_gives_the_hand_counted_figures(tmp_path: Path, ledger: Ledger) -> None:
    """April at RXX: R1 finished and recovered (diabetes); R2 finished not a case (recovery
    rate not available: 1 - 1 = 0); R4 finished and reliably improved (other); entered
    treatment R1 R2 R3 R4 in April (R2's first treatment is 10 April, not its assessment on
    the 3rd); REF-1 and REF-2 answered, only REF-1's outcome goes back."""
    got = _by_key(_report(ledger, dataset=_dataset(tmp_path / "dataset")).kpis)
    assert got[("finished-treatment", "RXX", "diabetes", "2024-04")].numerator == 1
    assert got[("recovery-rate", "RXX", "diabetes", "2024-04")].rate == 1.0
    respiratory = got[("recovery-rate", "RXX", "respiratory", "2024-04")]
    assert (respiratory.denominator, respiratory.note) == (0, "not available")
    assert got[("reliable-improvement-rate", "RXX", "other", "2024-04")].rate == 1.0
    entered = {
        k[2]: v.numerator
        for k, v in got.items()
        if k[0] == "entered-treatment" and k[3] == "2024-04"
    }
    assert entered == {"diabetes": 1, "respiratory": 1, "cardiac": 1, "other": 1}
    # R2: received 1 Apr, first treatment 10 Apr (9 days), finished: within 6 weeks
    assert got[("first-treatment-6-weeks", "RXX", "respiratory", "2024-04")].rate == 1.0
    # R4: received 1 Feb, first treatment 1 Apr (60 days): not within 6 weeks, within 18
    assert got[("first-treatment-6-weeks", "RXX", "other", "2024-04")].note == "not available"
    assert got[("first-treatment-18-weeks", "RXX", "other", "2024-04")].rate == 1.0
    assert got[("loop-closure-matched", "C1", "diabetes", "2024-02")].rate == 1.0
    assert got[("loop-closure-outcomes", "C1", "diabetes", "2024-02")].rate == 1.0
    assert got[("loop-closure-outcomes", "C2", "respiratory", "2024-03")].note == "not available"
    assert got[("consent-recorded", "C2", "respiratory", "2024-03")].note == "not available"
    assert got[("loop-closure-matched", "C1", "diabetes", "2023-11")].note == "not available"


def test_the_bundled_example_gives_the_same_figures_both_ways(tmp_path: Path) -> None:
    """examples/tt-dataset/ and examples/tt-dataset-episodes.csv are the same pathways: the
    KPIs agree (the data set's bad rows are rejected rows, not pathways, so they change
    nothing the export would not)."""
    with Ledger(tmp_path / "ledger.sqlite") as empty:
        builder = ReportBuilder(ledger=empty)
        builder.add_dataset(ROOT / "examples" / "tt-dataset")
        from_dataset = builder.build(suppress=False, generated=TODAY)[0]
        assert len(builder.rejected) == 3  # the example's bad codes, on purpose
        other = ReportBuilder(ledger=empty)
        other.add_export(ROOT / "examples" / "tt-dataset-episodes.csv")
        from_export = other.build(suppress=False, generated=TODAY)[0]
        assert other.rejected == []
    assert from_dataset.kpis == from_export.kpis
    assert other.pathways == builder.pathways == 24
