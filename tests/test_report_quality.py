"""Data quality per provider and month: F41.2 drift, no descriptor, the disorder-specific
measure missing or unpaired, finished without a paired PHQ-9, referrals without a screening
or a consent answer, and codes outside their lists; each with its count, share and ids."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from dataset_helpers import GAD7, PHQ9, SPIN, complaint, contact, referral, s606, write_submission

from fhir_iapt.ledger import LedgerEntry
from fhir_iapt.report._build import ReportBuilder
from fhir_iapt.report._facts import PathwayFacts
from fhir_iapt.report._model import QualityValue
from fhir_iapt.report._quality import quality_values

D = date
TODAY = D(2024, 6, 1)


def _facts(
    pathway_id: str,
    discharge: date | None,
    *,
    descriptor: str | None = "F41.1",
    fallback: str | None = None,
    phq9_paired: bool = True,
    finished: bool = True,
    provider: str = "RXA",
    end_code: str | None = "46",
    where: str = "",
) -> PathwayFacts:
    return PathwayFacts(
        pathway_id=pathway_id,
        provider=provider,
        pathway="diabetes",
        received=D(2024, 3, 1),
        first_treatment=D(2024, 3, 8),
        discharge=discharge,
        finished=finished,
        not_case_at_start=False,
        recovered=False,
        reliable_improvement=False,
        reliable_deterioration=False,
        descriptor=descriptor,
        anxiety_fallback=fallback,
        phq9_paired=phq9_paired,
        end_code=end_code,
        where=where or f"episodes.csv:{pathway_id}",
    )


MAY = D(2024, 5, 15)
PATHWAYS = [
    _facts("P1", MAY, descriptor="F41.2"),
    _facts("P2", MAY, descriptor="f412"),  # written without the dot: still F41.2
    _facts("P3", MAY, descriptor=None),
    _facts("P4", MAY, descriptor="F40.1", fallback="adsm-not-recorded"),
    _facts("P5", MAY, phq9_paired=False),
    _facts("P6", MAY, finished=False, phq9_paired=False),  # ended, not finished
    _facts("P7", None, descriptor="F41.2"),  # open: not checked until it ends
    _facts("P8", D(2024, 6, 3), descriptor="F41.2", end_code="99", where="episodes.csv:9"),
]


def _by_check(values: list[QualityValue]) -> dict[tuple[str, str, str], QualityValue]:
    return {(v.check, v.provider, v.month): v for v in values}


def test_pathway_checks_count_the_pathways_that_ended_in_the_month() -> None:
    """May: six ended at RXA (P1-P6), five of them finished. F41.2: P1, P2 (2 of 6); no
    descriptor: P3; GAD-7 stood in: P4; finished without a paired PHQ-9: P5 (1 of 5: P6 is
    not finished). June: P8 (F41.2, 1 of 1, and an EndCode outside the list). P7 is open."""
    got = _by_check(quality_values(PATHWAYS, suppress=False))
    f412 = got[("problem-descriptor-f41.2", "RXA", "2024-05")]
    assert (f412.count, f412.denominator, f412.share, f412.ids) == (2, 6, 2 / 6, ("P1", "P2"))
    none = got[("problem-descriptor-missing", "RXA", "2024-05")]
    assert (none.count, none.denominator, none.ids) == (1, 6, ("P3",))
    adsm = got[("adsm-not-recorded-or-unpaired", "RXA", "2024-05")]
    assert (adsm.count, adsm.denominator, adsm.ids) == (1, 6, ("P4",))
    phq9 = got[("phq9-not-paired", "RXA", "2024-05")]
    assert (phq9.count, phq9.denominator, phq9.ids) == (1, 5, ("P5",))
    june = got[("problem-descriptor-f41.2", "RXA", "2024-06")]
    assert (june.count, june.denominator, june.ids) == (1, 1, ("P8",))
    end = got[("end-code-invalid", "RXA", "2024-06")]
    assert (end.count, end.denominator, end.ids) == (1, 1, ("episodes.csv:9",))
    assert not any("P7" in v.ids for v in got.values())
    assert ("end-code-invalid", "RXA", "2024-05") not in got  # nothing found: no row


def test_published_quality_counts_follow_the_kpis_rule_and_withhold_the_ids() -> None:
    """Published: 2 of 6 is suppressed (count under 5, no share), the denominator rounded to
    5; no check lists its ids (two ids would say the count is 2)."""
    got = _by_check(quality_values(PATHWAYS, suppress=True))
    f412 = got[("problem-descriptor-f41.2", "RXA", "2024-05")]
    assert (f412.count, f412.denominator, f412.share, f412.note) == (None, 5, None, "suppressed")
    assert all(value.ids == () for value in got.values())


SYSTEM = "https://example.org/Id/referral"


def test_referral_checks_count_the_ledgers_referrals_per_clinic_and_month() -> None:
    """C1 sent three in May: E1 with a screening and consent, E2 without a screening, E3 with
    no consent answer; E4 is from before the ledger recorded screenings (unknown: not in the
    screening check's denominator)."""

    def entry(identifier: str, screening: bool | None, share: bool | None) -> LedgerEntry:
        return LedgerEntry(
            SYSTEM, identifier, "9000000009", D(2024, 5, 2), "RXA", "44054006", share, "C1",
            screening,
        )  # fmt: skip

    sent = [
        entry("E1", True, True),
        entry("E2", False, False),
        entry("E3", True, None),
        entry("E4", None, True),
    ]
    got = _by_check(quality_values([], sent, suppress=False))
    screening = got[("referral-without-screening", "C1", "2024-05")]
    assert (screening.count, screening.denominator, screening.ids) == (1, 3, ("E2",))
    consent = got[("consent-not-recorded", "C1", "2024-05")]
    assert (consent.count, consent.denominator, consent.ids) == (1, 4, ("E3",))


def test_codes_outside_their_lists_are_located_by_file_and_row(tmp_path: Path) -> None:
    """A data set whose rows carry an AttendOrDNACode, an AppType and a CodedAssToolType
    outside their lists, and an EndCode no list has: each rejected row counted once, out of
    the rows of its table in that submission, with file:row."""
    write_submission(
        tmp_path,
        provider="RXB",
        start="2024-04-01",
        end="2024-04-30",
        referrals=[
            referral("R1", lpid="P1", received="2024-04-01", disch="2024-04-28", end="46"),
            referral("R2", lpid="P2", received="2024-04-02", end="99"),  # row 2: bad EndCode
        ],
        contacts=[
            contact("C1", "2024-04-03", srid="R1"),
            contact("C2", "2024-04-10", srid="R1", attend="9"),  # row 2
            contact("C3", "2024-04-17", srid="R1", app="X1"),  # row 3
            contact("C4", "2024-04-24", srid="R1"),
        ],
        complaints=[complaint("F40.1", srid="R1")],
        refer_scores=[
            s606(PHQ9, "12", "2024-04-03", srid="R1"),
            s606("123456789", "3", "2024-04-03", srid="R1"),  # row 2
            s606(GAD7, "9", "2024-04-03", srid="R1"),
            s606(SPIN, "30", "2024-04-03", srid="R1"),
        ],
    )
    builder = ReportBuilder()
    builder.add_dataset(tmp_path)
    data, _ = builder.build(suppress=False, generated=TODAY)
    got = {(v.check, v.provider, v.month): v for v in data.quality}
    attend = got[("attend-code-invalid", "RXB", "2024-04")]
    assert (attend.count, attend.denominator, attend.ids) == (
        1, 4, ("IDS201CareContact.csv:2",)
    )  # fmt: skip
    app = got[("app-type-invalid", "RXB", "2024-04")]
    assert (app.count, app.denominator, app.ids) == (1, 4, ("IDS201CareContact.csv:3",))
    end = got[("end-code-invalid", "RXB", "2024-04")]
    assert (end.count, end.denominator, end.ids) == (1, 2, ("IDS101Referral.csv:2",))
    tool = got[("assessment-tool-invalid", "RXB", "2024-04")]
    # 4 IDS606 rows and no IDS607 row
    assert (tool.count, tool.denominator, tool.ids) == (
        1, 4, ("IDS606CodedScoreAssessmentRefer.csv:2",)
    )  # fmt: skip
    # the one pathway left (R1) ended in April with SPIN unpaired: GAD-7 stood in
    adsm = got[("adsm-not-recorded-or-unpaired", "RXB", "2024-04")]
    assert adsm.ids == ("RXBR1",)
    assert data.rejected == {"FI153": 3, "FI155": 1}


def test_no_patient_data_in_the_quality_values(tmp_path: Path) -> None:
    """Ids are pathway ids, ledger identifiers and file:row: never an NHS number or a score."""
    sent = [LedgerEntry(SYSTEM, "E9", "9434765919", D(2024, 5, 2), "RXA", None, None, "C1", False)]
    text = repr(quality_values(PATHWAYS, sent, suppress=False))
    assert "9434765919" not in text
