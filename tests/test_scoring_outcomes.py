"""Episode outcome rules (DOMAIN.md "Episode outcomes") as a rule table, edges included."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from fhir_iapt._data import load_table
from fhir_iapt.scoring.episode import EpisodeRecord, ScorePair
from fhir_iapt.scoring.measures import outcome_rules, rules_from_table
from fhir_iapt.scoring.recovery import FLAG_NAMES, derive_outcome

Pair = tuple[float | None, float | None]
#: A discharge date: the referral has ended (an open pathway has none).
DISCHARGED = date(2024, 6, 1)


def _pair(p: Pair) -> ScorePair:
    return ScorePair(*(None if v is None else Decimal(str(v)) for v in p))


def episode(
    phq: Pair = (None, None),
    gad: Pair = (None, None),
    adsm: str | None = None,
    adsm_scores: Pair = (None, None),
    contacts: int | None = 4,
    pd: str | None = "F41.1",
    discharge: date | None = DISCHARGED,
) -> EpisodeRecord:
    """A synthetic episode with only the fields the rules read (discharged unless told)."""
    return EpisodeRecord(
        source_system="urn:test",
        pathway_id="P1",
        referral_identifier_system="urn:ref",
        referral_identifier="R1",
        nhs_number="9000000009",
        service_ods="ABC",
        consent="Y",
        problem_descriptor=pd,
        treatment_contacts=contacts,
        discharge=discharge,
        phq9=_pair(phq),
        gad7=_pair(gad),
        adsm=adsm,
        adsm_scores=_pair(adsm_scores),
    )


# Expected flags, in FLAG_NAMES order: caseness-at-start, finished-treatment, recovery,
# reliable-improvement, reliable-deterioration, reliable-recovery. None = cannot be derived.
CASES: list[tuple[str, EpisodeRecord, tuple[bool | None, ...]]] = [
    (
        "PHQ-9 exactly at caseness (10)",
        episode((10, 10), (0, 0)),
        (True, True, False, False, False, False),
    ),
    (
        "PHQ-9 one below caseness (9), GAD-7 one below (7): recovery not applicable",
        episode((9, 9), (7, 7)),
        (False, True, None, False, False, None),
    ),
    (
        "GAD-7 exactly at caseness (8) alone makes a case",
        episode((0, 0), (8, 8)),
        (True, True, False, False, False, False),
    ),
    (
        "recovery: case at start, PHQ-9 9 / GAD-7 7 at the end",
        episode((10, 9), (8, 7)),
        (True, True, True, False, False, False),
    ),
    (
        "PHQ-9 fall exactly at the index (6) is reliable improvement and recovery",
        episode((15, 9), (5, 5)),
        (True, True, True, True, False, True),
    ),
    (
        "PHQ-9 fall one below the index (5) is not reliable",
        episode((15, 10), (5, 5)),
        (True, True, False, False, False, False),
    ),
    (
        "GAD-7 fall exactly at the index (4) is reliable improvement",
        episode((5, 5), (12, 8)),
        (True, True, False, True, False, False),
    ),
    (
        "PHQ-9 rise exactly at the index (6) is reliable deterioration",
        episode((5, 11), (3, 3)),
        (False, True, None, False, True, None),
    ),
    (
        "GAD-7 rise of 3 (one below the index) is not deterioration",
        episode((5, 5), (3, 6)),
        (False, True, None, False, False, None),
    ),
    (
        "improvement on PHQ-9 with deterioration on GAD-7 is neither (U rule)",
        episode((15, 9), (4, 8)),
        (True, True, False, False, False, False),
    ),
    (
        "one treatment contact: not finished, later flags not applicable",
        episode((15, 4), (12, 2), contacts=1),
        (True, False, None, None, None, None),
    ),
    (
        "exactly two contacts finishes treatment",
        episode((15, 4), (12, 2), contacts=2),
        (True, True, True, True, False, True),
    ),
    (
        "contact count not recorded: finished and later flags unknown",
        episode((15, 4), (12, 2), contacts=None),
        (True, None, None, None, None, None),
    ),
    (
        "missing last scores: recovery and reliable change unknown",
        episode((15, None), (10, None)),
        (True, True, None, None, None, None),
    ),
    (
        "missing PHQ-9 last, GAD-7 reliably better: recovery unknown, no deterioration (U rule)",
        episode((15, None), (10, 2)),
        (True, True, None, None, False, None),
    ),
    (
        "no first scores: caseness unknown, recovery unknown",
        episode((None, 4), (None, 2)),
        (None, True, None, None, None, None),
    ),
    (
        "PHQ-9 15 at start is a case with no anxiety score; its fall rules out deterioration",
        episode((15, 3), (None, None)),
        (True, True, None, None, False, None),
    ),
    (
        "not a case at start: recovery and reliable recovery not applicable, not false",
        episode((5, 4), (3, None)),
        (False, True, None, None, None, None),
    ),
    (
        "ADSM present and fits (SPIN for F40.1): SPIN decides",
        episode((5, 5), (5, 5), "SPIN", (30, 15), pd="F40.1"),
        (True, True, True, True, False, True),
    ),
    (
        "ADSM absent for F40.1: GAD-7 fallback",
        episode((5, 5), (5, 5), pd="F40.1"),
        (False, True, None, False, False, None),
    ),
    (
        "ADSM unpaired (no last SPIN): GAD-7 fallback",
        episode((5, 5), (5, 5), "SPIN", (30, None), pd="F40.1"),
        (False, True, None, False, False, None),
    ),
    (
        "SPIN exactly at its cut-off (19) at the end is still a case",
        episode((5, 5), (5, 5), "SPIN", (29, 19), pd="F40.1"),
        (True, True, False, True, False, False),
    ),
    (
        "Mobility Inventory decimals: fall exactly 0.73, last exactly at 2.3",
        episode((5, 5), (5, 5), "MI", (3.03, 2.30), pd="F40.0"),
        (True, True, False, True, False, False),
    ),
    (
        "Mobility Inventory fall 0.72 is not reliable",
        episode((5, 5), (5, 5), "MI", (3.02, 2.30), pd="F40.0"),
        (True, True, False, False, False, False),
    ),
    (
        "IES-R also fits PTSD (F43.1)",
        episode((5, 5), (5, 5), "IESR", (40, 20), pd="F43.1"),
        (True, True, True, True, False, True),
    ),
    (
        "OCI-R fits F42.2 by prefix",
        episode((5, 5), (5, 5), "OCI", (30, 17), pd="F42.2"),
        (True, True, False, True, False, False),
    ),
    (
        "ADSM that does not fit the descriptor is ignored (SPIN for GAD)",
        episode((5, 5), (5, 5), "SPIN", (30, 10), pd="F41.1"),
        (False, True, None, False, False, None),
    ),
]


@pytest.mark.parametrize(("label", "ep", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule_table(label: str, ep: EpisodeRecord, expected: tuple[bool | None, ...]) -> None:
    """Each flag matches the hand-worked NHS Talking Therapies definition for the case."""
    outcome = derive_outcome(ep)
    assert tuple(outcome.value(name) for name in FLAG_NAMES) == expected, label


@pytest.mark.parametrize(
    ("ep", "measure", "fallback"),
    [
        (episode(pd="F40.1", adsm="SPIN", adsm_scores=(30, 10)), "SPIN", None),
        (episode(pd="F40.1"), "GAD-7", "adsm-not-recorded"),
        (episode(pd="F40.1", adsm="SPIN", adsm_scores=(None, 10)), "GAD-7", "adsm-unpaired"),
        (
            episode(pd="F40.1", adsm="PCL5", adsm_scores=(40, 10)),
            "GAD-7",
            "adsm-does-not-fit-descriptor",
        ),
        (episode(pd="F43.1", adsm="PCL5", adsm_scores=(40, 10)), "PCL5", None),
        (episode(pd="F45.2", adsm="HAI", adsm_scores=(20, 10)), "HAI", None),
        (episode(pd="F41.0", adsm="PDSS", adsm_scores=(9, 2)), "PDSS", None),
        (episode(pd="F32.1"), "GAD-7", None),
        (episode(pd="F41.2"), "GAD-7", None),
        (episode(pd="F40.2"), "GAD-7", None),
        (episode(pd=None, adsm="SPIN", adsm_scores=(30, 10)), "GAD-7", None),
    ],
)
def test_anxiety_measure_choice(ep: EpisodeRecord, measure: str, fallback: str | None) -> None:
    """The ADSM fitting the descriptor is used when paired; otherwise GAD-7, with the reason."""
    outcome = derive_outcome(ep)
    assert (outcome.anxiety_measure, outcome.anxiety_fallback) == (measure, fallback)
    assert outcome.measures_used == ("PHQ-9", measure)


def test_absent_flags_say_why() -> None:
    """A flag that cannot be derived carries a data-absent reason and names the missing input."""
    one_contact = derive_outcome(episode((15, 4), (12, 2), contacts=1)).flags["recovery"]
    assert (one_contact.absent, one_contact.reason) == (
        "not-applicable",
        "episode did not finish a course of treatment",
    )
    missing = derive_outcome(episode((15, None), (10, None))).flags["recovery"]
    assert missing.absent == "unknown"
    assert missing.reasons == ("PHQ-9 last score not recorded", "GAD-7 last score not recorded")
    contacts = derive_outcome(episode((15, 4), (12, 2), contacts=None)).flags["finished-treatment"]
    assert contacts.reason == "treatment contact count not recorded"
    known = derive_outcome(episode((15, 4), (12, 2))).flags["recovery"]
    assert (known.value, known.absent, known.reasons) == (True, None, ())


def _table_with(**rules: Any) -> dict[str, Any]:
    table = dict(load_table("measures"))
    table["rules"] = {**table["rules"], **rules}
    return table


def test_opposite_rule_switch_off() -> None:
    """With the UNVERIFIED "not the other" rule off, either measure alone decides."""
    rules = rules_from_table(_table_with(reliable_change_excludes_opposite_on_other=False))
    outcome = derive_outcome(episode((15, 9), (4, 8)), rules)
    assert outcome.value("reliable-improvement") is True
    assert outcome.value("reliable-deterioration") is True


def test_finished_treatment_switch_off() -> None:
    """With the UNVERIFIED finished-treatment gate off, one contact still gets recovery flags."""
    rules = rules_from_table(_table_with(outcome_flags_require_finished_treatment=False))
    outcome = derive_outcome(episode((15, 4), (12, 2), contacts=1), rules)
    assert outcome.value("finished-treatment") is False
    assert outcome.value("recovery") is True
    assert outcome.value("reliable-recovery") is True


def test_thresholds_come_from_the_table() -> None:
    """Changing the PHQ-9 cut-off in the table changes caseness: nothing is hard-coded."""
    table = dict(load_table("measures"))
    measures = dict(table["measures"])
    measures["PHQ-9"] = {**measures["PHQ-9"], "caseness_at": 12}
    table["measures"] = measures
    ep = episode((10, 10), (0, 0))
    assert derive_outcome(ep).value("caseness-at-start") is True
    assert derive_outcome(ep, rules_from_table(table)).value("caseness-at-start") is False
    assert outcome_rules().measure("PHQ-9").caseness_at == 10


def test_replace_keeps_record_frozen() -> None:
    """Episode records are immutable values (derive_outcome cannot change its input)."""
    ep = episode((15, 4), (12, 2))
    with pytest.raises(AttributeError):
        ep.treatment_contacts = 1  # type: ignore[misc]
    assert replace(ep, treatment_contacts=1).treatment_contacts == 1


# Finished a course of treatment = the referral has ended (a discharge date) AND >= 2 attended
# treatment contacts (DOMAIN.md, V: NHS England's SQL "ServDischDate IS NOT NULL AND
# TreatmentCareContact_Count >= 2"). (discharge, contacts) -> (finished value, data-absent code).
FINISHED_CASES = [
    ("discharged, 2 contacts", DISCHARGED, 2, True, None),
    ("discharged, 8 contacts", DISCHARGED, 8, True, None),
    ("discharged, 1 contact", DISCHARGED, 1, False, None),
    ("discharged, 0 contacts", DISCHARGED, 0, False, None),
    ("discharged, contacts not recorded", DISCHARGED, None, None, "unknown"),
    ("open pathway, 8 contacts", None, 8, False, None),
    ("open pathway, 2 contacts", None, 2, False, None),
    ("open pathway, 1 contact", None, 1, False, None),
    ("open pathway, contacts not recorded", None, None, False, None),
]


@pytest.mark.parametrize(
    ("label", "discharge", "contacts", "value", "absent"),
    FINISHED_CASES,
    ids=[c[0] for c in FINISHED_CASES],
)
def test_finished_treatment_needs_a_discharge_date_and_two_contacts(
    label: str, discharge: date | None, contacts: int | None, value: bool | None, absent: str | None
) -> None:
    """An open pathway (no discharge date) has not finished treatment, however many contacts."""
    flag = derive_outcome(episode((15, 4), (12, 2), contacts=contacts, discharge=discharge)).flags[
        "finished-treatment"
    ]
    assert (flag.value, flag.absent) == (value, absent), label


def test_open_pathway_recovery_flags_are_not_applicable() -> None:
    """An open pathway with many contacts gets no recovery or reliable change flags yet."""
    outcome = derive_outcome(episode((15, 4), (12, 2), contacts=8, discharge=None))
    for name in ("recovery", "reliable-improvement", "reliable-deterioration", "reliable-recovery"):
        assert (outcome.flags[name].value, outcome.flags[name].absent) == (None, "not-applicable")


# Recovery and reliable recovery for a patient who was NOT a case at the start are not
# applicable (DOMAIN.md, V: the recovery rate's denominator is finished treatment minus those not
# a case at the start; reliable recovery = recovery and reliable improvement, V, so it is not
# applicable where recovery is not). Reliable improvement / deterioration still apply.
# (phq, gad) -> (recovery, reliable-improvement, reliable-recovery) as value or absent code.
NOT_A_CASE_CASES: list[tuple[str, Pair, Pair, tuple[bool | str, bool | str, bool | str]]] = [
    ("PHQ-9 9 and GAD-7 7 throughout", (9, 9), (7, 7), ("not-applicable", False, "not-applicable")),
    (
        "both fall reliably from below caseness",
        (9, 2),
        (7, 2),
        ("not-applicable", True, "not-applicable"),
    ),
    ("becomes a case at the end", (5, 11), (3, 3), ("not-applicable", False, "not-applicable")),
    ("last scores missing", (5, None), (3, None), ("not-applicable", "unknown", "not-applicable")),
    (
        "first scores missing: caseness unknown",
        (None, 4),
        (None, 2),
        ("unknown", "unknown", "unknown"),
    ),
    # GAD-7 rises by 4 (its index): whatever the first PHQ-9, no reliable improvement
    ("first PHQ-9 missing, case at the end", (None, 12), (5, 9), ("unknown", False, "unknown")),
    ("a case at the start and recovered", (10, 9), (8, 7), (True, False, False)),
]


def _value_or_absent(outcome: Any, name: Any) -> bool | str:
    flag = outcome.flags[name]
    return flag.value if flag.value is not None else flag.absent


@pytest.mark.parametrize(
    ("label", "phq", "gad", "expected"), NOT_A_CASE_CASES, ids=[c[0] for c in NOT_A_CASE_CASES]
)
def test_recovery_is_not_applicable_when_not_a_case_at_start(
    label: str, phq: Pair, gad: Pair, expected: tuple[bool | str, bool | str, bool | str]
) -> None:
    """Recovery and reliable recovery are not-applicable, not false, for a non-case at start."""
    outcome = derive_outcome(episode(phq, gad))
    got = tuple(
        _value_or_absent(outcome, n)
        for n in ("recovery", "reliable-improvement", "reliable-recovery")
    )
    assert got == expected, label


def test_not_a_case_reason_is_stated() -> None:
    """The not-applicable recovery flag says why (no score in the text)."""
    flag = derive_outcome(episode((9, 9), (7, 7))).flags["recovery"]
    assert flag.reasons == ("not a case at the first score (outside the recovery measure)",)
