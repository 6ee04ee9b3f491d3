"""Canonical URLs, code-system URIs and the Coding value used across the stages (one place)."""

from __future__ import annotations

from dataclasses import dataclass

#: The project's own canonical base. A deployment that republishes the profiles under its own
#: domain changes only this constant and the ``url`` fields in ``profiles/``.
CANONICAL_BASE = "https://fhir-iapt.github.io/fhir"

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_ORGANIZATION = "https://fhir.nhs.uk/Id/ods-organization-code"
SDS_USER = "https://fhir.nhs.uk/Id/sds-user-id"

UKCORE_SD = "https://fhir.hl7.org.uk/StructureDefinition"
NHS_NUMBER_VERIFICATION_EXT = f"{UKCORE_SD}/Extension-UKCore-NHSNumberVerificationStatus"
NHS_NUMBER_VERIFICATION_CS = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
)
SOURCE_OF_SERVICE_REQUEST_EXT = f"{UKCORE_SD}/Extension-UKCore-SourceOfServiceRequest"


def ukcore_profile(resource_type: str) -> str:
    """``https://fhir.hl7.org.uk/StructureDefinition/UKCore-<Type>``."""
    return f"{UKCORE_SD}/UKCore-{resource_type}"


def project_url(kind: str, name: str) -> str:
    """A canonical URL of ours, e.g. ``project_url("Questionnaire", "phq-9")``."""
    return f"{CANONICAL_BASE}/{kind}/{name}"


@dataclass(frozen=True, slots=True)
class Coding:
    """A FHIR Coding: ``system`` + ``code`` (+ ``display``), as the code tables give them."""

    system: str
    code: str
    display: str | None = None

    def to_fhir(self) -> dict[str, str]:
        out = {"system": self.system, "code": self.code}
        if self.display:
            out["display"] = self.display
        return out
