"""Loading mappings: bundled names, caching, and broken files located before any record is read."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from fhir_iapt.errors import MappingError
from fhir_iapt.mapping import Mapping, bundled_mappings, load_mapping, read_source

BROKEN = Path(__file__).parent / "data" / "mappings" / "broken"


def test_bundled_mappings_are_listed_and_load() -> None:
    """The three referral layouts of issue 2 are bundled and load by name."""
    names = bundled_mappings()
    for name in ("cardiac-json", "diabetes-csv", "respiratory-xml"):
        assert name in names
        mapping = load_mapping(name)
        assert isinstance(mapping, Mapping)
        assert (mapping.name, mapping.target) == (name, "referral")
    assert load_mapping("diabetes-csv").input_format == "csv"
    assert load_mapping("respiratory-xml").input_options["record"] == (
        "/RespiratoryClinicExport/Visit"
    )


def test_loading_is_cached_and_a_path_works_too() -> None:
    """Loading the same mapping twice returns the same compiled object, by name or by path."""
    by_name = load_mapping("diabetes-csv")
    assert load_mapping("diabetes-csv") is by_name
    assert by_name.path is not None
    assert load_mapping(by_name.path) is by_name


def test_unknown_bundled_name_and_missing_file() -> None:
    """An unknown name or a missing path is a MappingError (FI202), not a traceback."""
    with pytest.raises(MappingError) as caught:
        load_mapping("no-such-layout")
    assert caught.value.error_code == "FI202"
    with pytest.raises(MappingError):
        load_mapping(BROKEN / "does-not-exist.yaml")


BROKEN_CASES = [
    ("unknown-key.yaml", 9, "fields.record_id.requred", "unknown key"),
    ("unknown-type.yaml", 11, "fields.event_date.type", "unknown type 'datetime'"),
    ("bad-xpath.yaml", 11, "fields.patient.nhs_number.from", "XPath does not compile"),
    ("missing-table.yaml", 13, "fields.patient.sex.table", "no lookup table 'no-such-table'"),
    ("unknown-target-field.yaml", 13, "fields.patient.shoe_size", "no field"),
    ("unknown-target.yaml", 4, "target", "unknown target 'invoice'"),
    ("yaml-syntax.yaml", 10, None, "not valid YAML"),
    ("no-header.yaml", 1, None, "comment header"),
    ("missing-required.yaml", 9, "fields", "needs 'record_id'"),
    ("unknown-version.yaml", 3, "format", "format version"),
    ("partial-instrument-columns.yaml", 17, "screenings.items[0].answers", "9 scored items"),
]


@pytest.mark.parametrize(("file", "line", "key", "text"), BROKEN_CASES)
def test_broken_mapping_is_located(file: str, line: int, key: str | None, text: str) -> None:
    """Each broken mapping gives exactly one issue, at this line and key of the mapping file."""
    with pytest.raises(MappingError) as caught:
        load_mapping(BROKEN / file)
    issues = caught.value.issues
    assert len(issues) == 1, [i.diagnostics for i in issues]
    location = issues[0].location
    assert location is not None
    assert (location.file, location.line, location.field) == (file, line, key)
    assert text in issues[0].diagnostics
    assert caught.value.error_code == "FI201"


def test_all_problems_of_a_file_are_reported_together(tmp_path: Path) -> None:
    """Two broken fields in one file are both reported, each with its own line."""
    text = (
        (BROKEN / "unknown-type.yaml")
        .read_text()
        .replace("clinic_ods: {from: clinic, type: ods}", "clinic_ods: {from: clinic, type: odz}")
    )
    path = tmp_path / "two.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert [i.location.line for i in caught.value.issues if i.location] == [11, 12]


class _Untouchable(io.RawIOBase):
    """An input that fails the test if anything reads it."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        raise AssertionError("the input was read before the mapping was checked")


def test_broken_mapping_fails_before_any_record_is_read() -> None:
    """Converting with a broken mapping raises MappingError without touching the input."""
    stream = io.BufferedReader(_Untouchable())

    def convert() -> None:
        mapping = load_mapping(BROKEN / "unknown-type.yaml")
        list(read_source(stream, name="in.csv", mapping=mapping))

    with pytest.raises(MappingError):
        convert()


def test_edited_mapping_is_reloaded(tmp_path: Path) -> None:
    """After a mapping file changes on disk, loading it again reads the new version."""
    path = tmp_path / "m.yaml"
    shutil.copy(BROKEN / "unknown-version.yaml", path)
    with pytest.raises(MappingError):
        load_mapping(path)
    text = path.read_text().replace("format: 2", "format: 1")
    path.write_text(text + "\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_mapping(path).target == "referral"
