"""The JSON reader: arrays streamed item by item, NDJSON line by line, bad input located."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from decimal import Decimal

import pytest

from fhir_iapt.errors import ReadError
from fhir_iapt.sources import SourceRecord, read_records


def _shape(raw: bytes, **options: object) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for item in read_records(io.BytesIO(raw), name="t.json", fmt="json", options=options):
        loc = item.location
        assert loc is not None
        if isinstance(item, ReadError):
            out.append(("error", item.error_code, loc.row, loc.line, loc.element))
        else:
            out.append(("record", loc.row, loc.line, loc.element, item.data))
    return out


CASES = [
    pytest.param(
        b'[{"a": 1}, {"b": 2.5}]',
        [("record", 1, None, "$[0]", {"a": 1}), ("record", 2, None, "$[1]", {"b": Decimal("2.5")})],
        id="array-decimals-exact",
    ),
    pytest.param(
        b'\xef\xbb\xbf\r\n [{"a": 1}]',
        [("record", 1, None, "$[0]", {"a": 1})],
        id="array-with-bom-and-crlf",
    ),
    pytest.param(
        b'[{"a": 1}, 7, "x", {"b": 2}]',
        [
            ("record", 1, None, "$[0]", {"a": 1}),
            ("error", "FI101", 2, None, "$[1]"),
            ("error", "FI101", 3, None, "$[2]"),
            ("record", 4, None, "$[3]", {"b": 2}),
        ],
        id="array-items-that-are-not-objects",
    ),
    pytest.param(
        b'[{"a": 1}, {"b": 2',
        [("record", 1, None, "$[0]", {"a": 1}), ("error", "FI104", 2, None, "$[1]")],
        id="array-cut-short",
    ),
    pytest.param(
        b'[{"a": 1}} {"b": 2}]',
        [("record", 1, None, "$[0]", {"a": 1}), ("error", "FI104", 2, None, "$[1]")],
        id="array-broken",
    ),
    pytest.param(
        b'[{"a": 1}, {"b": "caf\xe9"}]',
        [("record", 1, None, "$[0]", {"a": 1}), ("error", "FI103", 2, None, "$[1]")],
        id="array-invalid-utf8",
    ),
    pytest.param(
        b'{"a": 1}\r\n\r\n{"b": 2}\n',
        [("record", 1, 1, None, {"a": 1}), ("record", 2, 3, None, {"b": 2})],
        id="ndjson-crlf-blank-lines-keep-line-numbers",
    ),
    pytest.param(
        b'{"a": 1}\n[1, 2]\n{"b": \n{"c": NaN}\n{"d": 4}\n',
        [
            ("record", 1, 1, None, {"a": 1}),
            ("error", "FI101", 2, 2, None),
            ("error", "FI101", 3, 3, None),
            ("error", "FI101", 4, 4, None),
            ("record", 5, 5, None, {"d": 4}),
        ],
        id="ndjson-bad-lines-reported-and-reading-goes-on",
    ),
    pytest.param(
        b'{"a": 1}\n{"b": "\xff"}\n{"c": 3}\n',
        [("record", 1, 1, None, {"a": 1}), ("error", "FI103", 2, 2, None)],
        id="ndjson-invalid-utf8-stops",
    ),
    pytest.param(b"  \n", [], id="empty"),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_json_reader_cases(raw: bytes, expected: list[tuple[object, ...]]) -> None:
    """Each input yields exactly these records and errors, at these rows, lines and paths."""
    assert _shape(raw) == expected


def test_layout_option_forces_ndjson() -> None:
    """layout: ndjson reads a line starting with '[' as a (bad) record, not as an array."""
    assert _shape(b'[{"a": 1}]\n{"b": 2}\n', layout="ndjson") == [
        ("error", "FI101", 1, 1, None),
        ("record", 2, 2, None, {"b": 2}),
    ]


def test_messages_do_not_quote_the_input() -> None:
    """Parser messages are cut to their first line: no patient data from the input."""
    items = list(read_records(io.BytesIO(b'[{"n": "9990000018"} {"x"'), name="t.json", fmt="json"))
    error = items[-1]
    assert isinstance(error, ReadError)
    assert "9990000018" not in str(error)
    assert "9990000018" not in str(error.to_operation_outcome())


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


@pytest.mark.parametrize(
    ("head", "item"),
    [(b"[", b'{"visitId": "x"},\n'), (b"", b'{"visitId": "x"}\n')],
    ids=["array", "ndjson"],
)
def test_json_reader_streams(head: bytes, item: bytes) -> None:
    """The first records of an endless JSON stream come back without reading it all."""
    raw = _Endless(head, item)
    records = itertools.islice(read_records(io.BufferedReader(raw), name="s.json", fmt="json"), 5)
    assert [r.location.row for r in records if isinstance(r, SourceRecord)] == [1, 2, 3, 4, 5]
    assert raw.served < 1_000_000
