"""The XML reader: safe parsing, detached records that keep root attributes, damage located."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from fhir_iapt.errors import ReadError
from fhir_iapt.sources import SourceRecord, read_records

DATA = Path(__file__).parent / "data" / "sources"
OPTIONS = {"record": "/Export/Visit"}


def _read(raw: bytes) -> list[SourceRecord | ReadError]:
    return list(read_records(io.BytesIO(raw), name="t.xml", fmt="xml", options=OPTIONS))


def _shape(raw: bytes) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for item in _read(raw):
        loc = item.location
        assert loc is not None
        if isinstance(item, ReadError):
            out.append(("error", item.error_code, loc.row, loc.line))
        else:
            out.append(("record", loc.row, loc.line, loc.element, item.data.get("id")))
    return out


CASES = [
    pytest.param(
        b'<?xml version="1.0"?>\n<Export clinic="RZZ60">\n  <Visit id="1"/>\n  <Note/>\n'
        b'  <Visit id="2">\n    <P/>\n  </Visit>\n</Export>\n',
        [("record", 1, 3, "/Export/Visit[1]", "1"), ("record", 2, 5, "/Export/Visit[2]", "2")],
        id="records-and-other-elements",
    ),
    pytest.param(
        b'\xef\xbb\xbf<Export>\r\n<Visit id="1"/>\r\n</Export>',
        [("record", 1, 2, "/Export/Visit[1]", "1")],
        id="bom-and-crlf",
    ),
    pytest.param(
        b'<Export>\n<Visit id="1"/>\n<Visit id="2">\n<P>\n',
        [("record", 1, 2, "/Export/Visit[1]", "1"), ("error", "FI104", 2, 5)],
        id="truncated-keeps-earlier-records",
    ),
    pytest.param(
        b'<Export>\n<Visit id="1"/>\n<Visit id="2"><P></Visit>\n</Export>\n',
        [("record", 1, 2, "/Export/Visit[1]", "1"), ("error", "FI104", 2, 3)],
        id="mismatched-tag",
    ),
    pytest.param(
        b'<Export>\n<Visit id="1"/>\n<Visit id="caf\xe9"/>\n</Export>\n',
        [("record", 1, 2, "/Export/Visit[1]", "1"), ("error", "FI103", 2, 3)],
        id="invalid-utf8",
    ),
    pytest.param(
        b'<Other>\n<Visit id="1"/>\n</Other>\n',
        [("error", "FI104", None, 1)],
        id="wrong-root",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_xml_reader_cases(raw: bytes, expected: list[tuple[object, ...]]) -> None:
    """Each input yields exactly these records and errors, at these rows and lines."""
    assert _shape(raw) == expected


def test_truncated_file_from_tests_data() -> None:
    """A respiratory export cut mid-visit keeps the whole visits and locates the cut."""
    raw = (DATA / "truncated.xml").read_bytes()
    items = list(
        read_records(
            io.BytesIO(raw),
            name="truncated.xml",
            fmt="xml",
            options={"record": "/RespiratoryClinicExport/Visit"},
        )
    )
    assert [type(i).__name__ for i in items] == ["SourceRecord", "ReadError"]
    error = items[-1]
    assert error.location is not None
    # the file stops after line 40, inside the second visit (which starts on line 36)
    assert (error.location.row, error.location.line) == (2, 40)


def test_detached_record_keeps_root_attributes_only() -> None:
    """A record hangs under a shallow copy of the root: root attributes, no sibling records."""
    items = _read(b'<Export clinic="RZZ60"><Visit id="1"/><Visit id="2"/></Export>')
    second = items[1]
    assert isinstance(second, SourceRecord)
    assert second.data.xpath("/Export/@clinic") == ["RZZ60"]
    parent = second.data.getparent()
    assert [child.get("id") for child in parent] == ["2"]


def test_entities_are_not_expanded_and_no_file_is_read(tmp_path: Path) -> None:
    """An external entity naming a local file is not resolved (no XXE)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    raw = (
        f'<?xml version="1.0"?>\n<!DOCTYPE Export [<!ENTITY x SYSTEM "file://{secret}">]>\n'
        '<Export><Visit id="1">&x;</Visit></Export>\n'
    ).encode()
    for item in _read(raw):
        if isinstance(item, SourceRecord):
            assert "TOP-SECRET" not in etree.tostring(item.data).decode()


class _Endless(io.RawIOBase):
    def __init__(self, head: bytes, item: bytes) -> None:
        self._chunks: Iterator[bytes] = itertools.chain([head], itertools.repeat(item))
        self._pending = b""
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while len(self._pending) < len(buffer):
            self._pending += next(self._chunks)
        size = len(buffer)
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.served += size
        return size


def test_xml_reader_streams() -> None:
    """The first visits of an endless export come back without reading it all."""
    raw = _Endless(b'<Export clinic="RZZ60">', b'<Visit id="v"><P a="1"/></Visit>\n')
    records = list(
        itertools.islice(
            read_records(io.BufferedReader(raw), name="s.xml", fmt="xml", options=OPTIONS), 5
        )
    )
    assert [r.location.row for r in records] == [1, 2, 3, 4, 5]
    assert raw.served < 1_000_000
