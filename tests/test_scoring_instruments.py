"""Instrument scoring: totals, PHQ-9 bands, PHQ-2/GAD-2 screens and bad answers (DOMAIN.md)."""

from __future__ import annotations

import pytest
from validate_helpers import PHQ9_ITEMS

from fhir_iapt.errors import Location, ScoringError
from fhir_iapt.scoring.instruments import instrument_spec, score_instrument
from fhir_iapt.scoring.responses import read_questionnaire_response

LOINC = "http://loinc.org"


def _phq9(total: int) -> list[int | None]:
    """Nine answers (0-3) adding up to ``total``."""
    answers: list[int | None] = []
    left = total
    for _ in range(9):
        answers.append(min(3, left))
        left -= min(3, left)
    return answers


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately severe"),
        (19, "moderately severe"),
        (20, "severe"),
        (27, "severe"),
    ],
)
def test_phq9_band_edges(total: int, band: str) -> None:
    """PHQ-9 bands are 0-4/5-9/10-14/15-19/20-27, inclusive at both edges."""
    result = score_instrument("PHQ-9", _phq9(total))
    assert (result.total, result.band, result.positive) == (total, band, None)


@pytest.mark.parametrize(
    ("instrument", "answers", "positive"),
    [
        ("PHQ-2", [1, 1], False),
        ("PHQ-2", [1, 2], True),
        ("PHQ-2", [0, 0], False),
        ("PHQ-2", [3, 3], True),
        ("GAD-2", [2, 0], False),
        ("GAD-2", [0, 3], True),
    ],
)
def test_two_item_screens_positive_at_three(
    instrument: str, answers: list[int | None], positive: bool
) -> None:
    """PHQ-2 and GAD-2 are positive at a total of 3 or more, negative at 2."""
    result = score_instrument(instrument, answers)
    assert result.positive is positive
    assert result.total == sum(a for a in answers if a is not None)


def test_phq9_tenth_item_is_not_counted() -> None:
    """PHQ-9 item 10 (difficulty) is accepted but never added to the total."""
    assert score_instrument("PHQ-9", [*_phq9(12), 3]).total == 12
    assert score_instrument("PHQ-9", [*_phq9(12), None]).total == 12


def test_gad7_total_and_slug_lookup() -> None:
    """GAD-7 sums its seven items; the slug names the same instrument."""
    result = score_instrument("gad-7", [3, 3, 3, 3, 3, 3, 3])
    assert (result.instrument, result.total, result.band) == ("GAD-7", 21, None)


@pytest.mark.parametrize(
    ("instrument", "answers", "fields"),
    [
        ("PHQ-9", [0, 0, 0, 4, 0, 0, 0, 0, 0], ["PHQ-9 item 4"]),
        ("PHQ-9", [0, 0, 0, 0, 0, 0, 0, 0, -1], ["PHQ-9 item 9"]),
        ("PHQ-9", [0, 0, 0, 0, 0, 0, 0, 0, 0, 4], ["PHQ-9 item 10"]),
        ("GAD-7", [None, 0, 0, 0, 0, 0, None], ["GAD-7 item 1", "GAD-7 item 7"]),
        ("PHQ-2", [True, 1], ["PHQ-2 item 1"]),
        ("GAD-2", ["2", 1], ["GAD-2 item 1"]),
    ],
)
def test_bad_items_name_every_item(
    instrument: str, answers: list[object], fields: list[str]
) -> None:
    """Out-of-range, missing and non-integer items are each reported by item, without values."""
    with pytest.raises(ScoringError) as info:
        score_instrument(instrument, answers, location=Location(file="x.csv", row=2))  # type: ignore[arg-type]
    assert [i.location.field for i in info.value.issues if i.location] == fields
    assert all(i.location and i.location.row == 2 for i in info.value.issues)


def test_wrong_item_count_and_unknown_instrument() -> None:
    """A wrong number of answers or an unknown instrument is a ScoringError, not a crash."""
    with pytest.raises(ScoringError, match="needs 9 or 10"):
        score_instrument("PHQ-9", [0] * 8)
    with pytest.raises(ScoringError, match="unknown instrument"):
        score_instrument("BDI", [0])


def test_item_locations_override_field_names() -> None:
    """Callers can say where each item came from (a CSV column, a FHIRPath)."""
    locs = [Location(element=f"item[{i}]") for i in range(2)]
    with pytest.raises(ScoringError) as info:
        score_instrument("PHQ-2", [0, 9], item_locations=locs)
    assert info.value.issues[0].location == locs[1]


def test_answer_codes_score_from_table() -> None:
    """LA answer codes score 0-3, LA18938-3 is accepted as 2, unknown codes score None."""
    spec = instrument_spec("GAD-7")
    assert [spec.answer_score(1, c) for c in ("LA6568-5", "LA6571-9", "LA18938-3")] == [0, 3, 2]
    assert spec.answer_score(1, "LA9999-9") is None
    phq9 = instrument_spec("PHQ-9")
    assert phq9.answer_score(9, "LA6575-0") == 2
    assert phq9.answer_score(9, "LA18938-3") is None


# PHQ-9 item 10 (69722-7) answers per LOINC, as DOMAIN.md records them (V: the LHC-Forms PHQ-9
# Questionnaire, shared/questionnaires/lforms-phq9.json): code -> (display, order 0-3).
PHQ9_DIFFICULTY = {
    "LA6572-7": ("Not difficult at all", 0),
    "LA6573-5": ("Somewhat difficult", 1),
    "LA6575-0": ("Very difficult", 2),
    "LA6574-3": ("Extremely difficult", 3),
}


@pytest.mark.parametrize(("code", "display_and_order"), sorted(PHQ9_DIFFICULTY.items()))
def test_phq9_item10_answer_codes_follow_loinc(
    code: str, display_and_order: tuple[str, int]
) -> None:
    """Each PHQ-9 item 10 answer code has its LOINC display and its place in the answer order."""
    display, order = display_and_order
    [item10] = instrument_spec("PHQ-9").unscored_items
    assert item10.code == "69722-7"
    by_code = {a.code: (a.display, a.score) for a in item10.answers}
    assert by_code[code] == (display, order)


@pytest.mark.parametrize(("code", "display_and_order"), sorted(PHQ9_DIFFICULTY.items()))
def test_phq9_item10_answer_code_reads_by_its_loinc_meaning(
    code: str, display_and_order: tuple[str, int]
) -> None:
    """A QuestionnaireResponse's item 10 code is read by what LOINC says it means, whatever the
    display sent with it (an answer made from our old, swapped table keeps its code's meaning)."""
    _display, order = display_and_order
    items = [
        {"linkId": link, "answer": [{"valueCoding": {"system": LOINC, "code": "LA6568-5"}}]}
        for link in PHQ9_ITEMS
    ]
    items.append(
        {
            "linkId": "69722-7",
            "answer": [
                {"valueCoding": {"system": LOINC, "code": code, "display": "Extremely difficult"}}
            ],
        }
    )
    qr = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://fhir-iapt.github.io/fhir/Questionnaire/phq-9",
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "item": items,
    }
    scored = read_questionnaire_response(qr)
    assert scored.score.answers[9] == order
    assert scored.score.total == 0
