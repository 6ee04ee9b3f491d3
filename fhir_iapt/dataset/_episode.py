"""A derived pathway as the canonical :class:`~fhir_iapt.scoring.episode.EpisodeRecord`, and the
comparison with NHS Digital's own derived fields (post-deadline extracts)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from fhir_iapt.dataset._model import DerivedPathway, Disagreement
from fhir_iapt.dataset._tables import DatasetSpec
from fhir_iapt.errors import RecordError
from fhir_iapt.scoring.episode import EpisodeRecord, OutcomeConsent
from fhir_iapt.scoring.measures import OutcomeRules
from fhir_iapt.scoring.recovery import (
    EpisodeOutcome,
    FlagName,
    choose_anxiety_measure,
    derive_outcome,
)

#: The identifier system of data-set pathway ids (Unique_ServiceRequestID, OrgIDProv ||
#: ServiceRequestId: unique across providers, the same in every month).
DATASET_PATHWAY_SYSTEM = "https://fhir-iapt.github.io/fhir/Id/tt-dataset-pathway"
#: A pathway with no NHS number cannot become an episode (nothing to match or address).
NO_NHS_NUMBER = "FI158"


def no_nhs_number(pathway: DerivedPathway) -> RecordError:
    """The error (FI158) of a pathway that has no NHS number: nothing to match or address."""
    return RecordError(
        "the pathway has no NHS number (IDS001 NHSNumber blank or no IDS001 row)",
        location=pathway.location.with_field("NHSNumber"),
        error_code=NO_NHS_NUMBER,
    )


def episode_record(
    pathway: DerivedPathway,
    *,
    referral_identifier_system: str,
    referral_identifier: str,
    consent: OutcomeConsent | None,
    source_system: str = DATASET_PATHWAY_SYSTEM,
) -> EpisodeRecord:
    """``pathway`` as the EpisodeRecord the outcome bundles are built from; the referral
    identifier and consent come from the ledger match. Raises RecordError (FI158) when the
    pathway has no NHS number."""
    if pathway.nhs_number is None:
        raise no_nhs_number(pathway)
    return _record(
        pathway,
        nhs_number=pathway.nhs_number,
        referral_identifier_system=referral_identifier_system,
        referral_identifier=referral_identifier,
        consent=consent,
        source_system=source_system,
    )


def _record(
    pathway: DerivedPathway,
    *,
    nhs_number: str,
    referral_identifier_system: str,
    referral_identifier: str,
    consent: OutcomeConsent | None,
    source_system: str,
) -> EpisodeRecord:
    return EpisodeRecord(
        source_system=source_system,
        pathway_id=pathway.pathway_id,
        referral_identifier_system=referral_identifier_system,
        referral_identifier=referral_identifier,
        nhs_number=nhs_number,
        service_ods=pathway.provider_ods,
        consent=consent,
        referral_received=pathway.referral_received,
        discharge=pathway.discharge,
        problem_descriptor=pathway.problem_descriptor,
        ltc_snomed=pathway.ltc_snomed,
        treatment_contacts=pathway.treatment_contacts,
        first_treatment_date=pathway.first_treatment_date,
        end_code=pathway.end_code,
        phq9=pathway.phq9,
        gad7=pathway.gad7,
        adsm=pathway.adsm,
        adsm_scores=pathway.adsm_scores,
        wsas=pathway.wsas,
        first_score_date=pathway.first_score_date,
        last_score_date=pathway.last_score_date,
        location=pathway.location,
    )


def _number(value: Decimal | int | None) -> str | None:
    if value is None:
        return None
    return format(Decimal(value).normalize(), "f")


def _ours(
    pathway: DerivedPathway, outcome: EpisodeOutcome, rules: OutcomeRules, spec: DatasetSpec
) -> Mapping[str, Callable[[], str | None]]:
    anxiety, _fallback = choose_anxiety_measure(probe_episode(pathway), rules)

    def flag(name: FlagName) -> Callable[[], str | None]:
        return lambda: "True" if outcome.flags[name].value is True else None

    return {
        "pathway_id": lambda: pathway.pathway_id,
        "treatment_contacts": lambda: str(pathway.treatment_contacts),
        "finished_treatment": lambda: "True" if pathway.finished_treatment else None,
        "phq9_first": lambda: _number(pathway.phq9.first),
        "phq9_last": lambda: _number(pathway.phq9.last),
        "gad7_first": lambda: _number(pathway.gad7.first),
        "gad7_last": lambda: _number(pathway.gad7.last),
        "adsm_first": lambda: _number(pathway.adsm_scores.first) if pathway.adsm else None,
        "adsm_last": lambda: _number(pathway.adsm_scores.last) if pathway.adsm else None,
        "adsm_token": lambda: spec.token_of.get(anxiety, anxiety),
        "recovery": flag("recovery"),
        "reliable_improvement": flag("reliable-improvement"),
        "reliable_deterioration": flag("reliable-deterioration"),
    }


def probe_episode(pathway: DerivedPathway) -> EpisodeRecord:
    """The pathway as an episode for deriving flags only (no patient identifiers needed)."""
    return _record(
        pathway,
        nhs_number="",
        referral_identifier_system="",
        referral_identifier="",
        consent=None,
        source_system=DATASET_PATHWAY_SYSTEM,
    )


def _theirs(raw: str | None, kind: str) -> str | None:
    """NHS Digital's value in the form ours takes: flags 'True' or None (they are true or null,
    never false); numbers normalised; codes as text."""
    if raw is None:
        return None
    if kind == "flag":
        return "True" if raw.strip().lower() in {"true", "1", "y"} else None
    if kind in {"int", "score"}:
        try:
            return _number(Decimal(raw))
        except InvalidOperation:
            return "(not a number)"
    return raw


def disagreements(
    pathway: DerivedPathway,
    theirs: Mapping[str, str | None],
    spec: DatasetSpec,
    rules: OutcomeRules,
) -> tuple[Disagreement, ...]:
    """Every derived field the extract carries whose value differs from ours, in the table's
    order; fields the extract does not carry are not compared."""
    outcome = derive_outcome(probe_episode(pathway), rules)
    ours = _ours(pathway, outcome, rules, spec)
    out: list[Disagreement] = []
    for name, derived in spec.derived_fields.items():
        if name not in theirs:
            continue
        their_value = _theirs(theirs[name], derived.kind)
        our_value = ours[derived.ours]()
        if derived.kind in {"int", "score"}:
            our_value = _number(Decimal(our_value)) if our_value is not None else None
        if their_value != our_value:
            out.append(Disagreement(name, their_value, our_value))
    return tuple(out)


__all__ = [
    "DATASET_PATHWAY_SYSTEM",
    "NO_NHS_NUMBER",
    "disagreements",
    "episode_record",
    "probe_episode",
]
