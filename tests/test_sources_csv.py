"""The CSV reader: records with their locations, and every malformed input located exactly."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_iapt.errors import ReadError
from fhir_iapt.sources import SourceRecord, read_records

DATA = Path(__file__).parent / "data" / "sources"


def _read(raw: bytes, **options: object) -> list[SourceRecord | ReadError]:
    return list(read_records(io.BytesIO(raw), name="t.csv", fmt="csv", options=options))


def _shape(items: list[SourceRecord | ReadError]) -> list[tuple[object, ...]]:
    """(kind, code, row, line, field) per item: what the tests compare."""
    out: list[tuple[object, ...]] = []
    for item in items:
        if isinstance(item, ReadError):
            loc = item.location
            assert loc is not None
            out.append(("error", item.error_code, loc.row, loc.line, loc.field))
        else:
            loc = item.location
            out.append(("record", loc.row, loc.line, tuple(item.data.values())))
    return out


CASES = [
    pytest.param(
        b"a,b\r\n1,2\r\n3,4\r\n",
        [("record", 1, 2, ("1", "2")), ("record", 2, 3, ("3", "4"))],
        id="crlf",
    ),
    pytest.param(
        b"\xef\xbb\xbfa,b\n1,2\n",
        [("record", 1, 2, ("1", "2"))],
        id="utf8-bom-not-in-first-column-name",
    ),
    pytest.param(
        b'a,b\n"x, y",2\n"multi\nline",3\n4,5\n',
        [
            ("record", 1, 2, ("x, y", "2")),
            ("record", 2, 3, ("multi\nline", "3")),
            ("record", 3, 5, ("4", "5")),
        ],
        id="quoted-comma-and-newline-keep-physical-lines",
    ),
    pytest.param(
        b"a,b\n1,2\n\n3,4\n",
        [("record", 1, 2, ("1", "2")), ("record", 2, 4, ("3", "4"))],
        id="blank-line-is-not-a-row",
    ),
    pytest.param(
        b"a,b\n1,2,3\n4,5\n6\n",
        [
            ("error", "FI101", 1, 2, None),
            ("record", 2, 3, ("4", "5")),
            ("error", "FI101", 3, 4, None),
        ],
        id="wrong-column-count-reported-and-reading-goes-on",
    ),
    pytest.param(
        b"a,b\n1,2\n3,caf\xe9\n5,6\n",
        [("record", 1, 2, ("1", "2")), ("error", "FI103", 2, 3, "b")],
        id="invalid-utf8-located-to-the-cell-then-stops",
    ),
    pytest.param(
        b"a,\xff\n1,2\n",
        [("error", "FI103", None, 1, None)],
        id="invalid-utf8-in-header",
    ),
    pytest.param(b"", [("error", "FI102", None, 1, None)], id="empty-file"),
    pytest.param(
        b'a,b\n"1"x,2\n3,4\n',
        [("error", "FI101", 1, 2, None), ("record", 2, 3, ("3", "4"))],
        id="malformed-quoting-is-a-row-error",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_csv_reader_cases(raw: bytes, expected: list[tuple[object, ...]]) -> None:
    """Each input yields exactly these records and errors, at these rows and lines."""
    assert _shape(_read(raw)) == expected


def test_missing_required_columns_is_one_error_before_any_record() -> None:
    """A header without a column the mapping reads gives one FI102 naming it, and no records."""
    items = _read(b"a,b\n1,2\n3,4\n", required_columns=("a", "nhs_number", "c"))
    assert len(items) == 1
    error = items[0]
    assert isinstance(error, ReadError)
    assert error.error_code == "FI102"
    assert error.location is not None
    assert (error.location.file, error.location.line) == ("t.csv", 1)
    assert "nhs_number, c" in error.message


def test_header_names_are_stripped_and_delimiter_option_used() -> None:
    """Header cells are trimmed, and a semicolon export reads with delimiter ';'."""
    items = _read(b" a ; b\n1;2\n", delimiter=";", required_columns=("a", "b"))
    assert isinstance(items[0], SourceRecord)
    assert items[0].data == {"a": "1", "b": "2"}


def test_latin1_file_from_tests_data_stops_at_first_bad_row() -> None:
    """A Latin-1 export (tests/data) is named at its first non-UTF-8 row, field and line."""
    raw = (DATA / "latin1.csv").read_bytes()
    shape = _shape(_read(raw))
    assert shape[-1] == ("error", "FI103", 2, 3, "family_name")
    assert [s[0] for s in shape] == ["record", "error"]


class _Endless(io.RawIOBase):
    """A stream that never ends: proves the reader does not read the whole input first."""

    def __init__(self, head: bytes, row: bytes) -> None:
        self._chunks: Iterator[bytes] = itertools.chain([head], itertools.repeat(row))
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


def test_csv_reader_streams() -> None:
    """Reading the first records of an endless CSV stream returns, having read little of it."""
    raw = _Endless(b"a,b\n", b"1,2\n")
    stream = io.BufferedReader(raw)
    first = list(itertools.islice(read_records(stream, name="s.csv", fmt="csv"), 5))
    assert [r.location.row for r in first] == [1, 2, 3, 4, 5]
    assert raw.served < 1_000_000
