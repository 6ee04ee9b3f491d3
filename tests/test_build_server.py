"""Referral bundles against a real FHIR server: accepted, and sending twice creates nothing new."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from build_helpers import SDS, sample_record

from fhir_iapt.fhir import BuildOptions, build_referral_bundle
from fhir_iapt.fhir.ids import project_identifier_system
from fhir_iapt.records import ReferralData

pytestmark = pytest.mark.integration

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _post(base: str, bundle: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(base, json=bundle, headers=FHIR_JSON, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _count(base: str, resource_type: str, identifier: str) -> int:
    response = httpx.get(
        f"{base}/{resource_type}",
        params={"identifier": identifier, "_summary": "count"},
        headers=FHIR_JSON,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


@pytest.mark.parametrize("record_id", ["server-dup-1", "server dup,2|x"])
def test_sending_twice_creates_no_duplicates(fhir_server: str, record_id: str) -> None:
    """POSTing the same conditional-create bundle twice leaves one copy of every resource.

    No screenings: the test server (sekmet-fhir 0.1.1) has no search parameters at all for
    QuestionnaireResponse, so it cannot run their ifNoneExist (R4 defines ``identifier``).
    """
    record = sample_record(record=record_id, nhs_number="9912003888", screenings=())
    bundle = build_referral_bundle(record)
    first = _post(fhir_server, bundle)
    second = _post(fhir_server, bundle)
    assert len(first["entry"]) == len(second["entry"]) == len(bundle["entry"])
    assert first["entry"][-1]["response"]["status"].startswith("201")  # the new referral
    assert all(e["response"]["status"].startswith("200") for e in second["entry"])
    first_locations = [e["response"]["location"].split("/_history")[0] for e in first["entry"]]
    second_locations = [e["response"]["location"].split("/_history")[0] for e in second["entry"]]
    assert first_locations == second_locations
    assert _count(fhir_server, "Patient", "https://fhir.nhs.uk/Id/nhs-number|9912003888") == 1
    escaped = record_id.replace(",", "\\,").replace("|", "\\|")
    assert _count(fhir_server, "ServiceRequest", f"{record.source_system}|{escaped}") == 1


def test_put_strategy_keeps_our_ids(fhir_server: str) -> None:
    """With PUT the server stores each resource under the id we computed, once.

    Its own patient and clinician: a resource first stored by conditional create has a server
    id, so PUT under our id would add a second copy (one strategy per server).
    """
    referral = ReferralData(
        decision=True, consent_to_refer=True, referrer_id="G7654321", referrer_id_system=SDS
    )
    record = sample_record(record="server-put-1", nhs_number="9000000009", referral=referral)
    bundle = build_referral_bundle(record, BuildOptions(request_method="put"))
    _post(fhir_server, bundle)
    _post(fhir_server, bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        url = f"{fhir_server}/{resource['resourceType']}/{resource['id']}"
        response = httpx.get(url, headers=FHIR_JSON, timeout=30)
        assert response.status_code == 200, url
    role = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "PractitionerRole"
    )
    system = project_identifier_system("practitioner-role")
    assert _count(fhir_server, "PractitionerRole", f"{system}|{role['id']}") == 1
