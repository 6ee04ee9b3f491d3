"""One care pathway as the report counts it: :class:`PathwayFacts`, the same whether it came
from the national data set (a :class:`~fhir_iapt.dataset.DerivedPathway`) or from an episode
export (an :class:`~fhir_iapt.scoring.episode.EpisodeRecord`), so the two give the same
figures. Nothing here is patient data: no NHS number, no score, only the flags NHS England
counts (true or not, as its ``*_Flag = 'True'`` tests read them) and ids.

The flags are :func:`~fhir_iapt.scoring.recovery.derive_outcome`'s, which the outcomes run also
sends. NHS England's flags are "true or null, never false" (tt-dataset.md §5) and its formulas
count ``Flag = 'True'`` only, so a flag that cannot be derived (a missing score) counts as not
true: a pathway whose caseness at the start is unknown stays in the recovery-rate denominator
(it is not ``NotCaseness_Flag = 'True'``) and outside its numerator, as it does in NHS England's
SQL (KM l.39-48).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from fhir_iapt.dataset import DerivedPathway, probe_episode
from fhir_iapt.errors import Location
from fhir_iapt.ledger import DEFAULT_WINDOW_DAYS, Ledger
from fhir_iapt.report._pathways import ltc_pathway
from fhir_iapt.scoring.episode import EpisodeRecord
from fhir_iapt.scoring.measures import OutcomeRules, outcome_rules
from fhir_iapt.scoring.recovery import derive_outcome


@dataclass(frozen=True, slots=True)
class PathwayFacts:
    """What the KPIs and the data-quality checks read of one care pathway."""

    pathway_id: str  # the data set's Unique_ServiceRequestID, or the export's pathway_id
    provider: str  # the Talking Therapies service's ODS code
    pathway: str  # the LTC pathway (mappings/tables/ltc-pathways.yaml)
    received: date | None  # ReferralRequestReceivedDate
    first_treatment: date | None  # TherapySession_FirstDate
    discharge: date | None  # ServDischDate
    finished: bool  # CompletedTreatment_Flag = 'True'
    not_case_at_start: bool  # NotCaseness_Flag = 'True'
    recovered: bool  # Recovery_Flag = 'True'
    reliable_improvement: bool  # ReliableImprovement_Flag = 'True'
    reliable_deterioration: bool  # ReliableDeterioration_Flag = 'True'
    descriptor: str | None  # the problem descriptor (ICD-10)
    #: why GAD-7 stood in for the descriptor's disorder-specific measure (derive_outcome's
    #: ``anxiety_fallback``): None when it did not
    anxiety_fallback: str | None
    phq9_paired: bool  # a first and a last PHQ-9
    end_code: str | None
    #: the ledger referral (identifier system, value) it answers; None when none matched
    referral: tuple[str, str] | None = None
    #: matched, and its outcome goes back (the share-outcomes choice is yes)
    outcome_sent: bool = False
    where: str = ""  # "file:row" of the record it came from (no value in it)
    #: what it was read from: the data set (its rows' codes are checked by the reader) or an
    #: episode export
    source: Literal["dataset", "export"] = "export"

    @property
    def reliable_recovery(self) -> bool:
        """NHS England's ``ReliableImprovement_Flag = 'True' AND Recovery_Flag = 'True'``."""
        return self.recovered and self.reliable_improvement


def where(location: Location) -> str:
    """``file:row`` of a record, as the report's ids show it."""
    file = location.file or "(input)"
    return f"{file}:{location.row}" if location.row is not None else file


def _facts(
    episode: EpisodeRecord,
    rules: OutcomeRules,
    *,
    referral: tuple[str, str] | None,
    outcome_sent: bool,
    source: Literal["dataset", "export"],
) -> PathwayFacts:
    outcome = derive_outcome(episode, rules)
    flags = outcome.flags
    return PathwayFacts(
        pathway_id=episode.pathway_id,
        provider=episode.service_ods,
        pathway=ltc_pathway(episode.ltc_snomed),
        received=episode.referral_received,
        first_treatment=episode.first_treatment_date,
        discharge=episode.discharge,
        finished=flags["finished-treatment"].value is True,
        not_case_at_start=flags["caseness-at-start"].value is False,
        recovered=flags["recovery"].value is True,
        reliable_improvement=flags["reliable-improvement"].value is True,
        reliable_deterioration=flags["reliable-deterioration"].value is True,
        descriptor=episode.problem_descriptor,
        anxiety_fallback=outcome.anxiety_fallback,
        phq9_paired=episode.phq9.paired,
        end_code=episode.end_code,
        referral=referral,
        outcome_sent=outcome_sent,
        where=where(episode.location),
        source=source,
    )


def facts_of_pathway(
    pathway: DerivedPathway,
    *,
    ledger: Ledger | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
    rules: OutcomeRules | None = None,
) -> PathwayFacts:
    """A data-set pathway's facts; with a ``ledger``, the referral it answers is found as
    ``fhir-iapt outcomes --dataset`` finds it (:meth:`~fhir_iapt.ledger.Ledger.match`: NHS
    number, provider, received 0..``window_days`` days after authoredOn), and its outcome goes
    back when that referral recorded the patient's yes to sharing outcomes."""
    referral: tuple[str, str] | None = None
    sent = False
    if ledger is not None and pathway.nhs_number is not None:
        found = ledger.match(
            nhs_number=pathway.nhs_number,
            provider_ods=pathway.provider_ods,
            received=pathway.referral_received,
            window_days=window_days,
        ).entry
        if found is not None:
            referral = (found.identifier_system, found.identifier)
            sent = found.share_outcomes is True
    return _facts(
        probe_episode(pathway),
        rules or outcome_rules(),
        referral=referral,
        outcome_sent=sent,
        source="dataset",
    )


def facts_of_episode(
    episode: EpisodeRecord, *, ledger: Ledger | None = None, rules: OutcomeRules | None = None
) -> PathwayFacts:
    """An episode-export row's facts; with a ``ledger``, the referral it answers is the one
    its referral identifier names (the export carries it), and its outcome goes back when the
    export's consent_share_outcomes is Y (the outcomes run's gate)."""
    referral: tuple[str, str] | None = None
    if ledger is not None:
        found = ledger.get(episode.referral_identifier_system, episode.referral_identifier)
        if found is not None:
            referral = (found.identifier_system, found.identifier)
    return _facts(
        episode,
        rules or outcome_rules(),
        referral=referral,
        outcome_sent=referral is not None and episode.consent == "Y",
        source="export",
    )


__all__ = ["PathwayFacts", "facts_of_episode", "facts_of_pathway", "where"]
