"""The canonical records that flow from ``mapping/`` to ``fhir/``.

A mapping file turns one source record (a CSV row, an XML element, a JSON object) into one of
these, with every value already typed and checked: NHS numbers pass modulus 11, dates are real
and not in the future, answers are in range, codes came from the mapping's lookup tables. The
FHIR builders take them as given and never see the source format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from fhir_iapt.errors import Location

Sex = Literal["male", "female", "other", "unknown"]
Instrument = Literal["PHQ-9", "GAD-7", "PHQ-2", "GAD-2"]
#: Context observation kinds; their codes and units are in ``mappings/tables/context.yaml``.
ContextKind = Literal[
    "hba1c",
    "fev1",
    "fev1_percent_predicted",
    "mrc_grade",
    "nyha_class",
    "lvef",
]


@dataclass(frozen=True, slots=True)
class PatientData:
    nhs_number: str  # 10 digits, no spaces, modulus-11 checked
    family: str | None = None
    given: tuple[str, ...] = ()
    birth_date: date | None = None
    sex: Sex | None = None
    gp_practice_ods: str | None = None
    #: UK Core NHSNumberVerificationStatusEngland code ("01"…"08"), set by the mapping.
    nhs_number_verification: str = "02"


@dataclass(frozen=True, slots=True)
class ConditionData:
    snomed: str
    display: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class ContextValue:
    """One clinical-context measurement (HbA1c, FEV1, MRC grade, NYHA class, LVEF)."""

    kind: ContextKind
    value: Decimal | int | str  # str for coded kinds (NYHA "I".."IV")
    effective: date | None = None


@dataclass(frozen=True, slots=True)
class Screening:
    """One screening instrument as the clinic recorded it.

    ``answers[i]`` is the 0-3 score of item ``i + 1`` in the instrument's item order
    (``mappings/tables/instruments.yaml``). PHQ-9 may carry a 10th, unscored, item (difficulty).
    Every scored item is present: a partly answered instrument is rejected at the map stage.
    """

    instrument: Instrument
    answers: tuple[int | None, ...]
    date: date | None = None


@dataclass(frozen=True, slots=True)
class ReferralData:
    decision: bool
    consent_to_refer: bool | None = None
    consent_to_share_outcomes: bool | None = None
    referrer_id: str | None = None  # identifier value of the referring clinician
    referrer_id_system: str | None = None
    referrer_name: str | None = None
    #: UK Core SourceOfServiceRequest SNOMED code, when the mapping knows it.
    source_snomed: str | None = None
    reason: str | None = None
    #: ODS code of the IAPT-LTC service the referral is for (ServiceRequest.performer).
    performer_ods: str | None = None


@dataclass(frozen=True, slots=True)
class ReferralRecord:
    """One clinic visit or review, canonical and checked."""

    source_system: str  # identifier system for the clinic's record ids (from the mapping)
    record_id: str
    clinic_ods: str
    event_date: date  # the visit or review date
    patient: PatientData
    referral: ReferralData
    conditions: tuple[ConditionData, ...] = ()
    context: tuple[ContextValue, ...] = ()
    screenings: tuple[Screening, ...] = ()
    location: Location = field(default_factory=Location)

    @property
    def key(self) -> str:
        """The natural key: ``<source_system>|<record_id>`` (no patient data in it)."""
        return f"{self.source_system}|{self.record_id}"
