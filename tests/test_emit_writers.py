"""Emit: NDJSON bundles, bulk layout, XML files, rejects and summary; atomic on error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from build_helpers import NHS, references, sample_record, shared_id
from lxml import etree

from fhir_iapt.emit import (
    BulkWriter,
    NdjsonBundleWriter,
    OutputWriter,
    RejectsWriter,
    XmlBundleWriter,
    rewrite_references,
    write_summary,
)
from fhir_iapt.errors import EmitError, Location, RecordError
from fhir_iapt.fhir import build_referral_bundle
from fhir_iapt.results import Converted, Rejected


def _converted(record: str = "V-1001", nhs: str = "9000000009") -> Converted:
    rec = sample_record(record=record, nhs_number=nhs)
    return Converted(rec.key, build_referral_bundle(rec), rec.location)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_ndjson_one_bundle_per_line(tmp_path: Path) -> None:
    """Each converted record is one JSON line equal to its bundle; no temp files remain."""
    items = [_converted("V-1"), _converted("V-2")]
    with NdjsonBundleWriter(tmp_path) as writer:
        for item in items:
            writer.write(item)
    assert _lines(tmp_path / "bundles.ndjson") == [i.bundle for i in items]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundles.ndjson"]


def test_writers_satisfy_the_protocol(tmp_path: Path) -> None:
    """Every bundle writer is an OutputWriter."""
    for writer in (NdjsonBundleWriter(tmp_path), BulkWriter(tmp_path), XmlBundleWriter(tmp_path)):
        assert isinstance(writer, OutputWriter)
        writer.abort()


@pytest.mark.parametrize("make", [NdjsonBundleWriter, BulkWriter, XmlBundleWriter])
def test_exception_leaves_no_output(tmp_path: Path, make: Any) -> None:
    """An error inside the with-block discards everything: no file, no temp file."""
    item = _converted()

    def crash() -> None:
        with make(tmp_path) as writer:
            writer.write(item)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        crash()
    assert list(tmp_path.iterdir()) == []


def test_output_hidden_until_close(tmp_path: Path) -> None:
    """While writing, only a dot-named temporary exists; the final name appears on close."""
    writer = NdjsonBundleWriter(tmp_path)
    writer.write(_converted())
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 1
    assert names[0].startswith(".bundles.ndjson.")
    assert names[0].endswith(".tmp")
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["bundles.ndjson"]


def test_unwritable_output_is_an_emit_error(tmp_path: Path) -> None:
    """An output folder that is a file gives an EmitError naming the file."""
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    with pytest.raises(EmitError) as info:
        NdjsonBundleWriter(blocker)
    assert info.value.location is not None
    assert info.value.location.file == str(blocker / "bundles.ndjson")


def _bulk(tmp_path: Path, items: list[Converted]) -> dict[str, list[dict[str, Any]]]:
    with BulkWriter(tmp_path) as writer:
        for item in items:
            writer.write(item)
    return {p.stem: _lines(p) for p in sorted(tmp_path.glob("*.ndjson"))}


def test_bulk_layout_one_file_per_type(tmp_path: Path) -> None:
    """Bulk output has one <Type>.ndjson per resource type holding the unbundled resources."""
    files = _bulk(tmp_path, [_converted()])
    assert sorted(files) == [
        "Condition",
        "Observation",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "QuestionnaireResponse",
        "ServiceRequest",
    ]
    assert len(files["Observation"]) == 4  # HbA1c, FEV1, PHQ-9 score, GAD-7 score
    assert len(files["QuestionnaireResponse"]) == 2
    for type_name, lines in files.items():
        assert all(r["resourceType"] == type_name for r in lines)


def test_bulk_rewrites_references_so_they_resolve(tmp_path: Path) -> None:
    """No urn:uuid remains; every reference is <Type>/<id> of a resource in the files."""
    files = _bulk(tmp_path, [_converted("V-1"), _converted("V-2", nhs="9912003888")])
    written = {f"{r['resourceType']}/{r['id']}" for lines in files.values() for r in lines}
    refs = [ref for lines in files.values() for r in lines for ref in references(r)]
    assert refs
    assert all(ref in written for ref in refs)
    assert b"urn:uuid:" not in b"".join(p.read_bytes() for p in tmp_path.glob("*.ndjson"))
    patient = shared_id("Patient", NHS, "9912003888")
    service_requests = files["ServiceRequest"]
    assert service_requests[1]["subject"] == {"reference": f"Patient/{patient}"}


def test_bulk_writes_shared_and_repeated_resources_once(tmp_path: Path) -> None:
    """One patient in two records, and one record converted twice, give no duplicate ids."""
    files = _bulk(tmp_path, [_converted("V-1"), _converted("V-2"), _converted("V-1")])
    assert len(files["Patient"]) == 1
    assert len(files["Practitioner"]) == 1
    assert len(files["ServiceRequest"]) == 2
    for lines in files.values():
        ids = [r["id"] for r in lines]
        assert len(ids) == len(set(ids))


def test_rewrite_leaves_foreign_urns() -> None:
    """Only URNs of the bundle's own resources are rewritten."""
    data = b'{"a":{"reference":"urn:uuid:x"},"b":{"reference":"urn:uuid:y"}}'
    assert rewrite_references(data, {b"x": b"Patient/x"}) == (
        b'{"a":{"reference":"Patient/x"},"b":{"reference":"urn:uuid:y"}}'
    )


def test_xml_one_file_per_bundle(tmp_path: Path) -> None:
    """FHIR XML output: bundles-xml/<Bundle.id>.xml, each a FHIR Bundle document."""
    items = [_converted("V-1"), _converted("V-2")]
    with XmlBundleWriter(tmp_path) as writer:
        for item in items:
            writer.write(item)
    folder = tmp_path / "bundles-xml"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{i.bundle['id']}.xml" for i in items
    )
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring((folder / f"{items[0].bundle['id']}.xml").read_bytes(), parser)
    assert root.tag == "{http://hl7.org/fhir}Bundle"
    assert root.find("{http://hl7.org/fhir}id").get("value") == items[0].bundle["id"]
    entries = root.findall("{http://hl7.org/fhir}entry")
    assert len(entries) == len(items[0].bundle["entry"])


def test_xml_replaces_previous_run(tmp_path: Path) -> None:
    """A second XML run replaces the folder of the first, leaving only its own files."""
    for record in ("V-1", "V-2"):
        with XmlBundleWriter(tmp_path) as writer:
            writer.write(_converted(record))
    assert [p.name for p in (tmp_path / "bundles-xml").iterdir()] == [
        f"{_converted('V-2').bundle['id']}.xml"
    ]


def test_rejects_file_holds_operation_outcomes(tmp_path: Path) -> None:
    """Each rejected record is one OperationOutcome line saying where and the error code."""
    where = Location(file="clinic.csv", row=4, field="nhs_number")
    error = RecordError("NHS number fails the modulus 11 check", location=where, error_code="FI301")
    with RejectsWriter(tmp_path) as rejects:
        rejects.write(Rejected(error, where))
    [outcome] = _lines(tmp_path / "rejects.ndjson")
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["location"] == ["clinic.csv row 4 field nhs_number"]
    assert issue["details"]["coding"][0]["code"] == "FI301"


def test_empty_rejects_file_is_written(tmp_path: Path) -> None:
    """With nothing rejected, rejects.ndjson exists and is empty."""
    with RejectsWriter(tmp_path):
        pass
    assert (tmp_path / "rejects.ndjson").read_bytes() == b""


def test_summary_json(tmp_path: Path) -> None:
    """write_summary writes sorted, indented JSON and nothing else."""
    path = write_summary(
        tmp_path,
        {"records": 3, "converted": 1, "skipped": {"not-referred": 2}, "inputs": ["a.csv"]},
    )
    assert path == tmp_path / "summary.json"
    assert json.loads(path.read_text()) == {
        "converted": 1,
        "inputs": ["a.csv"],
        "records": 3,
        "skipped": {"not-referred": 2},
    }
    assert path.read_text().index('"converted"') < path.read_text().index('"records"')
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
