"""FhirClient against a real FHIR server (sekmet-fhir on loopback): writes, reads, no duplicates."""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import pytest
from client_helpers import NHS_NUMBER, TEST_SYSTEM, referral_bundle, unique_nhs_number

from fhir_iapt.client import AsyncFhirClient, FhirClient, RetryPolicy, attempts_of
from fhir_iapt.errors import DeliveryError, ServerError

pytestmark = pytest.mark.integration


def _count(client: FhirClient, rtype: str, system: str, value: str) -> int:
    bundle = client.search(rtype, {"identifier": f"{system}|{value}"}, follow_next=True)
    return len(bundle.get("entry", []))


def _only(client: FhirClient, rtype: str, system: str, value: str) -> dict[str, Any]:
    bundle = client.search(rtype, {"identifier": f"{system}|{value}"})
    entries = bundle.get("entry", [])
    assert len(entries) == 1, f"{rtype} {value}: {len(entries)} matches"
    resource: dict[str, Any] = entries[0]["resource"]
    return resource


@pytest.fixture
def client(fhir_server: str) -> Any:
    with FhirClient(fhir_server, retry=RetryPolicy.never()) as c:
        yield c


def test_transaction_stores_linked_resources(client: FhirClient) -> None:
    """A transaction stores Patient, Observation and ServiceRequest; urn:uuid refs resolve."""
    tag = f"tx-{uuid.uuid4()}"
    result = client.transaction(referral_bundle(tag))
    assert [entry.status for entry in result.entries] == [201, 201, 201]
    assert result.ok
    assert result.attempts == 1
    patient = _only(client, "Patient", NHS_NUMBER, unique_nhs_number(tag))
    observation = _only(client, "Observation", TEST_SYSTEM, f"{tag}-obs")
    request = _only(client, "ServiceRequest", TEST_SYSTEM, f"{tag}-sr")
    assert observation["subject"]["reference"] == f"Patient/{patient['id']}"
    assert request["subject"]["reference"] == f"Patient/{patient['id']}"


def test_same_transaction_twice_creates_no_duplicates(client: FhirClient) -> None:
    """Sending a bundle again (as a retry after a lost answer would) leaves one of each resource."""
    tag = f"again-{uuid.uuid4()}"
    bundle = referral_bundle(tag)
    first = client.transaction(bundle)
    second = client.transaction(bundle)
    assert [entry.status for entry in first.entries] == [201, 201, 201]
    assert [entry.status for entry in second.entries] == [200, 200, 200]
    assert _count(client, "Patient", NHS_NUMBER, unique_nhs_number(tag)) == 1
    assert _count(client, "Observation", TEST_SYSTEM, f"{tag}-obs") == 1
    assert _count(client, "ServiceRequest", TEST_SYSTEM, f"{tag}-sr") == 1


def test_invalid_transaction_is_rejected_whole_with_outcome(client: FhirClient) -> None:
    """A transaction with a structurally invalid entry fails with the server's OperationOutcome."""
    tag = f"bad-{uuid.uuid4()}"
    bundle = referral_bundle(tag)
    bundle["entry"][1]["resource"]["status"] = {"not": "a code"}
    with pytest.raises(ServerError) as caught:
        client.transaction(bundle)
    error = caught.value
    assert error.status_code == 400
    assert error.server_outcome is not None
    assert error.server_outcome["resourceType"] == "OperationOutcome"
    assert error.request is not None
    assert error.request.method == "POST"
    assert attempts_of(error) == 1
    assert _count(client, "Patient", NHS_NUMBER, unique_nhs_number(tag)) == 0


def test_batch_reports_each_entry(client: FhirClient) -> None:
    """In a batch the good entry is stored and the bad one is reported with its own outcome."""
    tag = f"batch-{uuid.uuid4()}"
    good = {
        "resource": {
            "resourceType": "Basic",
            "id": tag,
            "code": {"text": "batch test"},
            "identifier": [{"system": TEST_SYSTEM, "value": tag}],
        },
        "request": {"method": "PUT", "url": f"Basic/{tag}"},
    }
    bad = copy.deepcopy(referral_bundle(tag)["entry"][1])
    bad["resource"].pop("subject")
    bad["resource"]["status"] = {"not": "a code"}
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [good, bad]}
    result = client.batch(batch)
    assert [entry.status for entry in result.entries] == [201, 400]
    assert not result.ok
    assert [entry.index for entry in result.failed] == [1]
    assert result.failed[0].outcome is not None
    assert _count(client, "Basic", TEST_SYSTEM, tag) == 1
    assert _count(client, "Observation", TEST_SYSTEM, f"{tag}-obs") == 0


def test_conditional_create_matches_existing(client: FhirClient) -> None:
    """create(if_none_exist=...) makes a resource once, then answers with the same one."""
    nhs = unique_nhs_number(f"cc-{uuid.uuid4()}")
    patient = {"resourceType": "Patient", "identifier": [{"system": NHS_NUMBER, "value": nhs}]}
    query = f"identifier={NHS_NUMBER}|{nhs}"
    first = client.create(patient, if_none_exist=query)
    second = client.create(patient, if_none_exist=query)
    assert first.created
    assert not second.created
    assert first.resource is not None
    assert second.resource is not None
    assert first.resource["id"] == second.resource["id"]
    assert _count(client, "Patient", NHS_NUMBER, nhs) == 1


def test_update_with_client_id_then_read(client: FhirClient) -> None:
    """PUT at a client-chosen id creates (201) then updates (200); read returns the update."""
    rid = f"put-{uuid.uuid4()}"
    resource = {"resourceType": "Patient", "id": rid, "active": True}
    assert client.update(resource).status_code == 201
    assert client.update({**resource, "active": False}).status_code == 200
    stored = client.read("Patient", rid)
    assert stored["id"] == rid
    assert stored["active"] is False


def test_read_missing_resource_is_404_with_outcome(client: FhirClient) -> None:
    """Reading an id the server does not have raises ServerError 404 carrying its outcome."""
    with pytest.raises(ServerError) as caught:
        client.read("Patient", f"missing-{uuid.uuid4()}")
    assert caught.value.status_code == 404
    assert caught.value.server_outcome is not None


def test_search_follows_next_links(client: FhirClient) -> None:
    """With follow_next, a search paged two at a time returns every match."""
    tag = f"page-{uuid.uuid4()}"
    for n in range(5):
        client.update(
            {
                "resourceType": "Basic",
                "id": f"{tag}-{n}",
                "identifier": [{"system": TEST_SYSTEM, "value": tag}],
                "code": {"text": "paging test"},
            }
        )
    one_page = client.search("Basic", {"identifier": f"{TEST_SYSTEM}|{tag}", "_count": "2"})
    every = client.search(
        "Basic", {"identifier": f"{TEST_SYSTEM}|{tag}", "_count": "2"}, follow_next=True
    )
    assert len(one_page["entry"]) == 2
    ids = sorted(entry["resource"]["id"] for entry in every["entry"])
    assert ids == [f"{tag}-{n}" for n in range(5)]


def test_capabilities_declare_conditional_create(client: FhirClient) -> None:
    """The server's CapabilityStatement says R4 and conditional create for Patient."""
    statement = client.capabilities()
    assert statement["fhirVersion"] == "4.0.1"
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert patient["conditionalCreate"] is True


def test_async_client_round_trip(fhir_server: str) -> None:
    """AsyncFhirClient sends the same transaction and reads it back, without duplicates."""
    tag = f"async-{uuid.uuid4()}"
    bundle = referral_bundle(tag)

    async def run() -> tuple[list[int], list[int], int]:
        async with AsyncFhirClient(fhir_server) as client:
            first = await client.transaction(bundle)
            second = await client.transaction(bundle)
            found = await client.search(
                "Patient", {"identifier": f"{NHS_NUMBER}|{unique_nhs_number(tag)}"}
            )
            return (
                [e.status for e in first.entries],
                [e.status for e in second.entries],
                len(found.get("entry", [])),
            )

    first, second, patients = asyncio.run(run())
    assert first == [201, 201, 201]
    assert second == [200, 200, 200]
    assert patients == 1


def test_server_down_is_a_transport_error_after_retries(fhir_server_factory: Any) -> None:
    """With the server stopped, each attempt fails to connect; the error says so after all tries."""
    server = fhir_server_factory(start=False)
    waits: list[float] = []
    policy = RetryPolicy(attempts=3, sleep=waits.append, jitter=0)
    with FhirClient(server.url, retry=policy) as client, pytest.raises(DeliveryError) as caught:
        client.capabilities()
    assert caught.value.error_code == "FI712"
    assert caught.value.retryable
    assert attempts_of(caught.value) == 3
    assert waits == [0.5, 1.0]
