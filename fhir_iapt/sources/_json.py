"""JSON reader: a top-level array streamed item by item (ijson), or NDJSON line by line.

``layout: auto`` (the default) looks at the first byte that is not white space (after any UTF-8
byte-order mark): ``[`` means an array, anything else NDJSON. Numbers with a fraction become
:class:`~decimal.Decimal` in both layouts. Parser messages are reduced to their first line: the
parser would otherwise quote the input (patient data) back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, BinaryIO, NoReturn

import ijson  # type: ignore[import-untyped]

from fhir_iapt.errors import Location, ReadError
from fhir_iapt.limits import MAX_DEPTH, MAX_NUMBER_DIGITS
from fhir_iapt.sources._record import SourceRecord, read_error

BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"


class TooManyDigits(Exception):
    """Raised from a guarded read: a run of digits longer than ``MAX_NUMBER_DIGITS``."""


class TooDeep(Exception):
    """Raised by :func:`events`: arrays and objects nested deeper than ``MAX_DEPTH``."""


_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})


def events(stream: Any) -> Iterator[tuple[str, Any, int]]:
    """``(event, value, depth)`` of one JSON text, numbers as Decimal/int, in time and memory
    linear in the input: ijson's ``basic_parse`` (no path prefixes, which cost O(depth) per
    event), digit runs checked before parsing, nesting past ``MAX_DEPTH`` refused (TooDeep).
    ``depth`` counts the containers open after the event (a ``start_map`` of the top object
    has depth 1, its ``end_map`` depth 0)."""
    depth = 0
    for event, value in ijson.basic_parse(DigitGuard(stream), use_float=False):
        if event in _OPEN:
            depth += 1
            if depth > MAX_DEPTH:
                raise TooDeep
        elif event in _CLOSE:
            depth -= 1
        yield event, value, depth


def build_items(stream: Any, level: int) -> Iterator[Any]:
    """Every value whose container opens at ``level`` (1: a top-level array's items), built
    one at a time (constant memory between them)."""
    builder: Any = None
    for event, value, depth in events(stream):
        if builder is not None:
            builder.event(event, value)
            if depth == level:  # the item's own container just closed
                yield builder.value
                builder = None
        elif depth == level + 1 and event in _OPEN:
            builder = ijson.ObjectBuilder()
            builder.event(event, value)
        elif depth == level and event not in _OPEN and event not in _CLOSE and (event != "map_key"):
            yield value  # a scalar item


_DIGITS = b"0123456789"
_LONG_DIGITS = re.compile(rb"[0-9]{%d,}" % (MAX_NUMBER_DIGITS + 1))


class DigitGuard:
    """A read()-able stream that refuses a digit run past the limit before a parser sees it
    (a run split across two reads is still seen whole: its tail is carried)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._carry = b""

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._inner.read(size)
        probe = self._carry + chunk
        if _LONG_DIGITS.search(probe):
            raise TooManyDigits
        self._carry = probe[len(probe.rstrip(_DIGITS)) :]
        return chunk


class Prefixed:
    """A read()-able stream that first returns ``head`` (bytes already peeked), then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)


def peek(stream: BinaryIO) -> tuple[bytes, int | None]:
    """Read up to the first significant byte; return what was read and that byte (or None).

    Linear in the white space before it: each chunk read is scanned once.
    """
    parts: list[bytes] = []
    head = b""
    while len(head) < 3:  # enough to see a UTF-8 byte-order mark
        chunk = stream.read(64)
        if not chunk:
            break
        head += chunk
    parts.append(head)
    scan = head[3:] if head.startswith(BOM) else head
    while True:
        stripped = scan.lstrip(_WHITESPACE)
        if stripped:
            return b"".join(parts), stripped[0]
        scan = stream.read(65536)
        if not scan:
            return b"".join(parts), None
        parts.append(scan)


def read_json(
    stream: BinaryIO, *, name: str, options: Mapping[str, Any]
) -> Iterator[SourceRecord | ReadError]:
    """Yield one :class:`SourceRecord` per JSON object, or a ReadError value."""
    layout = str(options.get("layout", "auto"))
    head, first = peek(stream)
    if first is None:
        return
    if layout == "array" or (layout == "auto" and first == ord("[")):
        body = head[3:] if head.startswith(BOM) else head
        yield from _array(Prefixed(body, stream), name=name)
    else:
        yield from _ndjson(Prefixed(head, stream), name=name)


def first_line(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _array(stream: Prefixed, *, name: str) -> Iterator[SourceRecord | ReadError]:
    index = 0
    items = build_items(stream, 1)
    while True:
        at = Location(file=name, row=index + 1, element=f"$[{index}]")
        try:
            item = next(items)
        except StopIteration:
            return
        except ijson.JSONError as exc:
            reason = first_line(exc)
            if "UTF8" in reason or "UTF-8" in reason:
                message, code = "the bytes are not UTF-8; reading stops here", "FI103"
            elif "premature EOF" in reason:
                message, code = "the JSON array is cut short; reading stops here", "FI104"
            else:
                message, code = f"the JSON array is broken ({reason}); reading stops here", "FI104"
            yield read_error(message, at, error_code=code)
            return
        except TooDeep:
            yield read_error(
                f"the JSON array nests arrays or objects deeper than {MAX_DEPTH}; reading stops "
                "here",
                at,
                error_code="FI104",
            )
            return
        except TooManyDigits:
            yield read_error(
                f"the JSON array holds a number of more than {MAX_NUMBER_DIGITS} digits; reading "
                "stops here",
                at,
                error_code="FI104",
            )
            return
        except UnicodeDecodeError:  # the C backend's decoder, for bytes such as ED A0 80
            yield read_error("the bytes are not UTF-8; reading stops here", at, error_code="FI103")
            return
        except (ValueError, RecursionError) as exc:  # a number past int()'s digit limit, depth
            reason = (
                "a number has more digits than any value it could hold"
                if isinstance(exc, ValueError)
                else "arrays or objects nest too deeply to read"
            )
            yield read_error(
                f"the JSON array is broken ({reason}); reading stops here", at, error_code="FI104"
            )
            return
        index += 1
        if isinstance(item, dict):
            yield SourceRecord(item, at)
        else:
            yield read_error(
                f"the array item is a JSON {json_kind(item)}, not an object",
                at,
                error_code="FI101",
            )


def json_kind(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages (also used by the map stage)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _no_constant(name: str) -> NoReturn:
    raise ValueError(name)


def _lines(stream: Prefixed) -> Iterator[bytes]:
    """Lines ending at ``\\n`` only (NDJSON), in time linear in the input however long a line."""
    parts: list[bytes] = []  # the pieces of a line not yet ended, joined once when it ends
    while True:
        chunk = stream.read(65536)
        if not chunk:
            if parts:
                yield b"".join(parts)
            return
        start = 0
        while (cut := chunk.find(b"\n", start)) >= 0:
            parts.append(chunk[start:cut])
            yield b"".join(parts)
            parts = []
            start = cut + 1
        if start < len(chunk):
            parts.append(chunk[start:])


def _ndjson(stream: Prefixed, *, name: str) -> Iterator[SourceRecord | ReadError]:
    row = 0
    for line_number, raw in enumerate(_lines(stream), start=1):
        data = raw[3:] if line_number == 1 and raw.startswith(BOM) else raw
        if not data.strip():
            continue
        row += 1
        at = Location(file=name, row=row, line=line_number)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            yield read_error("the bytes are not UTF-8; reading stops here", at, error_code="FI103")
            return
        try:
            value = json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            yield read_error(
                f"the line is not valid JSON ({exc.msg} at column {exc.colno})",
                at,
                error_code="FI101",
            )
            continue
        except ValueError as exc:
            # parse_constant refuses NaN/Infinity; int() refuses numbers over its digit limit
            reason = (
                "a number has more digits than any value it could hold"
                if "digits" in str(exc)
                else "NaN and Infinity are not JSON numbers"
            )
            yield read_error(f"the line is not valid JSON ({reason})", at, error_code="FI101")
            continue
        except RecursionError:
            yield read_error(
                "the line nests JSON arrays or objects too deeply to read", at, error_code="FI101"
            )
            continue
        if isinstance(value, dict):
            yield SourceRecord(value, at)
        else:
            yield read_error(
                f"the line is a JSON {json_kind(value)}, not an object", at, error_code="FI101"
            )


__all__ = [
    "BOM",
    "DigitGuard",
    "Prefixed",
    "TooDeep",
    "TooManyDigits",
    "build_items",
    "events",
    "first_line",
    "json_kind",
    "peek",
    "read_json",
]
