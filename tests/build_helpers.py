"""Helpers for the build_/emit_ tests: sample records and an independent id calculator.

``expected_id`` re-derives resource ids with the standard library's ``uuid.uuid5`` from the
scheme documented in ``fhir_iapt/fhir/ids.py``, so the tests check the scheme, not the code's
own (faster) implementation of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from fhir_iapt.records import (
    ConditionData,
    ContextValue,
    PatientData,
    ReferralData,
    ReferralRecord,
    Screening,
)

SOURCE = "https://clinic.example.nhs.uk/Id/diabetes-visit"
NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://fhir-iapt.github.io/fhir")
NHS = "https://fhir.nhs.uk/Id/nhs-number"
SDS = "https://fhir.nhs.uk/Id/sds-user-id"


def record_id(role: str, record: str = "V-1001", source: str = SOURCE) -> str:
    return str(uuid.uuid5(NS, f"record\x00{source}\x00{record}\x00{role}"))


def shared_id(resource_type: str, system: str, value: str) -> str:
    return str(uuid.uuid5(NS, f"shared\x00{resource_type}\x00{system}\x00{value}"))


def golden_ids(record: str = "V-1001", nhs: str = "9000000009") -> dict[str, str]:
    """Placeholder -> id for the golden file of the sample record."""
    practitioner = shared_id("Practitioner", SDS, "G1234567")
    ids = {
        "Patient": shared_id("Patient", NHS, nhs),
        "Practitioner": practitioner,
        "PractitionerRole": shared_id("PractitionerRole", practitioner, "RX1AB"),
    }
    for role in (
        "Bundle",
        "ServiceRequest",
        "Condition/0",
        "Observation/hba1c/0",
        "Observation/fev1/0",
        "QuestionnaireResponse/PHQ-9",
        "Observation/score/PHQ-9",
        "QuestionnaireResponse/GAD-7",
        "Observation/score/GAD-7",
    ):
        ids[role] = record_id(role, record)
    return ids


def fill_placeholders(tree: Any, ids: dict[str, str]) -> Any:
    """Replace every ``{Role}`` in the strings of a JSON tree by its id."""
    if isinstance(tree, dict):
        return {k: fill_placeholders(v, ids) for k, v in tree.items()}
    if isinstance(tree, list):
        return [fill_placeholders(v, ids) for v in tree]
    if isinstance(tree, str):
        for role, value in ids.items():
            tree = tree.replace("{" + role + "}", value)
        return tree
    return tree


def sample_record(
    *,
    record: str = "V-1001",
    nhs_number: str = "9000000009",
    referral: ReferralData | None = None,
    context: tuple[ContextValue, ...] | None = None,
    screenings: tuple[Screening, ...] | None = None,
    conditions: tuple[ConditionData, ...] | None = None,
) -> ReferralRecord:
    """The record the golden file ``tests/data/build/referral_diabetes_v1001.json`` describes."""
    return ReferralRecord(
        source_system=SOURCE,
        record_id=record,
        clinic_ods="RX1AB",
        event_date=date(2024, 3, 5),
        patient=PatientData(
            nhs_number=nhs_number,
            family="Smith",
            given=("Ann", "Marie"),
            birth_date=date(1960, 1, 2),
            sex="female",
            gp_practice_ods="A81001",
            nhs_number_verification="01",
        ),
        referral=referral
        or ReferralData(
            decision=True,
            consent_to_refer=True,
            referrer_id="G1234567",
            referrer_id_system=SDS,
            referrer_name="Dr Jones",
            source_snomed="108161000000109",
            reason="Low mood affecting diabetes self-care",
            performer_ods="RXT01",
        ),
        conditions=conditions
        if conditions is not None
        else (ConditionData("44054006", "Type 2 diabetes mellitus", "Type 2 diabetes"),),
        context=context
        if context is not None
        else (
            ContextValue("hba1c", Decimal("58")),
            ContextValue("fev1", Decimal("2.35"), date(2024, 2, 20)),
        ),
        screenings=screenings
        if screenings is not None
        else (
            Screening("PHQ-9", (1, 2, 1, 3, 1, 0, 1, 0, 0, 1), date(2024, 3, 4)),
            Screening("GAD-7", (2, 2, 3, 1, 0, 1, 2)),
        ),
    )


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"]]


def references(tree: Any) -> Iterator[str]:
    """Every ``reference`` string in a JSON tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from references(value)
