"""Issue 14: how an export's bytes are read - a declared encoding (``input: encoding: cp1252``),
preamble lines before the CSV header (``input: skip_lines: N``) and XML namespaces
(``input: namespaces:`` used in the record path and every XPath) - checked when the mapping
loads (a MappingError naming file and line) and while reading (errors naming row, line and
field or element, never a value).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from constructs_helpers import (
    NHS,
    convert,
    csv_bytes,
    has_problem,
    issue_at,
    line_of,
    load,
    load_error,
    mapping_text,
    one_record,
    rejected,
)

from fhir_iapt.errors import ReadError
from fhir_iapt.mapping import map_record, read_source
from fhir_iapt.sources import SourceRecord, portable, revive

_FAMILY = {"patient.family": "{from: surname, type: string}"}


def _cp1252_csv(surname: bytes) -> bytes:
    return csv_bytes([{"surname": "SURNAME"}]).replace(b"SURNAME", surname)


# --- a declared encoding -----------------------------------------------------------------------


def test_cp1252_export_is_read_in_its_encoding(tmp_path: Path) -> None:
    """encoding: cp1252 reads 0xEB as ë and 0x80 as €, as Windows wrote them."""
    mapping = load(
        tmp_path, mapping_text(fields=_FAMILY, input_lines="format: csv\nencoding: cp1252")
    )
    record = one_record(mapping, _cp1252_csv("Zoë €".encode("cp1252")))
    assert record.patient.family == "Zoë €"


def test_undeclared_cp1252_is_still_refused_as_not_utf8(tmp_path: Path) -> None:
    """Without encoding:, the same bytes are not UTF-8: FI103 at the row and column."""
    [error] = convert(
        load(tmp_path, mapping_text(fields=_FAMILY)), _cp1252_csv("Zoë".encode("cp1252"))
    )
    assert isinstance(error, ReadError)
    assert error.error_code == "FI103"
    assert "not UTF-8" in error.message


def test_bytes_outside_the_declared_encoding_stop_reading_there(tmp_path: Path) -> None:
    """0x81 has no character in cp1252: FI103 naming cp1252, the row and the column; the
    value is not shown."""
    mapping = load(
        tmp_path, mapping_text(fields=_FAMILY, input_lines="format: csv\nencoding: cp1252")
    )
    [error] = convert(mapping, _cp1252_csv(b"Zo\x81"))
    assert isinstance(error, ReadError)
    assert error.error_code == "FI103"
    assert "the bytes are not cp1252" in error.message
    assert error.location is not None
    assert (error.location.row, error.location.line, error.location.field) == (1, 2, "surname")
    assert "Zo" not in str(error.to_operation_outcome())


@pytest.mark.parametrize(
    ("input_lines", "key", "words"),
    [
        ("format: csv\nencoding: klingon", "input.encoding", "unknown encoding"),
        ("format: csv\nencoding: utf-16", "input.encoding", "single-byte"),
        ("format: json\nencoding: cp1252", "input.encoding", "does not apply to json input"),
    ],
)
def test_bad_encoding_is_a_load_error(
    tmp_path: Path, input_lines: str, key: str, words: str
) -> None:
    """An unknown encoding, one the line reader cannot split (UTF-16), or one on JSON (always
    UTF-8) is located at its line."""
    text = mapping_text(input_lines=input_lines)
    has_problem(load_error(tmp_path, text), line=line_of(text, "encoding:"), key=key, words=words)


_XML_FIELDS = {
    "record_id": '{from: "@id", type: string, required: true}',
    "clinic_ods": '{from: "/Export/@clinic", type: ods, required: true}',
    "event_date": '{from: "@date", type: date, required: true}',
    "patient.nhs_number": '{from: "@nhs", type: nhs_number, required: true}',
    "referral.decision": '{from: "@refer", type: bool, required: true}',
    "patient.family": '{from: "@surname", type: string}',
}


def _xml(surname: bytes, declaration: bytes = b"UTF-8") -> bytes:
    return (
        b'<?xml version="1.0" encoding="' + declaration + b'"?>\n<Export clinic="RZZ10">\n'
        b'  <Visit id="V1" date="2025-03-04" nhs="'
        + NHS.encode()
        + b'" refer="Y" surname="'
        + surname
        + b'"/>\n</Export>\n'
    )


def test_xml_encoding_overrides_the_declaration(tmp_path: Path) -> None:
    """encoding: cp1252 reads an XML export whose declaration wrongly says UTF-8; 0x81 is
    FI103 naming cp1252."""
    text = mapping_text(
        base=_XML_FIELDS, input_lines="format: xml\nrecord: /Export/Visit\nencoding: cp1252"
    )
    mapping = load(tmp_path, text)
    record = one_record(mapping, _xml("Zoë".encode("cp1252")), "export.xml")
    assert record.patient.family == "Zoë"
    [error] = convert(mapping, _xml(b"Zo\x81"), "export.xml")
    assert isinstance(error, ReadError)
    assert error.error_code == "FI103"
    assert "not cp1252" in error.message


# --- preamble lines before the header ----------------------------------------------------------

_PREAMBLE = b"Diabetes clinic export,run 2025-03-05\r\n\r\n"


def test_preamble_lines_are_skipped_and_lines_still_count(tmp_path: Path) -> None:
    """skip_lines: 2 reads the header on line 3; a bad row is located at its real line."""
    mapping = load(tmp_path, mapping_text(input_lines="format: csv\nskip_lines: 2"))
    good = one_record(mapping, _PREAMBLE + csv_bytes([{}]))
    assert good.patient.nhs_number == NHS
    assert good.location is not None
    assert (good.location.row, good.location.line) == (1, 4)
    error = rejected(mapping, _PREAMBLE + csv_bytes([{"nhs": "12345"}]), secrets=("12345",))
    issue = issue_at(error, "nhs")
    assert issue.location is not None
    assert (issue.location.row, issue.location.line) == (1, 4)


def test_missing_preamble_or_short_file_is_a_header_error(tmp_path: Path) -> None:
    """An export without its preamble loses its header to the skip (FI102, a missing column);
    one that ends inside the preamble says so (FI102, located at the end)."""
    mapping = load(tmp_path, mapping_text(input_lines="format: csv\nskip_lines: 2"))
    [error] = convert(mapping, csv_bytes([{}, {"id": "R2"}]))
    assert isinstance(error, ReadError)
    assert (error.error_code, error.location.line if error.location else None) == ("FI102", 3)
    assert "lacks the column" in error.message
    [error] = convert(mapping, b"Diabetes clinic export\r\n")
    assert isinstance(error, ReadError)
    assert error.error_code == "FI102"
    assert "ends within the 2 preamble line(s)" in error.message


@pytest.mark.parametrize(
    ("input_lines", "words"),
    [
        ("format: csv\nskip_lines: -1", "whole number of lines from 0 to 1000"),
        ('format: csv\nskip_lines: "2"', "whole number of lines from 0 to 1000"),
        ("format: csv\nskip_lines: true", "whole number of lines from 0 to 1000"),
        ("format: xml\nrecord: /Export/Visit\nskip_lines: 1", "does not apply to xml input"),
    ],
)
def test_bad_skip_lines_is_a_load_error(tmp_path: Path, input_lines: str, words: str) -> None:
    """skip_lines is a whole number, and CSV only."""
    base = _XML_FIELDS if "xml" in input_lines else None
    text = mapping_text(input_lines=input_lines, **({"base": base} if base else {}))
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "skip_lines"),
        key="input.skip_lines",
        words=words,
    )


# --- XML namespaces --------------------------------------------------------------------------

_URI = "urn:example:clinic-export:v2"
_NS_FIELDS = {
    "record_id": '{from: "@id", type: string, required: true}',
    "clinic_ods": '{from: "/c:Export/@clinic", type: ods, required: true}',
    "event_date": '{from: "@date", type: date, required: true}',
    "patient.nhs_number": '{from: "c:Patient/@nhsNumber", type: nhs_number, required: true}',
    "patient.family": "{from: c:Patient/c:Name, type: string}",
    "referral.decision": '{from: "c:Referral/@decision", type: bool, required: true}',
}
_NS_INPUT = f'format: xml\nrecord: /c:Export/c:Visit\nnamespaces: {{c: "{_URI}"}}'


def _ns_xml(nhs: str = NHS, uri: str = _URI) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Export xmlns="{uri}" clinic="RZZ10">
  <Visit id="V1" date="2025-03-04">
    <Patient nhsNumber="{nhs}"><Name>Doe</Name></Patient>
    <Referral decision="Y"/>
  </Visit>
</Export>
""".encode()


def test_default_namespace_export_reads_through_prefixes(tmp_path: Path) -> None:
    """namespaces: {c: ...} lets the record path and XPaths name the export's default
    namespace (c:Visit, c:Patient/@nhsNumber, /c:Export/@clinic)."""
    mapping = load(tmp_path, mapping_text(base=_NS_FIELDS, input_lines=_NS_INPUT))
    record = one_record(mapping, _ns_xml(), "export.xml")
    assert (record.record_id, record.clinic_ods, record.patient.nhs_number) == ("V1", "RZZ10", NHS)
    assert record.patient.family == "Doe"
    assert record.location is not None
    assert record.location.element == "/c:Export/c:Visit[1]"


def test_namespaced_record_survives_the_trip_to_a_worker(tmp_path: Path) -> None:
    """A namespaced record sent to a worker process (portable / revive) maps the same."""
    mapping = load(tmp_path, mapping_text(base=_NS_FIELDS, input_lines=_NS_INPUT))
    [item] = read_source(io.BytesIO(_ns_xml()), name="export.xml", mapping=mapping)
    assert isinstance(item, SourceRecord)
    assert map_record(revive(portable(item)), mapping) == map_record(item, mapping)


def test_bad_value_under_a_namespace_is_located_by_its_xpath(tmp_path: Path) -> None:
    """A bad NHS number is FI301 naming c:Patient/@nhsNumber and the Patient element's line."""
    mapping = load(tmp_path, mapping_text(base=_NS_FIELDS, input_lines=_NS_INPUT))
    error = rejected(mapping, _ns_xml(nhs="12345"), "export.xml", secrets=("12345",))
    issue = issue_at(error, "c:Patient/@nhsNumber")
    assert issue.error_code == "FI301"
    assert issue.location is not None
    assert issue.location.line == 4


def test_export_in_another_namespace_is_refused(tmp_path: Path) -> None:
    """A root in a namespace the mapping does not give it is one read error (FI104) that
    repeats nothing of the file's namespace."""
    mapping = load(tmp_path, mapping_text(base=_NS_FIELDS, input_lines=_NS_INPUT))
    [error] = convert(mapping, _ns_xml(uri="urn:other:export"), "export.xml")
    assert isinstance(error, ReadError)
    assert error.error_code == "FI104"
    assert "not in the namespace" in error.message
    assert "urn:other" not in error.message


def test_undeclared_prefixes_are_load_errors(tmp_path: Path) -> None:
    """An XPath or the record path using a prefix namespaces: does not declare, or a bad
    prefix, is located when the mapping loads."""
    fields = {**_NS_FIELDS, "patient.family": "{from: d:Patient/d:Name, type: string}"}
    text = mapping_text(base=fields, input_lines=_NS_INPUT)
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "patient.family"),
        key="fields.patient.family.from",
        words="a namespace prefix that input: namespaces: does not declare",
    )
    text = mapping_text(
        base=_NS_FIELDS, input_lines=_NS_INPUT.replace("/c:Export/c:Visit", "/c:Export/x:Visit")
    )
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "record:"),
        key="input.record",
        words="prefix 'x'",
    )
    text = mapping_text(base=_NS_FIELDS, input_lines=_NS_INPUT.replace("{c:", "{xmlc:"))
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "namespaces:"),
        key="input.namespaces.xmlc",
        words="a namespace prefix is a name",
    )
