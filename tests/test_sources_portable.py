"""Records sent to worker processes come back equal: XML keeps its root attributes and lines."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from fhir_iapt.mapping import load_mapping, map_record, read_source
from fhir_iapt.sources import PortableXml, SourceRecord, portable, revive

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("mapping", "file"),
    [
        ("respiratory-xml", "respiratory.xml"),
        ("diabetes-csv", "diabetes.csv"),
        ("cardiac-json", "cardiac.json"),
    ],
)
def test_round_trip_through_pickle_maps_the_same(mapping: str, file: str) -> None:
    """portable -> pickle -> revive gives a record that maps to the same ReferralRecord."""
    loaded = load_mapping(mapping)
    with (EXAMPLES / file).open("rb") as stream:
        records = [
            r for r in read_source(stream, name=file, mapping=loaded) if isinstance(r, SourceRecord)
        ]
    for record in records:
        travelled = revive(pickle.loads(pickle.dumps(portable(record))))  # noqa: S301 - own data
        assert map_record(travelled, loaded) == map_record(record, loaded)


def test_xml_lines_are_restored_for_located_errors() -> None:
    """A revived visit reports a bad value at the line it had in the original file."""
    loaded = load_mapping("respiratory-xml")
    with (EXAMPLES / "respiratory.xml").open("rb") as stream:
        third = list(read_source(stream, name="r.xml", mapping=loaded))[2]
    assert isinstance(third, SourceRecord)
    moved = portable(third)
    assert isinstance(moved.data, PortableXml)
    back = revive(moved)
    original = [e.sourceline for e in third.data.iter()]
    assert [e.sourceline for e in back.data.iter()] == original
    assert original[0] == third.location.line
