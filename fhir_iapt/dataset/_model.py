"""What the data-set reader yields per referral: :class:`DerivedPathway`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from fhir_iapt.errors import Location
from fhir_iapt.scoring.episode import ScorePair


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One NHS Digital derived field whose value differs from ours (both as codes or numbers,
    ``None`` = blank / not derived). Neither is preferred: both are reported."""

    field: str  # the NHS Digital field name, e.g. "CompletedTreatment_Flag"
    theirs: str | None
    ours: str | None


@dataclass(frozen=True, slots=True)
class DerivedPathway:
    """One referral (care pathway) of the data set, derived from its latest records.

    ``pathway_id`` is NHS Digital's Unique_ServiceRequestID, ``OrgIDProv || ServiceRequestId``:
    the same on every run and in every month, so a later month updates an earlier outcome.
    """

    pathway_id: str
    provider_ods: str  # OrgIDProv of the IDS000Header
    service_request_id: str
    nhs_number: str | None  # IDS001 NHSNumber (None when blank: pseudonymised feeds drop it)
    referral_received: date
    discharge: date | None
    end_code: str | None
    problem_descriptor: str | None  # ICD-10 with its dot, e.g. "F41.1"
    ltc_snomed: str | None  # IDS602 LongTermCondition with FindSchemeInUse 04
    ltc_pathway: bool  # a care contact with IAPTLTCServiceInd Y (integrated LTC pathway)
    care_contacts: int  # every IDS201 contact of the referral
    treatment_contacts: int  # attended or unplanned, treatment AppType, inside the dates
    #: TherapySession_FirstDate: the date of the first treatment contact (None: never treated)
    first_treatment_date: date | None
    finished_treatment: bool  # a discharge date and >= the minimum treatment contacts
    phq9: ScorePair = field(default_factory=ScorePair)
    gad7: ScorePair = field(default_factory=ScorePair)
    adsm: str | None = None  # the measures.yaml name of the ADSM that fits the descriptor
    adsm_scores: ScorePair = field(default_factory=ScorePair)
    wsas: ScorePair = field(default_factory=ScorePair)
    first_score_date: date | None = None  # the earliest first score of any measure
    last_score_date: date | None = None  # the latest last score of any measure
    nhsd_pathway_id: str | None = None  # NHS Digital's PathwayID when the extract carries it
    disagreements: tuple[Disagreement, ...] = ()
    location: Location = field(default_factory=Location)  # the IDS101 row it came from

    @property
    def key(self) -> str:
        """The natural key (no patient data in it)."""
        return self.pathway_id


__all__ = ["DerivedPathway", "Disagreement"]
