"""The report's KPIs on hand-computed fixtures: NHS England's Key Metrics definitions (each
counted in its own event's month; every denominator as the KM SQL has it), a 0 numerator or
denominator, the referral loop from the ledger, and the publication rule's edges.

Every expected figure below is counted by hand from the fixture, in the comments beside it."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_iapt.ledger import LedgerEntry
from fhir_iapt.report._facts import PathwayFacts
from fhir_iapt.report._kpis import Counts, compute_counts, kpi_value, published_count
from fhir_iapt.report._model import Group, KpiValue
from fhir_iapt.report._pathways import ltc_pathway

D = date


def facts(
    pathway_id: str,
    received: date,
    first_treatment: date | None,
    discharge: date | None,
    *,
    finished: bool = True,
    case: bool | None = True,  # caseness at the first score; None: cannot be derived
    recovered: bool = False,
    improved: bool = False,
    deteriorated: bool = False,
    provider: str = "RXA",
    pathway: str = "diabetes",
    referral: tuple[str, str] | None = None,
    outcome_sent: bool = False,
) -> PathwayFacts:
    return PathwayFacts(
        pathway_id=pathway_id,
        provider=provider,
        pathway=pathway,
        received=received,
        first_treatment=first_treatment,
        discharge=discharge,
        finished=finished,
        not_case_at_start=case is False,
        recovered=recovered,
        reliable_improvement=improved,
        reliable_deterioration=deteriorated,
        descriptor="F41.1",
        anxiety_fallback=None,
        phq9_paired=True,
        end_code="46" if discharge else None,
        referral=referral,
        outcome_sent=outcome_sent,
    )


FIXTURE = [
    # id, received, first treatment (days after received), discharge
    facts("F1", D(2024, 3, 1), D(2024, 3, 21), D(2024, 5, 10), recovered=True, improved=True),
    facts("F2", D(2024, 3, 1), D(2024, 4, 12), D(2024, 5, 15), recovered=True, improved=True),
    facts("F3", D(2024, 3, 1), D(2024, 4, 13), D(2024, 5, 20), improved=True),  # 43 days
    facts("F4", D(2024, 1, 1), D(2024, 5, 6), D(2024, 5, 28), case=False),  # 126 days
    facts("F5", D(2024, 1, 1), D(2024, 5, 7), D(2024, 5, 29), deteriorated=True),  # 127 days
    facts("F6", D(2024, 3, 5), None, D(2024, 5, 30), case=None),  # caseness unknown
    facts("F7", D(2024, 3, 5), D(2024, 4, 1), D(2024, 5, 2), finished=False),  # treated once
    facts("F8", D(2024, 5, 3), D(2024, 5, 17), None, finished=False),  # open
    facts("F9", D(2024, 4, 2), D(2024, 5, 9), D(2024, 6, 11), recovered=True, improved=True),
]


def _exact() -> dict[tuple[str, str], KpiValue]:
    return {
        (v.kpi, v.group.month): v
        for v in (kpi_value(c, suppress=False) for c in compute_counts(FIXTURE))
    }


def test_counts_are_each_in_their_own_events_month() -> None:
    """Received by ReferralRequestReceivedDate (KM l.31), entered treatment by
    TherapySession_FirstDate (l.32), finished by ServDischDate with CompletedTreatment_Flag
    (l.34): each pathway lands in the month of the event counted."""
    got = _exact()
    expected = {
        # received: Jan F4 F5; Mar F1 F2 F3 F6 F7; Apr F9; May F8
        ("referrals-received", "2024-01"): 2,
        ("referrals-received", "2024-03"): 5,
        ("referrals-received", "2024-04"): 1,
        ("referrals-received", "2024-05"): 1,
        # entered: Mar F1; Apr F2 F3 F7; May F4 F5 F8 F9
        ("entered-treatment", "2024-03"): 1,
        ("entered-treatment", "2024-04"): 3,
        ("entered-treatment", "2024-05"): 4,
        # finished: May F1-F6 (F7 treated once, F8 open); Jun F9
        ("finished-treatment", "2024-05"): 6,
        ("finished-treatment", "2024-06"): 1,
    }
    for key, count in expected.items():
        assert got[key].numerator == count, key
        assert got[key].denominator is None
    # a month with no such event has a 0 count, not a missing one
    assert got[("finished-treatment", "2024-03")].numerator == 0


def test_recovery_rate_is_recovered_over_finished_minus_not_a_case() -> None:
    """May: 6 finished (F1-F6), F4 not a case at the start, F1 F2 recovered: 2 / (6 - 1).
    F6, whose caseness cannot be derived, is not NotCaseness_Flag = 'True' and so stays in
    the denominator (KM l.39-48)."""
    v = _exact()[("recovery-rate", "2024-05")]
    assert (v.numerator, v.denominator, v.rate, v.note) == (2, 5, 2 / 5, "")


def test_reliable_recovery_has_the_recovery_denominator() -> None:
    """Reliable improvement AND recovered (F1, F2) / (finished - not a case) (KM l.50-59)."""
    v = _exact()[("reliable-recovery-rate", "2024-05")]
    assert (v.numerator, v.denominator, v.rate) == (2, 5, 2 / 5)


def test_reliable_improvement_and_deterioration_are_over_all_finished() -> None:
    """No caseness exclusion (KM l.61-77): improved F1 F2 F3 of 6, deteriorated F5 of 6."""
    got = _exact()
    improved = got[("reliable-improvement-rate", "2024-05")]
    worse = got[("reliable-deterioration-rate", "2024-05")]
    assert (improved.numerator, improved.denominator, improved.rate) == (3, 6, 3 / 6)
    assert (worse.numerator, worse.denominator, worse.rate) == (1, 6, 1 / 6)


def test_waits_are_finished_pathways_treated_within_42_and_126_days() -> None:
    """KM l.101-127: of the 6 finished in May, F1 (20 days) and F2 (42) within 6 weeks; F3
    (43) and F4 (126) within 18 weeks too; F5 (127) in neither; F6 (no first treatment date:
    DATEDIFF is NULL) in neither, but in both denominators."""
    got = _exact()
    six = got[("first-treatment-6-weeks", "2024-05")]
    eighteen = got[("first-treatment-18-weeks", "2024-05")]
    assert (six.numerator, six.denominator, six.rate) == (2, 6, 2 / 6)
    assert (eighteen.numerator, eighteen.denominator, eighteen.rate) == (4, 6, 4 / 6)
    june = got[("first-treatment-6-weeks", "2024-06")]  # F9: 2 Apr -> 9 May, 37 days
    assert (june.numerator, june.denominator, june.rate) == (1, 1, 1.0)


def test_a_0_denominator_or_numerator_is_not_available_not_0_percent() -> None:
    """March has referrals but nobody finished: every outcome rate has denominator 0. June's
    one finished pathway did not deteriorate: numerator 0. Both are 'not available' with no
    rate (KM l.39-42 returns NULL for either)."""
    got = _exact()
    for kpi in ("recovery-rate", "reliable-improvement-rate", "first-treatment-6-weeks"):
        v = got[(kpi, "2024-03")]
        assert (v.denominator, v.rate, v.note) == (0, None, "not available"), kpi
    v = got[("reliable-deterioration-rate", "2024-06")]
    assert (v.numerator, v.denominator, v.rate, v.note) == (0, 1, None, "not available")


def test_groups_are_provider_pathway_and_month() -> None:
    """A pathway at another provider, or on another LTC pathway, is another group."""
    more = [
        *FIXTURE,
        facts("G1", D(2024, 5, 1), None, None, finished=False, provider="RXB"),
        facts("G2", D(2024, 5, 2), None, None, finished=False, pathway="cardiac"),
    ]
    received = {
        (c.group.provider, c.group.pathway, c.group.month): c.numerator
        for c in compute_counts(more)
        if c.kpi == "referrals-received"
    }
    assert received[("RXA", "diabetes", "2024-05")] == 1  # F8
    assert received[("RXB", "diabetes", "2024-05")] == 1
    assert received[("RXA", "cardiac", "2024-05")] == 1


SYSTEM = "https://example.org/Id/referral"


def _entry(
    identifier: str,
    authored: date,
    clinic: str | None,
    ltc: str,
    share: bool | None,
) -> LedgerEntry:
    return LedgerEntry(SYSTEM, identifier, "9000000009", authored, "RXA", ltc, share, clinic)


def test_the_referral_loop_is_per_sending_clinic_and_month_sent() -> None:
    """Three referrals from C1 in May 2024 (diabetes): E1 and E2 answered by a pathway, E1's
    outcome sent back (E2's patient said no), E3 not answered and with no consent answer;
    E4 (respiratory, June) recorded before the ledger knew the clinic."""
    sent = [
        _entry("E1", D(2024, 5, 2), "C1", "44054006", True),
        _entry("E2", D(2024, 5, 20), "C1", "46635009", False),
        _entry("E3", D(2024, 5, 25), "C1", "73211009", None),
        _entry("E4", D(2024, 6, 1), None, "13645005", True),
    ]
    answered = [
        facts("P1", D(2024, 5, 6), None, None, finished=False, referral=(SYSTEM, "E1"),
              outcome_sent=True),
        facts("P2", D(2024, 5, 22), None, None, finished=False, referral=(SYSTEM, "E2")),
    ]  # fmt: skip
    got = {
        (v.kpi, v.group.provider, v.group.pathway, v.group.month): v
        for v in (kpi_value(c, suppress=False) for c in compute_counts(answered, sent))
    }
    may = ("C1", "diabetes", "2024-05")
    assert got[("referrals-sent", *may)].numerator == 3
    matched = got[("loop-closure-matched", *may)]
    assert (matched.numerator, matched.denominator, matched.rate) == (2, 3, 2 / 3)
    outcomes = got[("loop-closure-outcomes", *may)]
    assert (outcomes.numerator, outcomes.denominator, outcomes.rate) == (1, 3, 1 / 3)
    consent = got[("consent-recorded", *may)]
    assert (consent.numerator, consent.denominator, consent.rate) == (2, 3, 2 / 3)
    june = ("unknown", "respiratory", "2024-06")
    assert got[("referrals-sent", *june)].numerator == 1
    assert got[("loop-closure-matched", *june)].note == "not available"  # 0 of 1
    assert got[("consent-recorded", *june)].rate == 1.0


def test_without_a_ledger_there_are_no_referral_loop_figures() -> None:
    """No ledger is not 'zero referrals sent': the referral-loop KPIs are absent."""
    kpis = {c.kpi for c in compute_counts(FIXTURE)}
    assert "referrals-sent" not in kpis
    assert "loop-closure-matched" not in kpis
    assert "recovery-rate" in kpis


@pytest.mark.parametrize(
    ("count", "published"),
    [(0, None), (1, None), (4, None), (5, 5), (6, 5), (7, 5), (8, 10), (12, 10), (13, 15)],
)
def test_publication_rule_for_a_count(count: int, published: int | None) -> None:
    """Under 5 suppressed, others to the nearest 5: 4 -> suppressed, 5 -> 5, 7 -> 5, 8 -> 10."""
    assert published_count(count) == published
    v = kpi_value(
        Counts("finished-treatment", Group("RXA", "diabetes", "2024-05"), count), suppress=True
    )
    assert v.numerator == published
    assert v.note == ("suppressed" if published is None else "")


G = Group("RXA", "diabetes", "2024-05")


@pytest.mark.parametrize(
    ("counts", "numerator", "denominator", "rate", "note"),
    [
        # 6 recovered of 8 - 0: counts published as 5 and 10, the rate from 6 / 8 (KMS l.272)
        (Counts("recovery-rate", G, 6, 8, 0), 5, 10, 6 / 8, ""),
        # 5 of 12 - 2: 5 -> 5, 10 -> 10, 5 / 10
        (Counts("recovery-rate", G, 5, 12, 2), 5, 10, 5 / 10, ""),
        # numerator 4: suppressed, and the rate with it
        (Counts("recovery-rate", G, 4, 20, 0), None, 20, None, "suppressed"),
        # numerator 4 and 9 - 5 = 4 in the denominator: both suppressed, no rate
        (Counts("reliable-recovery-rate", G, 4, 9, 5), None, None, None, "suppressed"),
        # a 0 numerator of 20 is under 5: published, it is suppressed (not told to be 0)
        (Counts("reliable-improvement-rate", G, 0, 20, 0), None, 20, None, "suppressed"),
        # nobody in the denominator: not available
        (Counts("recovery-rate", G, 0, 0, 0), None, None, None, "not available"),
        (Counts("recovery-rate", G, 0, 3, 3), None, None, None, "not available"),
    ],
)
def test_publication_rule_for_a_rate(
    counts: Counts, numerator: int | None, denominator: int | None, rate: float | None, note: str
) -> None:
    """A rate is shown only when its unrounded numerator and denominator are 5 or more, and
    is then computed from the unrounded counts; the counts are published rounded."""
    v = kpi_value(counts, suppress=True)
    assert (v.numerator, v.denominator, v.rate, v.note) == (numerator, denominator, rate, note)


def test_exact_figures_keep_small_counts() -> None:
    """--no-suppress: 4 of 7 is shown as 4 of 7, 4/7."""
    v = kpi_value(Counts("recovery-rate", G, 4, 9, 2), suppress=False)
    assert (v.numerator, v.denominator, v.rate, v.note) == (4, 7, 4 / 7, "")


@pytest.mark.parametrize(
    ("snomed", "pathway"),
    [
        ("44054006", "diabetes"),  # type 2 diabetes (DOMAIN.md)
        ("46635009", "diabetes"),
        ("13645005", "respiratory"),  # COPD
        ("195967001", "respiratory"),  # asthma
        ("84114007", "cardiac"),  # heart failure
        ("22298006", "cardiac"),  # MI
        ("35489007", "other"),  # depression: not a long-term physical condition here
        (None, "other"),
    ],
)
def test_ltc_codes_fall_in_their_pathway(snomed: str | None, pathway: str) -> None:
    """The pathway table (mappings/tables/ltc-pathways.yaml) puts each LTC in its pathway."""
    assert ltc_pathway(snomed) == pathway
