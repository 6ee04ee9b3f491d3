"""Every bundled example, converted and pushed to a real FHIR server, read back, pushed again.

Each example export is converted with its mapping (``fhir_iapt.pipeline.convert_file``) and
written by the real emitters; ``fhir-iapt push`` sends the output. Every resource of every
converted Bundle is then found by its business identifier exactly once, before and after a
second push: conditional creates and PUTs with deterministic ids make resending harmless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fhir_iapt.cli import main
from fhir_iapt.client import FhirClient, conditional_types
from fhir_iapt.emit import BulkWriter, NdjsonBundleWriter
from fhir_iapt.pipeline import convert_file
from fhir_iapt.results import Converted

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CASES = [
    ("diabetes.csv", "diabetes-csv"),
    ("respiratory.xml", "respiratory-xml"),
    ("cardiac.json", "cardiac-json"),
    ("iapt-outcomes.csv", "iapt-outcomes"),
]


@pytest.fixture(scope="module")
def converted() -> dict[str, list[Converted]]:
    """Each example's converted records (converted once for the module: validation is slow)."""
    return {
        example: [
            r for r in convert_file(EXAMPLES / example, mapping=mapping) if isinstance(r, Converted)
        ]
        for example, mapping in CASES
    }


Key = tuple[str, str, str]


def _identifiers(bundle: dict[str, Any]) -> list[Key]:
    """(type, system, value) of each entry's first business identifier."""
    out: list[Key] = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        identifier = resource.get("identifier")
        first = identifier[0] if isinstance(identifier, list) else identifier
        assert first, f"{resource['resourceType']} has no business identifier"
        out.append((resource["resourceType"], first["system"], first["value"]))
    return out


def _ids(items: list[Converted], rtype: str) -> set[str]:
    return {
        e["resource"]["id"]
        for item in items
        for e in item.bundle["entry"]
        if e["resource"]["resourceType"] == rtype
    }


def _census(client: FhirClient, items: list[Converted]) -> dict[Any, int]:
    """How many copies the server holds of each converted resource.

    Types the server can search by identifier are counted by identifier. Others (sekmet-fhir
    cannot search QuestionnaireResponse by identifier, and ignores the parameter) were PUT at
    their deterministic ids: each id must be readable, and the type's total is recorded so a
    resend that stored copies under new ids would show.
    """
    searchable = conditional_types(client.capabilities())
    keys = {key for item in items for key in _identifiers(item.bundle)}
    census: dict[Any, int] = {}
    for rtype, system, value in keys:
        if rtype in searchable:
            found = client.search(rtype, {"identifier": f"{system}|{value}"}, follow_next=True)
            census[(rtype, system, value)] = len(found.get("entry", []))
    for rtype in {key[0] for key in keys} - searchable:
        for rid in _ids(items, rtype):
            census[(rtype, rid)] = int(client.read(rtype, rid)["id"] == rid)
        every = client.search(rtype, {"_count": "500"}, follow_next=True)
        census[(rtype, "total")] = len(every.get("entry", []))
    return census


def _expected(census: dict[Any, int]) -> dict[Any, int]:
    return {key: (count if key[-1] == "total" else 1) for key, count in census.items()}


def _push(path: Path, server: str) -> Any:
    return CliRunner().invoke(main, ["push", str(path), "--server", server], catch_exceptions=False)


@pytest.mark.parametrize("example", [c[0] for c in CASES])
def test_example_bundles_round_trip_without_duplicates(
    fhir_server: str, tmp_path: Path, example: str, converted: dict[str, list[Converted]]
) -> None:
    """Every converted bundle is delivered; each resource is found once, and once after a resend."""
    items = converted[example]
    assert items, f"{example} converted to nothing"
    with NdjsonBundleWriter(tmp_path) as writer:
        for item in items:
            writer.write(item)
    first = _push(tmp_path, fhir_server)
    assert first.exit_code == 0, first.output
    with FhirClient(fhir_server) as client:
        before = _census(client, items)
        assert before == _expected(before)
        second = _push(tmp_path / "bundles.ndjson", fhir_server)
        assert second.exit_code == 0, second.output
        assert _census(client, items) == before


def test_bulk_layout_of_every_example_round_trips(
    fhir_server_factory: Any, tmp_path: Path, converted: dict[str, list[Converted]]
) -> None:
    """The bulk layout of all examples goes as PUT transactions; twice, and each resource once."""
    server = fhir_server_factory()
    items = [item for example, _ in CASES for item in converted[example]]
    bulk = tmp_path / "bulk"
    with BulkWriter(bulk) as writer:
        for item in items:
            writer.write(item)
    for _ in range(2):
        result = _push(bulk, server.url)
        assert result.exit_code == 0, result.output
    with FhirClient(server.url) as client:
        census = _census(client, items)
    assert census == _expected(census)
    for rtype in {key[0] for key in census if key[-1] == "total"}:
        assert census[(rtype, "total")] == len(_ids(items, rtype))
