"""The real-server fixtures: the shared server answers; a factory server survives a restart."""

from __future__ import annotations

import httpx
import pytest
from fhir_server import ServerFactory

pytestmark = pytest.mark.integration

_PATIENT = {
    "resourceType": "Patient",
    "id": "fixture-restart",
    "identifier": [{"system": "https://example.org/test-id", "value": "fixture-restart"}],
}


def test_shared_server_serves_r4_capabilities(fhir_server: str) -> None:
    """The session server is a FHIR R4 server at the yielded base URL."""
    response = httpx.get(f"{fhir_server}/metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"


def test_factory_server_goes_down_and_comes_back_with_its_data(
    fhir_server_factory: ServerFactory,
) -> None:
    """A stopped server refuses connections; restarted, it answers on the same URL with its data."""
    server = fhir_server_factory()
    created = httpx.put(f"{server.url}/Patient/fixture-restart", json=_PATIENT)
    assert created.status_code == 201
    server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/metadata")
    server.start()
    again = httpx.get(f"{server.url}/Patient/fixture-restart")
    assert again.status_code == 200
    assert again.json()["identifier"] == _PATIENT["identifier"]
