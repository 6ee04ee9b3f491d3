"""Hand-written minimal resources for the validate_/xml_/profiles_ tests (valid as written)."""

from __future__ import annotations

import copy
from typing import Any

BASE = "https://fhir-iapt.github.io/fhir"
UK = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"
LOINC = "http://loinc.org"

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "11111111-1111-4111-8111-111111111111",
    "meta": {"profile": [UK + "Patient"]},
    "identifier": [
        {
            "extension": [
                {
                    "url": "https://fhir.hl7.org.uk/StructureDefinition/"
                    "Extension-UKCore-NHSNumberVerificationStatus",
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": "https://fhir.hl7.org.uk/CodeSystem/"
                                "UKCore-NHSNumberVerificationStatusEngland",
                                "code": "01",
                                "display": "Number present and verified",
                            }
                        ]
                    },
                }
            ],
            "system": "https://fhir.nhs.uk/Id/nhs-number",
            "value": "9000000009",
        }
    ],
    "name": [{"family": "Example", "given": ["Alex"]}],
    "gender": "female",
    "birthDate": "1970-05-17",
}

CONDITION: dict[str, Any] = {
    "resourceType": "Condition",
    "id": "22222222-2222-4222-8222-222222222222",
    "meta": {"profile": [UK + "Condition"]},
    "clinicalStatus": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
        ]
    },
    "code": {
        "coding": [
            {
                "system": "http://snomed.info/sct",
                "code": "44054006",
                "display": "Type 2 diabetes mellitus",
            }
        ]
    },
    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
    "recordedDate": "2024-03-01",
}

SCORE: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "33333333-3333-4333-8333-333333333333",
    "meta": {"profile": [f"{BASE}/StructureDefinition/IaptScoreObservation"]},
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "survey",
                }
            ]
        }
    ],
    "code": {"coding": [{"system": LOINC, "code": "44261-6"}]},
    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
    "effectiveDateTime": "2024-03-01",
    "valueQuantity": {
        "value": 12,
        "unit": "{score}",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    },
}

#: PHQ-9 and GAD-7 item LOINC codes in order (DOMAIN.md "Questionnaires and scoring", V;
#: instruments.yaml); the tests that need them import them from here.
PHQ9_ITEMS = [
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
FREQUENCY = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]

RESPONSE: dict[str, Any] = {
    "resourceType": "QuestionnaireResponse",
    "id": "44444444-4444-4444-8444-444444444444",
    "meta": {"profile": [f"{BASE}/StructureDefinition/IaptLtcQuestionnaireResponse"]},
    "questionnaire": f"{BASE}/Questionnaire/phq-9",
    "status": "completed",
    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
    "authored": "2024-03-01",
    "item": [
        {"linkId": code, "answer": [{"valueCoding": {"system": LOINC, "code": FREQUENCY[i % 4]}}]}
        for i, code in enumerate(PHQ9_ITEMS)
    ]
    + [{"linkId": "69722-7", "answer": [{"valueCoding": {"system": LOINC, "code": "LA6573-5"}}]}],
}

SERVICE_REQUEST: dict[str, Any] = {
    "resourceType": "ServiceRequest",
    "id": "55555555-5555-4555-8555-555555555555",
    "meta": {"profile": [f"{BASE}/StructureDefinition/IaptLtcServiceRequest"]},
    "identifier": [{"system": "https://clinic.example.nhs.uk/Id/visit", "value": "V-1"}],
    "status": "active",
    "intent": "order",
    "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
    "code": {
        "coding": [{"system": f"{BASE}/CodeSystem/iapt-service", "code": "iapt-ltc-referral"}]
    },
    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
    "authoredOn": "2024-03-01",
    "requester": {
        "type": "Organization",
        "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"},
    },
    "reasonReference": [{"reference": "urn:uuid:22222222-2222-4222-8222-222222222222"}],
    "supportingInfo": [
        {"reference": "urn:uuid:33333333-3333-4333-8333-333333333333"},
        {"reference": "urn:uuid:44444444-4444-4444-8444-444444444444"},
    ],
}

RESOURCES = {
    "Patient": PATIENT,
    "Condition": CONDITION,
    "Observation": SCORE,
    "QuestionnaireResponse": RESPONSE,
    "ServiceRequest": SERVICE_REQUEST,
}


def transaction_bundle() -> dict[str, Any]:
    """A transaction Bundle of the resources above, referencing each other by urn:uuid."""
    entries = []
    for resource in RESOURCES.values():
        entries.append(
            {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": copy.deepcopy(resource),
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    return {
        "resourceType": "Bundle",
        "id": "66666666-6666-4666-8666-666666666666",
        "type": "transaction",
        "entry": entries,
    }


def fresh(name: str) -> dict[str, Any]:
    """A deep copy of one of the sample resources, safe to mutate."""
    return copy.deepcopy(RESOURCES[name])
