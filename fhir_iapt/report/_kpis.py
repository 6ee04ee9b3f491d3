"""The KPIs: NHS England's Key Metrics per Talking Therapies provider x LTC pathway x month,
and the referral loop per sending clinic x LTC pathway x month, with the publication rule.

**Definitions** (:data:`DEFINITIONS`) are NHS England's own, from its Key Metrics dashboard SQL
(nhsengland/Talking-Therapies @8458b2eb99, ``Key Metrics Dashboard/KM monthly update.sql``,
"KM l.n" below; tt-dataset.md §5). Each is counted in the month of its own event, as the SQL
counts it with ``... BETWEEN ReportingPeriodStartDate AND ReportingPeriodEndDate``:

- referrals received: ReferralRequestReceivedDate in the month (KM l.31, ``Count_Referrals``);
- entered treatment: TherapySession_FirstDate in the month (KM l.32, ``Count_Access``);
- finished treatment: CompletedTreatment_Flag and ServDischDate in the month (KM l.34), i.e.
  the month the referral ended; every outcome rate and both waits count these pathways:
- recovery rate = recovered / (finished - not a case at the start) (KM l.39-48), standard 50%;
- reliable improvement / finished, reliable deterioration / finished (KM l.61-77);
- reliable recovery = reliable improvement and recovered / (finished - not a case) (KM l.50-59);
- first treatment within 6 / 18 weeks: finished pathways whose ReferralRequestReceivedDate ->
  TherapySession_FirstDate is <= 42 / <= 126 days, / finished (KM l.101-127); standards 75% /
  95% (DOMAIN.md).

The referral loop is the adapter's, from the referral ledger, per sending clinic (the
ServiceRequest's requester) and the month the referral was authored: referrals sent; matched to
a Talking Therapies pathway (the data set: NHS number, provider, received 0-90 days after; an
export: its referral identifier); outcomes sent back (matched, and the patient said yes to
sharing outcomes); consent recorded (the referral carried the patient's choice, yes or no).

**A rate whose numerator or denominator is 0 is not available** (not 0%): KM l.39-42 returns
NULL for either.

**The publication rule** (``suppress=True``, the default) is NHS England's, from the same
dashboard's published version (``Key Metrics Dashboard/KM monthly update - Suppressed.sql``,
"KMS l.n"): a count under 5 is suppressed and every other is rounded to the nearest 5
(``CASE WHEN COUNT(...) < 5 THEN NULL ELSE ROUND(COUNT(...)/5.0, 0)*5``, KMS l.216-221); a rate
is not shown when its unrounded numerator or unrounded denominator is under 5, and is otherwise
computed **from the unrounded counts** (KMS l.265-275: ``WHEN (finished - notcaseness) < 5 THEN
NULL WHEN recovered < 5 THEN NULL ELSE CAST(recovered AS float) / (finished - notcaseness)``).
So a published rate may differ from the ratio of the published, rounded counts. A 0 numerator
is under 5: published, such a rate reads "suppressed" (saying it is 0 would tell that nobody in
the group recovered); only a 0 denominator, a group with nobody in it, reads "not available".
``suppress=False`` gives the exact figures, for the service's own use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from fhir_iapt.ledger import LedgerEntry
from fhir_iapt.report._facts import PathwayFacts
from fhir_iapt.report._model import PATHWAYS, Group, KpiDefinition, KpiValue
from fhir_iapt.report._pathways import ltc_pathway

#: A count under this is suppressed when published (KMS l.217).
SUPPRESS_UNDER = 5
#: Published counts are rounded to the nearest multiple of this (KMS l.220).
ROUND_TO = 5
#: The sending clinic when the ledger does not know it (recorded before schema 2).
UNKNOWN_CLINIC = "unknown"
#: The waiting standards, in days from referral to first treatment (KM l.101-105).
WAIT_6_WEEKS = 42
WAIT_18_WEEKS = 126

NOT_AVAILABLE = "not available"
SUPPRESSED = "suppressed"

_KM = "NHS England Key Metrics (nhsengland/Talking-Therapies @8458b2eb99, KM monthly update.sql)"
_LEDGER = "fhir-iapt referral ledger (fhir_iapt.ledger)"

DEFINITIONS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        "referrals-sent",
        "Referrals sent",
        "count",
        None,
        "referrals the clinic sent: ledger entries by the ServiceRequest's requester and the "
        "month of its authoredOn",
        "",
        "",
        _LEDGER,
    ),
    KpiDefinition(
        "referrals-received",
        "Referrals received",
        "count",
        None,
        "pathways whose ReferralRequestReceivedDate is in the month",
        "",
        "",
        f"{_KM} l.31 Count_Referrals",
    ),
    KpiDefinition(
        "entered-treatment",
        "Entered treatment",
        "count",
        None,
        "pathways whose TherapySession_FirstDate (first attended treatment contact) is in the "
        "month",
        "",
        "",
        f"{_KM} l.32 Count_Access",
    ),
    KpiDefinition(
        "finished-treatment",
        "Finished treatment",
        "count",
        None,
        "pathways that finished a course of treatment (CompletedTreatment_Flag: discharged "
        "after at least 2 attended treatment contacts) with ServDischDate in the month",
        "",
        "",
        f"{_KM} l.34 Count_FinishedCourseTreatment",
    ),
    KpiDefinition(
        "recovery-rate",
        "Recovery rate",
        "rate",
        0.5,
        "finished treatment and recovered (Recovery_Flag: a case at the first score, not at "
        "the last)",
        "pathways that finished treatment with ServDischDate in the month",
        "finished treatment but not a case at the first score (NotCaseness_Flag)",
        f"{_KM} l.39-48 Percentage_Recovery; standard 50% (DOMAIN.md)",
    ),
    KpiDefinition(
        "reliable-improvement-rate",
        "Reliable improvement",
        "rate",
        None,
        "finished treatment and reliably improved (ReliableImprovement_Flag)",
        "pathways that finished treatment with ServDischDate in the month",
        "",
        f"{_KM} l.70-77 Percentage_ReliableImprovement",
    ),
    KpiDefinition(
        "reliable-deterioration-rate",
        "Reliable deterioration",
        "rate",
        None,
        "finished treatment and reliably deteriorated (ReliableDeterioration_Flag)",
        "pathways that finished treatment with ServDischDate in the month",
        "",
        f"{_KM} l.61-68 Percentage_ReliableDeterioration",
    ),
    KpiDefinition(
        "reliable-recovery-rate",
        "Reliable recovery",
        "rate",
        None,
        "finished treatment, reliably improved and recovered (ReliableImprovement_Flag and "
        "Recovery_Flag)",
        "pathways that finished treatment with ServDischDate in the month",
        "finished treatment but not a case at the first score (NotCaseness_Flag)",
        f"{_KM} l.50-59 Percentage_ReliableRecovery",
    ),
    KpiDefinition(
        "first-treatment-6-weeks",
        "First treatment within 6 weeks",
        "rate",
        0.75,
        "finished treatment, and TherapySession_FirstDate at most 42 days after "
        "ReferralRequestReceivedDate",
        "pathways that finished treatment with ServDischDate in the month",
        "",
        f"{_KM} l.101-116 Percentage_FirstTreatment6WeeksFinishedCourseTreatment; standard "
        "75% (DOMAIN.md)",
    ),
    KpiDefinition(
        "first-treatment-18-weeks",
        "First treatment within 18 weeks",
        "rate",
        0.95,
        "finished treatment, and TherapySession_FirstDate at most 126 days after "
        "ReferralRequestReceivedDate",
        "pathways that finished treatment with ServDischDate in the month",
        "",
        f"{_KM} l.104-127 Percentage_FirstTreatment18WeeksFinishedCourseTreatment; standard "
        "95% (DOMAIN.md)",
    ),
    KpiDefinition(
        "loop-closure-matched",
        "Referrals matched to a pathway",
        "rate",
        None,
        "referrals sent that a Talking Therapies pathway answers (data set: the ledger's match "
        "on NHS number, provider and a referral received 0-90 days after; episode export: the "
        "referral identifier it carries)",
        "referrals the clinic sent in the month",
        "",
        f"{_LEDGER}, Ledger.match",
    ),
    KpiDefinition(
        "loop-closure-outcomes",
        "Outcomes sent back",
        "rate",
        None,
        "referrals sent whose pathway's outcome goes back to the clinic (matched, and the "
        "patient's choice on sharing outcomes is yes)",
        "referrals the clinic sent in the month",
        "",
        f"{_LEDGER}; the outcomes run's consent gate",
    ),
    KpiDefinition(
        "consent-recorded",
        "Consent recorded",
        "rate",
        None,
        "referrals sent with the patient's choice on sharing outcomes recorded (a Consent "
        "permit or deny)",
        "referrals the clinic sent in the month",
        "",
        _LEDGER,
    ),
)
BY_ID = {d.id: d for d in DEFINITIONS}
#: The KPIs counted per sending clinic (the ledger) rather than per Talking Therapies provider.
SENT_KPIS: tuple[str, ...] = (
    "referrals-sent",
    "loop-closure-matched",
    "loop-closure-outcomes",
    "consent-recorded",
)


@dataclass(frozen=True, slots=True)
class Counts:
    """One KPI's populations for one group, exact: what a MeasureReport carries. For a count
    KPI only ``numerator`` (the count) is used; a rate is numerator / (denominator -
    exclusion), the initial population being the denominator's."""

    kpi: str
    group: Group
    numerator: int
    denominator: int = 0
    exclusion: int = 0

    @property
    def effective_denominator(self) -> int:
        return self.denominator - self.exclusion


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@dataclass(slots=True)
class _PathwayTally:
    received: int = 0
    entered: int = 0
    finished: int = 0
    not_case: int = 0
    recovered: int = 0
    improved: int = 0
    deteriorated: int = 0
    reliably_recovered: int = 0
    within_6: int = 0
    within_18: int = 0


@dataclass(slots=True)
class _SentTally:
    sent: int = 0
    matched: int = 0
    outcomes: int = 0
    consent: int = 0


def _waited(facts: PathwayFacts, days: int) -> bool:
    """NHS England's ``DATEDIFF(dd, ReferralRequestReceivedDate, TherapySession_FirstDate) <=
    days`` (NULL, so false, when either date is missing)."""
    if facts.received is None or facts.first_treatment is None:
        return False
    return (facts.first_treatment - facts.received).days <= days


class PathwayTallies:
    """The pathway KPIs' counts per group, one pathway at a time (memory: one tally per
    group, not one entry per pathway), and the ledger referrals the pathways answered."""

    def __init__(self) -> None:
        self.groups: dict[Group, _PathwayTally] = {}
        self.matched: set[tuple[str, str]] = set()
        self.outcomes: set[tuple[str, str]] = set()

    def _at(self, provider: str, pathway: str, day: date) -> _PathwayTally:
        group = Group(provider, pathway, month_of(day))
        tally = self.groups.get(group)
        if tally is None:
            tally = self.groups[group] = _PathwayTally()
        return tally

    def add(self, f: PathwayFacts) -> None:
        if f.referral is not None:
            self.matched.add(f.referral)
            if f.outcome_sent:
                self.outcomes.add(f.referral)
        if f.received is not None:
            self._at(f.provider, f.pathway, f.received).received += 1
        if f.first_treatment is not None:
            self._at(f.provider, f.pathway, f.first_treatment).entered += 1
        if f.finished and f.discharge is not None:
            t = self._at(f.provider, f.pathway, f.discharge)
            t.finished += 1
            t.not_case += f.not_case_at_start
            t.recovered += f.recovered
            t.improved += f.reliable_improvement
            t.deteriorated += f.reliable_deterioration
            t.reliably_recovered += f.reliable_recovery
            t.within_6 += _waited(f, WAIT_6_WEEKS)
            t.within_18 += _waited(f, WAIT_18_WEEKS)


def sent_group(entry: LedgerEntry) -> Group:
    """The sending clinic, LTC pathway and month a ledger referral counts in."""
    return Group(
        entry.requester_ods or UNKNOWN_CLINIC,
        ltc_pathway(entry.ltc_snomed),
        month_of(entry.authored_on),
    )


def _tally_sent(
    sent: Iterable[LedgerEntry], matched: set[tuple[str, str]], outcomes: set[tuple[str, str]]
) -> dict[Group, _SentTally]:
    tallies: dict[Group, _SentTally] = {}
    for entry in sent:
        key = (entry.identifier_system, entry.identifier)
        t = tallies.setdefault(sent_group(entry), _SentTally())
        t.sent += 1
        t.matched += key in matched
        t.outcomes += key in outcomes
        t.consent += entry.share_outcomes is not None
    return tallies


_PATHWAY_KPIS: dict[str, Callable[[_PathwayTally], tuple[int, int, int]]] = {
    "referrals-received": lambda t: (t.received, 0, 0),
    "entered-treatment": lambda t: (t.entered, 0, 0),
    "finished-treatment": lambda t: (t.finished, 0, 0),
    "recovery-rate": lambda t: (t.recovered, t.finished, t.not_case),
    "reliable-improvement-rate": lambda t: (t.improved, t.finished, 0),
    "reliable-deterioration-rate": lambda t: (t.deteriorated, t.finished, 0),
    "reliable-recovery-rate": lambda t: (t.reliably_recovered, t.finished, t.not_case),
    "first-treatment-6-weeks": lambda t: (t.within_6, t.finished, 0),
    "first-treatment-18-weeks": lambda t: (t.within_18, t.finished, 0),
}
_SENT_KPIS: dict[str, Callable[[_SentTally], tuple[int, int, int]]] = {
    "referrals-sent": lambda t: (t.sent, 0, 0),
    "loop-closure-matched": lambda t: (t.matched, t.sent, 0),
    "loop-closure-outcomes": lambda t: (t.outcomes, t.sent, 0),
    "consent-recorded": lambda t: (t.consent, t.sent, 0),
}


def counts_of(tallies: PathwayTallies, sent: Iterable[LedgerEntry] | None) -> list[Counts]:
    """Every KPI's exact populations from the tallies (and, with a ledger, its referrals
    sent), for every group that has any pathway (or, for the referral loop, any referral
    sent), in :data:`DEFINITIONS` order then by group. ``sent`` None: no ledger, so no
    referral-loop KPIs (not zero of them)."""
    sent_tallies: dict[Group, _SentTally] = {}
    if sent is not None:
        sent_tallies = _tally_sent(sent, tallies.matched, tallies.outcomes)
    out: list[Counts] = []
    for definition in DEFINITIONS:
        if definition.id in _PATHWAY_KPIS:
            pick = _PATHWAY_KPIS[definition.id]
            for group in sorted(tallies.groups, key=_order):
                out.append(Counts(definition.id, group, *pick(tallies.groups[group])))
        else:
            pick_sent = _SENT_KPIS[definition.id]
            for group in sorted(sent_tallies, key=_order):
                out.append(Counts(definition.id, group, *pick_sent(sent_tallies[group])))
    return out


def compute_counts(
    facts: Iterable[PathwayFacts], sent: Iterable[LedgerEntry] | None = None
) -> list[Counts]:
    """:func:`counts_of` the tallies of ``facts``."""
    tallies = PathwayTallies()
    for f in facts:
        tallies.add(f)
    return counts_of(tallies, sent)


def _order(group: Group) -> tuple[str, int, str]:
    return (group.provider, PATHWAYS.index(group.pathway), group.month)


def published_count(count: int) -> int | None:
    """NHS England's publication rule for a count: under 5 suppressed (None), else rounded to
    the nearest 5 (KMS l.216-221): 4 -> None, 5 -> 5, 7 -> 5, 8 -> 10."""
    if count < SUPPRESS_UNDER:
        return None
    # ROUND(n / 5.0, 0) * 5; n / 5 never ends in .5 for a whole n, so no tie to break
    return (count + ROUND_TO // 2) // ROUND_TO * ROUND_TO


def kpi_value(counts: Counts, *, suppress: bool) -> KpiValue:
    """The figure one KPI shows for one group (see the module docstring for the rules)."""
    definition = BY_ID[counts.kpi]
    if definition.kind == "count":
        if not suppress:
            return KpiValue(counts.kpi, counts.group, counts.numerator, None, None)
        shown = published_count(counts.numerator)
        return KpiValue(
            counts.kpi, counts.group, shown, None, None, SUPPRESSED if shown is None else ""
        )
    numerator, denominator = counts.numerator, counts.effective_denominator
    if not suppress:
        if numerator == 0 or denominator == 0:
            return KpiValue(counts.kpi, counts.group, numerator, denominator, None, NOT_AVAILABLE)
        return KpiValue(counts.kpi, counts.group, numerator, denominator, numerator / denominator)
    shown_numerator, shown_denominator = published_count(numerator), published_count(denominator)
    if denominator == 0:
        note = NOT_AVAILABLE
    elif numerator < SUPPRESS_UNDER or denominator < SUPPRESS_UNDER:
        note = SUPPRESSED
    else:
        return KpiValue(
            counts.kpi,
            counts.group,
            shown_numerator,
            shown_denominator,
            numerator / denominator,  # from the unrounded counts (KMS l.272-274)
        )
    return KpiValue(counts.kpi, counts.group, shown_numerator, shown_denominator, None, note)


__all__ = [
    "BY_ID",
    "DEFINITIONS",
    "NOT_AVAILABLE",
    "ROUND_TO",
    "SENT_KPIS",
    "SUPPRESSED",
    "SUPPRESS_UNDER",
    "UNKNOWN_CLINIC",
    "WAIT_6_WEEKS",
    "WAIT_18_WEEKS",
    "Counts",
    "PathwayTallies",
    "compute_counts",
    "counts_of",
    "kpi_value",
    "month_of",
    "published_count",
    "sent_group",
]
