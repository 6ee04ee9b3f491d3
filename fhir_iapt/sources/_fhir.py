"""FHIR JSON reader: resources from one resource, a Bundle, a JSON array, or NDJSON.

One source record per resource, in input order, streamed:

- a JSON array (first significant byte ``[``): item by item, as the JSON reader reads arrays
  (``$[i]``);
- NDJSON (the first line is a whole JSON value): line by line, as the JSON reader reads NDJSON
  (row and physical line); a line holding a Bundle gives one record per entry;
- otherwise one JSON document: a Bundle gives one record per ``entry[i].resource``
  (``Bundle.entry[i].resource``), streamed entry by entry with ijson; any other resource is one
  record.

What is *in* each record (is it the resource the target wants?) is for the map stage to say; an
entry without a ``resource`` object is still a record (the map stage rejects it with its place).
Parser messages are reduced to their first line so no patient value is quoted back. Error codes
as for the other readers (FI101 record, FI103 encoding, FI104 broken document).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from itertools import islice
from typing import Any, BinaryIO, cast

import ijson  # type: ignore[import-untyped]

from fhir_iapt.errors import Location, ReadError
from fhir_iapt.limits import MAX_DEPTH, MAX_NUMBER_DIGITS
from fhir_iapt.sources._json import (
    BOM,
    Prefixed,
    TooDeep,
    TooManyDigits,
    events,
    first_line,
    json_kind,
    peek,
    read_json,
)
from fhir_iapt.sources._record import SourceRecord, read_error


def read_fhir(
    stream: BinaryIO, *, name: str, options: Mapping[str, Any]
) -> Iterator[SourceRecord | ReadError]:
    """Yield one :class:`SourceRecord` per FHIR resource (see the module docstring)."""
    head, first = peek(stream)
    if first is None:
        return
    if first == ord("["):
        yield from read_json(_stream(head, stream), name=name, options={"layout": "array"})
        return
    line, rest = _first_line_of(head, stream)
    if _is_whole_json(line) or _next_line_opens_an_object(line, rest, stream):
        records = read_json(_stream(line + rest, stream), name=name, options={"layout": "ndjson"})
        for item in records:
            if isinstance(item, SourceRecord) and _is_bundle(item.data):
                yield from _entries(item.data, item.location)
            else:
                yield item
        return
    body = line + rest
    yield from _document(Prefixed(body[3:] if body.startswith(BOM) else body, stream), name)


def _stream(head: bytes, rest: BinaryIO) -> BinaryIO:
    return cast(BinaryIO, Prefixed(head, rest))


def _first_line_of(head: bytes, stream: BinaryIO) -> tuple[bytes, bytearray]:
    """The bytes up to and including the first newline after the first significant byte."""
    data = head
    body = head[3:] if head.startswith(BOM) else head
    start = len(head) - len(body.lstrip(b" \t\r\n"))  # the first significant byte
    while True:
        cut = data.find(b"\n", start)
        if cut >= 0:
            return data[: cut + 1], bytearray(data[cut + 1 :])
        chunk = stream.read(65536)
        if not chunk:
            return data, bytearray()
        data += chunk


def _next_line_opens_an_object(line: bytes, rest: bytearray, stream: BinaryIO) -> bool:
    """A broken first NDJSON line: the next line that is not blank also opens an object at its
    very start (in a pretty-printed document the second line is indented or a key)."""
    if line.strip().removeprefix(BOM) == b"{":
        return False
    while True:
        complete = bytes(rest).split(b"\n")
        for candidate in complete[:-1]:
            if candidate.strip():
                return candidate.startswith(b"{")
        chunk = stream.read(65536)
        if not chunk:
            return complete[-1].startswith(b"{")
        rest += chunk


def _is_whole_json(line: bytes) -> bool:
    text = line[3:] if line.startswith(BOM) else line
    try:
        json.loads(text, parse_float=Decimal)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, NaN
        return False
    except RecursionError:  # a whole line, nested too deeply: the NDJSON reader reports it
        return True
    return True


def _is_bundle(data: Any) -> bool:
    return isinstance(data, dict) and data.get("resourceType") == "Bundle"


def _entries(bundle: dict[str, Any], at: Location) -> Iterator[SourceRecord | ReadError]:
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        yield read_error(
            "Bundle.entry must be an array", replace(at, element="Bundle.entry"), error_code="FI101"
        )
        return
    for index, item in enumerate(entries):
        yield _entry(item, index, at)


def _entry(item: Any, index: int, at: Location) -> SourceRecord:
    element = f"Bundle.entry[{index}].resource"
    where = Location(file=at.file, row=index + 1, line=at.line, element=element)
    resource = item.get("resource") if isinstance(item, dict) else None
    return SourceRecord(resource, where)


def _document(stream: Prefixed, name: str) -> Iterator[SourceRecord | ReadError]:
    """One JSON document: a Bundle's entries (streamed when ``resourceType`` comes first, as
    FHIR JSON writes it), or the one resource."""
    at = Location(file=name, row=1)
    stream_events = events(stream)
    try:
        opening = list(islice(stream_events, 3))
        if opening == [
            ("start_map", None, 1),
            ("map_key", "resourceType", 1),
            ("string", "Bundle", 1),
        ]:
            yield from _streamed_entries(stream_events, at)
            return
        whole = ijson.ObjectBuilder()
        for event, value, _depth in opening:
            whole.event(event, value)
        for event, value, _depth in stream_events:
            whole.event(event, value)
    except (ijson.JSONError, UnicodeDecodeError, TooManyDigits, TooDeep, ValueError) as exc:
        yield _broken(exc, at)
        return
    value = whole.value
    if _is_bundle(value):
        yield from _entries(value, at)
    elif isinstance(value, dict):
        yield SourceRecord(value, at)
    else:
        yield read_error(
            f"the document is a JSON {json_kind(value)}, not an object", at, error_code="FI101"
        )


_OPEN = ("start_map", "start_array")
_CLOSE = ("end_map", "end_array")


def _streamed_entries(
    stream_events: Iterator[tuple[str, Any, int]], at: Location
) -> Iterator[SourceRecord | ReadError]:
    """The entries of a Bundle whose ``resourceType`` came first, one record each."""
    builder: Any = None
    key: Any = None
    entry_value_next = False
    index = 0
    for event, value, depth in stream_events:
        if builder is not None:
            builder.event(event, value)
            if depth == 2:  # the entry's own container closed
                yield _entry(builder.value, index, at)
                builder, index = None, index + 1
            continue
        if depth == 1 and event == "map_key":
            key, entry_value_next = value, value == "entry"
            continue
        if entry_value_next:  # the value of "entry": it must be an array
            entry_value_next = False
            if event != "start_array":
                yield read_error(
                    "Bundle.entry must be an array",
                    replace(at, element="Bundle.entry"),
                    error_code="FI101",
                )
                return
            continue
        if key != "entry" or depth < 2:
            continue
        if depth == 3 and event in _OPEN:
            builder = ijson.ObjectBuilder()
            builder.event(event, value)
        elif depth == 2 and event not in _OPEN and event not in _CLOSE:
            yield _entry(value, index, at)  # a scalar entry: the map stage rejects it, located
            index += 1


def _broken(exc: Exception, at: Location) -> ReadError:
    if isinstance(exc, TooDeep):
        return read_error(
            f"the JSON document nests arrays or objects deeper than {MAX_DEPTH}; reading stops "
            "here",
            at,
            error_code="FI104",
        )
    if isinstance(exc, TooManyDigits):
        return read_error(
            f"the JSON document holds a number of more than {MAX_NUMBER_DIGITS} digits; reading "
            "stops here",
            at,
            error_code="FI104",
        )
    if isinstance(exc, UnicodeDecodeError):
        return read_error("the bytes are not UTF-8; reading stops here", at, error_code="FI103")
    if not isinstance(exc, ijson.JSONError):  # ValueError: a number past int()'s digit limit
        return read_error(
            "the JSON document is broken (a number too long to read); reading stops here",
            at,
            error_code="FI104",
        )
    reason = first_line(exc)
    if "UTF8" in reason or "UTF-8" in reason:
        message, code = "the bytes are not UTF-8; reading stops here", "FI103"
    elif "premature EOF" in reason or "Incomplete" in reason:
        message, code = "the JSON document is cut short; reading stops here", "FI104"
    else:
        message, code = f"the JSON document is broken ({reason}); reading stops here", "FI104"
    return read_error(message, at, error_code=code)


__all__ = ["read_fhir"]
