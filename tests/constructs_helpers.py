"""Helpers for the mapping-construct tests: a minimal referral mapping written into a folder,
inputs converted through it, and the checks every per-record error must pass.

A test writes only what its construct needs (``fields=`` overrides or adds target fields,
``extra=`` appends groups / screenings, ``input_lines=`` the ``input:`` section); the line of a
load-time problem is found in the written text (:func:`line_of`), never hard-coded.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping as AbcMapping
from pathlib import Path
from typing import Any

import pytest

from fhir_iapt.errors import Issue, MappingError, ReadError, RecordError
from fhir_iapt.mapping import Mapping, load_mapping, map_record, read_source
from fhir_iapt.records import ReferralRecord
from fhir_iapt.sources import SourceRecord

#: a valid NHS number (modulus 11), in the 943 range used by NHS Digital's examples
NHS = "9434765919"

BASE_FIELDS: dict[str, str] = {
    "record_id": "{from: id, type: string, required: true}",
    "clinic_ods": "{from: clinic, type: ods, required: true}",
    "event_date": "{from: visit, type: date, required: true}",
    "patient.nhs_number": "{from: nhs, type: nhs_number, required: true}",
    "referral.decision": "{from: refer, type: bool, required: true}",
}
BASE_ROW: dict[str, str] = {
    "id": "R1",
    "clinic": "RZZ10",
    "visit": "2025-03-04",
    "nhs": NHS,
    "refer": "Y",
}


def mapping_text(
    *,
    fields: AbcMapping[str, str | None] | None = None,
    extra: str = "",
    input_lines: str = "format: csv",
    base: AbcMapping[str, str] = BASE_FIELDS,
) -> str:
    """A referral mapping: ``base`` fields with ``fields`` over them (None removes one)."""
    merged: dict[str, str | None] = {**base, **(fields or {})}
    body = "\n".join(f"  {target}: {spec}" for target, spec in merged.items() if spec is not None)
    indented = "\n".join(f"  {line}" for line in input_lines.splitlines())
    return (
        "# constructs test mapping: one construct of issue 14 at a time.\n"
        "# Reads: the columns the test writes.\n"
        "format: 1\n"
        "target: referral\n"
        "input:\n"
        f"{indented}\n"
        "source_system: https://example.org/Id/constructs-test\n"
        "fields:\n"
        f"{body}\n"
        f"{extra}"
    )


def write_mapping(folder: Path, text: str, name: str = "constructs.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load(folder: Path, text: str, name: str = "constructs.yaml") -> Mapping[Any]:
    return load_mapping(write_mapping(folder, text, name))


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line holding ``needle``."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(found) >= occurrence, f"{needle!r} is not in the mapping text"
    return found[occurrence - 1]


def load_error(folder: Path, text: str) -> MappingError:
    """The MappingError loading ``text`` raises (it must raise)."""
    with pytest.raises(MappingError) as caught:
        load(folder, text)
    return caught.value


def has_problem(error: MappingError, *, line: int, key: str | None, words: str) -> Issue:
    """The issue of ``error`` at ``line`` and ``key`` whose message holds ``words``; the file
    is named in its location."""
    for issue in error.issues:
        at = issue.location
        if at is not None and at.line == line and at.field == key and words in issue.diagnostics:
            assert at.file == "constructs.yaml"
            assert issue.error_code == "FI201"
            return issue
    raise AssertionError(
        f"no issue at line {line} key {key!r} saying {words!r}: "
        + "; ".join(f"{i.location} {i.diagnostics}" for i in error.issues)
    )


def csv_bytes(
    rows: list[dict[str, str]], *, base: AbcMapping[str, str] = BASE_ROW, delimiter: str = ","
) -> bytes:
    """A CSV export: the ``base`` row's columns with each row's over them."""
    merged = [{**base, **row} for row in rows]
    columns = list(dict.fromkeys(k for row in merged for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(merged)
    return out.getvalue().encode("utf-8")


def json_bytes(objects: list[dict[str, Any]]) -> bytes:
    return json.dumps(objects).encode("utf-8")


def convert(
    mapping: Mapping[Any], data: bytes, name: str = "export.csv"
) -> list[ReferralRecord | RecordError | ReadError]:
    """Every record of ``data`` mapped (a RecordError where mapping rejects it), read errors
    as they came."""
    out: list[ReferralRecord | RecordError | ReadError] = []
    for item in read_source(io.BytesIO(data), name=name, mapping=mapping):
        if isinstance(item, SourceRecord):
            try:
                out.append(map_record(item, mapping))
            except RecordError as exc:
                out.append(exc)
        else:
            out.append(item)
    return out


def one_record(mapping: Mapping[Any], data: bytes, name: str = "export.csv") -> ReferralRecord:
    [result] = convert(mapping, data, name)
    assert isinstance(result, ReferralRecord), result
    return result


def rejected(
    mapping: Mapping[Any], data: bytes, name: str = "export.csv", *, secrets: tuple[str, ...]
) -> RecordError:
    """The one record of ``data``, rejected; neither its message nor its OperationOutcome
    holds any of ``secrets`` (the values it was rejected for)."""
    [result] = convert(mapping, data, name)
    assert isinstance(result, RecordError), result
    assert_no_values(result.to_operation_outcome(), secrets)
    assert_no_values(str(result), secrets)
    return result


def assert_no_values(found: Any, secrets: tuple[str, ...]) -> None:
    text = json.dumps(found) if not isinstance(found, str) else found
    for secret in secrets:
        assert secret not in text, f"a value ({secret!r}) is in the error: {text}"


def issue_at(error: RecordError, field: str) -> Issue:
    """The one issue of ``error`` about source field ``field``; it names file and row."""
    found = [i for i in error.issues if i.location is not None and i.location.field == field]
    assert len(found) == 1, [(i.location, i.diagnostics) for i in error.issues]
    issue = found[0]
    assert issue.location is not None
    assert issue.location.file is not None
    assert issue.location.row is not None
    return issue


def outcome_issue(error: RecordError, field: str) -> dict[str, Any]:
    """The OperationOutcome issue of ``error`` whose location names ``field``."""
    outcome = error.to_operation_outcome()
    assert outcome["resourceType"] == "OperationOutcome"
    found = [i for i in outcome["issue"] if any(f"field {field}" in x for x in i["location"])]
    assert len(found) == 1, outcome
    return found[0]
