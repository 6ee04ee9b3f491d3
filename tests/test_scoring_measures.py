"""The measures table holds DOMAIN.md's thresholds, marks unverified ones, and checks scores."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fhir_iapt.errors import Location, MappingError, ScoringError
from fhir_iapt.scoring.episode import parse_score
from fhir_iapt.scoring.measures import IAPT_MEASURE_SYSTEM, outcome_rules, rules_from_table

# (measure, caseness cut-off, reliable change index) from DOMAIN.md "Episode outcomes".
DOMAIN_THRESHOLDS = [
    ("PHQ-9", "10", "6"),
    ("GAD-7", "8", "4"),
    ("SPIN", "19", "10"),
    ("PCL5", "32", "10"),
    ("IESR", "33", "9"),
    ("MI", "2.3", "0.73"),
    ("OCI", "17", "13"),
    ("PDSS", "8", "5"),
    ("HAI", "18", "4"),
]


@pytest.mark.parametrize(("measure", "cut", "rci"), DOMAIN_THRESHOLDS)
def test_thresholds_match_domain(measure: str, cut: str, rci: str) -> None:
    """Each measure's cut-off and reliable change index are DOMAIN.md's numbers."""
    spec = outcome_rules().measure(measure)
    assert (spec.caseness_at, spec.reliable_change) == (Decimal(cut), Decimal(rci))


def test_unverified_values_are_marked() -> None:
    """ADSM cut-offs/indices, WSAS codes and the U rules are marked U; PHQ-9/GAD-7 are V."""
    rules = outcome_rules()
    for name in rules.adsm_names:
        assert {"caseness", "reliable_change", "codes"} <= set(rules.measure(name).unverified)
    assert rules.measure("WSAS").unverified == ("codes",)
    assert rules.measure("PHQ-9").unverified == ()
    assert rules.measure("GAD-7").unverified == ()
    assert rules.status["reliable_change_excludes_opposite_on_other_status"] == "U"
    assert rules.status["finished_treatment_status"] == "V"
    assert rules.finished_treatment_min_contacts == 2


def test_codes() -> None:
    """PHQ-9/GAD-7 carry LOINC and SNOMED totals; WSAS and ADSMs use our own CodeSystem."""
    rules = outcome_rules()
    assert [c.code for c in rules.measure("PHQ-9").codes] == ["44261-6", "720433000"]
    assert [c.code for c in rules.measure("GAD-7").codes] == ["70274-6", "445455005"]
    for name in ("WSAS", *rules.adsm_names):
        assert [c.system for c in rules.measure(name).codes] == [IAPT_MEASURE_SYSTEM]


@pytest.mark.parametrize(
    ("descriptor", "measures"),
    [
        ("F40.1", ("SPIN",)),
        ("F43.1", ("PCL5", "IESR")),
        ("F40.0", ("MI",)),
        ("F42", ("OCI",)),
        ("F42.9", ("OCI",)),
        ("f41.0", ("PDSS",)),
        ("F45.2", ("HAI",)),
        ("F41.1", ()),
        ("F41.2", ()),
        ("F32", ()),
        ("F33.1", ()),
        ("F40.2", ()),
        ("", ()),
        (None, ()),
    ],
)
def test_descriptor_to_measure(descriptor: str | None, measures: tuple[str, ...]) -> None:
    """Problem descriptors map to DOMAIN.md's anxiety measures; others get none (GAD-7)."""
    assert outcome_rules().anxiety_measures_for(descriptor) == measures


@pytest.mark.parametrize(
    ("measure", "raw", "expected"),
    [
        ("PHQ-9", "0", "0"),
        ("PHQ-9", "27", "27"),
        ("PHQ-9", " 12 ", "12"),
        ("PHQ-9", "12.0", "12"),
        ("GAD-7", 21, "21"),
        ("WSAS", "40", "40"),
        ("MI", "2.3", "2.30"),
        ("MI", "1", "1.00"),
        ("PHQ-9", "", None),
        ("PHQ-9", None, None),
    ],
)
def test_parse_score_accepts(measure: str, raw: str | int | None, expected: str | None) -> None:
    """In-range numbers (and blanks) are accepted and normalised."""
    value = parse_score(measure, raw)
    assert value == (None if expected is None else Decimal(expected))


@pytest.mark.parametrize(
    ("measure", "raw", "error_code"),
    [
        ("PHQ-9", "28", "FI355"),
        ("PHQ-9", "-1", "FI355"),
        ("GAD-7", "22", "FI355"),
        ("WSAS", "41", "FI355"),
        ("MI", "0.9", "FI355"),
        ("PHQ-9", "ten", "FI354"),
        ("PHQ-9", "1.5", "FI354"),
        ("MI", "2.305", "FI354"),
        ("PHQ-9", "NaN", "FI354"),
        ("PHQ-9", "inf", "FI354"),
        ("BDI", "3", "FI356"),
    ],
)
def test_parse_score_rejects(measure: str, raw: str, error_code: str) -> None:
    """Bad scores raise ScoringError at the given location, without the value in the message."""
    loc = Location(file="e.csv", row=3, field="phq9_last")
    with pytest.raises(ScoringError) as info:
        parse_score(measure, raw, location=loc)
    assert info.value.error_code == error_code
    assert info.value.location == loc
    assert raw not in info.value.message.split()


def test_broken_table_is_a_mapping_error() -> None:
    """A measures table missing a named measure is refused when loaded."""
    with pytest.raises(MappingError):
        rules_from_table({"measures": {}, "rules": {}, "problem_descriptors": {}})
    with pytest.raises(MappingError, match="does not define"):
        rules_from_table(
            {
                "measures": {},
                "problem_descriptors": {"F40.1": ["SPIN"]},
                "default_anxiety_measure": "GAD-7",
                "depression_measure": "PHQ-9",
                "rules": {
                    "finished_treatment_min_contacts": 2,
                    "reliable_change_excludes_opposite_on_other": True,
                    "outcome_flags_require_finished_treatment": True,
                },
            }
        )
