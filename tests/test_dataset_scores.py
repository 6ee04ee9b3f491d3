"""Data set derivation: first/last scores, ties, NA, IDS607 dating, WSAS, ADSM, descriptor, LTC."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from dataset_helpers import (
    GAD7,
    PCL5,
    PHQ9,
    PSWQ,
    SPIN,
    WSAS,
    activity,
    codes,
    complaint,
    contact,
    ltc,
    read,
    referral,
    s606,
    s607,
    write_submission,
)

D = Decimal


def _phq9(tmp_path: Path, refer_scores: list[dict[str, str]]) -> tuple[D | None, D | None]:
    write_submission(tmp_path, referrals=[referral(disch="2024-04-20")], refer_scores=refer_scores)
    pathways, rejected = read(tmp_path)
    assert rejected == []
    pair = pathways["RXXR1"].phq9
    return pair.first, pair.last


# (case, IDS606 rows as (score, date, time), expected first, expected last)
FIRST_LAST = [
    (
        "in date order",
        [("20", "2024-02-01", ""), ("9", "2024-03-01", ""), ("12", "2024-02-15", "")],
        20,
        9,
    ),
    ("rows in any order", [("9", "2024-03-01", ""), ("20", "2024-02-01", "")], 20, 9),
    ("one score has no last", [("20", "2024-02-01", "")], 20, None),
    (
        "same day: time decides",
        [("7", "2024-02-01", "14:00"), ("20", "2024-02-01", "09:30")],
        20,
        7,
    ),
    (
        "same day: no time sorts first",
        [("7", "2024-02-01", "10:00"), ("20", "2024-02-01", "")],
        20,
        7,
    ),
    # IDS606's key is pathway + tool + date + time (NHS England keeps the latest version, V ES)
    (
        "same date and time is one record: the later row",
        [("11", "2024-02-01", ""), ("22", "2024-02-01", "")],
        22,
        None,
    ),
    ("NA is no score", [("20", "2024-02-01", ""), ("NA", "2024-03-01", "")], 20, None),
    (
        "N/A is no score",
        [("N/A", "2024-02-01", ""), ("5", "2024-03-01", ""), ("6", "2024-04-01", "")],
        5,
        6,
    ),
    ("lower-case na is no score", [("na", "2024-02-01", ""), ("5", "2024-03-01", "")], 5, None),
]


@pytest.mark.parametrize(
    ("rows", "first", "last"), [c[1:] for c in FIRST_LAST], ids=[c[0] for c in FIRST_LAST]
)
def test_first_and_last_score(
    tmp_path: Path, rows: list[tuple[str, str, str]], first: int, last: int | None
) -> None:
    """First/last PHQ-9 follow NHS England's ORDER BY date, time, id DESC pattern."""
    got = _phq9(tmp_path, [s606(PHQ9, s, d, time=t) for s, d, t in rows])
    assert got == (D(first), D(last) if last is not None else None)


def test_ids607_is_dated_by_its_parent_contact(tmp_path: Path) -> None:
    """IDS607 -> IDS202 CareActId -> IDS201 CareContDate orders the scores, not the file order."""
    write_submission(
        tmp_path,
        referrals=[referral(disch="2024-04-20")],
        contacts=[contact("C1", "2024-03-20"), contact("C2", "2024-02-01")],
        activities=[activity("A1", "C1"), activity("A2", "C2")],
        # A1's contact is later than A2's although A1 comes first in the file
        act_scores=[s607("A1", PHQ9, "6"), s607("A2", PHQ9, "18")],
        refer_scores=[s606(PHQ9, "12", "2024-03-01")],
    )
    pathway = read(tmp_path)[0]["RXXR1"]
    assert (pathway.phq9.first, pathway.phq9.last) == (D(18), D(6))
    assert pathway.first_score_date is not None
    assert pathway.first_score_date.isoformat() == "2024-02-01"
    assert pathway.last_score_date is not None
    assert pathway.last_score_date.isoformat() == "2024-03-20"


def test_full_tie_first_is_the_later_row(tmp_path: Path) -> None:
    """Two scores on one contact (two activities, no time): first = the later row (id DESC)."""
    write_submission(
        tmp_path,
        referrals=[referral()],
        contacts=[contact("C1", "2024-02-01")],
        activities=[activity("A1", "C1"), activity("A2", "C1")],
        act_scores=[s607("A1", PHQ9, "11"), s607("A2", PHQ9, "22")],
    )
    pathway = read(tmp_path)[0]["RXXR1"]
    assert (pathway.phq9.first, pathway.phq9.last) == (D(22), D(11))


def test_ids607_without_its_contact_is_rejected_located(tmp_path: Path) -> None:
    """An IDS607 whose care activity has no contact has no date: rejected by table, row, field."""
    write_submission(
        tmp_path,
        referrals=[referral()],
        contacts=[contact("C1", "2024-02-01")],
        activities=[activity("A1", "C1"), activity("A2", "C-missing")],
        act_scores=[s607("A1", PHQ9, "10"), s607("A2", PHQ9, "13"), s607("A3", PHQ9, "14")],
    )
    pathways, rejected = read(tmp_path)
    assert codes(rejected) == ["FI156", "FI156"]
    assert [(r.location.file, r.location.row, r.location.field) for r in rejected] == [
        ("IDS607CodedScoreAssessmentAct.csv", 2, "CareActId"),
        ("IDS607CodedScoreAssessmentAct.csv", 3, "CareActId"),
    ]
    assert pathways["RXXR1"].phq9.first == D(10)


def test_scores_outside_the_referral_are_rejected(tmp_path: Path) -> None:
    """A score dated before the referral or after discharge is rejected and left out."""
    write_submission(
        tmp_path,
        referrals=[referral(received="2024-01-10", disch="2024-04-20")],
        refer_scores=[
            s606(PHQ9, "25", "2024-01-09"),
            s606(PHQ9, "14", "2024-01-10"),
            s606(PHQ9, "8", "2024-04-20"),
            s606(PHQ9, "2", "2024-04-21"),
        ],
    )
    pathways, rejected = read(tmp_path)
    assert codes(rejected) == ["FI157", "FI157"]
    assert [(r.location.row, r.location.field) for r in rejected] == [
        (1, "AssToolCompDate"),
        (4, "AssToolCompDate"),
    ]
    assert (pathways["RXXR1"].phq9.first, pathways["RXXR1"].phq9.last) == (D(14), D(8))


# (case, tool, PersScore, error code or None = accepted)
SCORE_CHECKS = [
    ("PHQ-9 top of range", PHQ9, "27", None),
    ("PHQ-9 above range", PHQ9, "28", "FI154"),
    ("PHQ-9 negative", PHQ9, "-1", "FI154"),
    ("GAD-7 above range", GAD7, "22", "FI154"),
    ("PHQ-9 with decimals", PHQ9, "12.5", "FI154"),
    ("not a number", PHQ9, "high", "FI154"),
    ("PSWQ below its 16 floor", PSWQ, "15", "FI154"),
    ("unknown tool", "123456789", "5", "FI155"),
    ("WSAS work item 9 (not available) accepted", WSAS[0], "9", None),
    ("WSAS home item 9 out of range", WSAS[1], "9", "FI154"),
]


@pytest.mark.parametrize(
    ("tool", "score", "code"), [c[1:] for c in SCORE_CHECKS], ids=[c[0] for c in SCORE_CHECKS]
)
def test_score_checks(tmp_path: Path, tool: str, score: str, code: str | None) -> None:
    """PersScore is checked against its tool's range (tt-dataset.md §3), the value never shown."""
    write_submission(
        tmp_path, referrals=[referral()], refer_scores=[s606(tool, score, "2024-02-01")]
    )
    _pathways, rejected = read(tmp_path)
    assert codes(rejected) == ([code] if code else [])
    for r in rejected:
        assert (r.location.file, r.location.row) == ("IDS606CodedScoreAssessmentRefer.csv", 1)
        assert r.location.field == ("CodedAssToolType" if code == "FI155" else "PersScore")
        rule = r.error.message  # the diagnostics without the location
        assert not re.search(rf"(?<![\w.-]){re.escape(score)}(?![\w.])", rule), rule


def test_wsas_is_the_sum_of_five_items_of_one_assessment(tmp_path: Path) -> None:
    """WSAS = the five items of one activity summed; a missing or not-available item gives none."""
    write_submission(
        tmp_path,
        referrals=[referral()],
        contacts=[
            contact("C1", "2024-02-01"),
            contact("C2", "2024-03-01"),
            contact("C3", "2024-04-01"),
        ],
        activities=[activity("A1", "C1"), activity("A2", "C2"), activity("A3", "C3")],
        act_scores=[
            *(s607("A1", t, s) for t, s in zip(WSAS, ["8", "6", "5", "4", "3"], strict=True)),
            # A2 lacks the relationships item: no total
            *(s607("A2", t, s) for t, s in zip(WSAS[:4], ["1", "1", "1", "1"], strict=True)),
            *(s607("A3", t, s) for t, s in zip(WSAS, ["2", "1", "0", "3", "4"], strict=True)),
        ],
    )
    pathway = read(tmp_path)[0]["RXXR1"]
    assert (pathway.wsas.first, pathway.wsas.last) == (D(26), D(10))


def test_wsas_work_not_available_gives_no_total(tmp_path: Path) -> None:
    """A work item of 9 ("not available") leaves that assessment without a WSAS total."""
    write_submission(
        tmp_path,
        referrals=[referral()],
        refer_scores=[
            s606(t, s, "2024-02-01") for t, s in zip(WSAS, ["9", "1", "2", "3", "4"], strict=True)
        ],
    )
    assert read(tmp_path)[0]["RXXR1"].wsas.empty


# (case, IDS603 rows, expected descriptor)
DESCRIPTORS = [
    ("one ICD-10 code, no dot", [complaint("F411")], "F41.1"),
    (
        "primary before secondary",
        [complaint("F32.1", sig="2"), complaint("F40.1", sig="1")],
        "F40.1",
    ),
    (
        "valid code before an invalid primary",
        [complaint("XYZ", sig="1"), complaint("F42", sig="2")],
        "F42",
    ),
    (
        "same significance: latest PresCompDate",
        [complaint("F41.0", date="2024-03-01"), complaint("F43.1", date="2024-01-01")],
        "F41.0",
    ),
    ("full tie: later row", [complaint("F41.0"), complaint("F43.1")], "F43.1"),
    ("SNOMED complaint gives no ICD-10 descriptor", [complaint("21897009", scheme="04")], None),
    ("none recorded", [], None),
]


@pytest.mark.parametrize(
    ("rows", "expected"), [c[1:] for c in DESCRIPTORS], ids=[c[0] for c in DESCRIPTORS]
)
def test_problem_descriptor_as_nhs_england_picks(
    tmp_path: Path, rows: list[dict[str, str]], expected: str | None
) -> None:
    """IDS603: valid code first, PresCompCodSig asc, PresCompDate desc, id desc (PDT-2.11 l.52)."""
    write_submission(tmp_path, referrals=[referral()], complaints=rows)
    pathways, rejected = read(tmp_path)
    assert rejected == []
    assert pathways["RXXR1"].problem_descriptor == expected


# (case, descriptor, tools scored, expected ADSM)
ADSM_CASES = [
    ("social anxiety uses SPIN", "F40.1", [SPIN, GAD7], "SPIN"),
    ("PTSD uses PCL-5", "F43.1", [PCL5, GAD7], "PCL5"),
    ("SPIN recorded but descriptor is GAD", "F41.1", [SPIN, GAD7], None),
    ("social anxiety without SPIN scores", "F40.1", [GAD7], None),
]


@pytest.mark.parametrize(
    ("descriptor", "tools", "adsm"), [c[1:] for c in ADSM_CASES], ids=[c[0] for c in ADSM_CASES]
)
def test_adsm_by_descriptor_and_tool(
    tmp_path: Path, descriptor: str, tools: list[str], adsm: str | None
) -> None:
    """The ADSM is the measure fitting the descriptor with scores; GAD-7 stays the fallback."""
    write_submission(
        tmp_path,
        referrals=[referral()],
        complaints=[complaint(descriptor)],
        refer_scores=[
            s606(t, s, d) for t in tools for s, d in (("20", "2024-02-01"), ("9", "2024-03-01"))
        ],
    )
    pathway = read(tmp_path)[0]["RXXR1"]
    assert pathway.adsm == adsm
    if adsm:
        assert (pathway.adsm_scores.first, pathway.adsm_scores.last) == (D(20), D(9))
    else:
        assert pathway.adsm_scores.empty
    assert (pathway.gad7.first, pathway.gad7.last) == (D(20), D(9))


def test_ltc_from_ids602_snomed_and_integrated_pathway(tmp_path: Path) -> None:
    """LTC = the IDS602 SNOMED (04) code; IAPTLTCServiceInd Y on a contact marks the pathway."""
    write_submission(
        tmp_path,
        referrals=[referral("R1"), referral("R2", lpid="P2")],
        contacts=[
            contact("C1", "2024-02-01", ltc="Y"),
            contact("C2", "2024-02-01", srid="R2", ltc="N"),
        ],
        ltcs=[ltc("E11", scheme="01"), ltc("44054006"), ltc("195967001", srid="R2")],
    )
    pathways, rejected = read(tmp_path)
    assert rejected == []
    assert (pathways["RXXR1"].ltc_snomed, pathways["RXXR1"].ltc_pathway) == ("44054006", True)
    assert (pathways["RXXR2"].ltc_snomed, pathways["RXXR2"].ltc_pathway) == ("195967001", False)
