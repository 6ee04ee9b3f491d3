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
as for the other readers (FI101 record, FI103 encoding, FI104 broken document, FI105 a record
past an input limit). The limits hold per record: per NDJSON line, per array item, per Bundle
entry when the document is streamed, else for the one document.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from itertools import chain, islice
from typing import Any, BinaryIO, cast

import ijson  # type: ignore[import-untyped]

from fhir_iapt.errors import Location, ReadError
from fhir_iapt.limits import DEFAULT_LIMITS, Limits
from fhir_iapt.sources._json import (
    BOM,
    Guard,
    ItemBuilder,
    Prefixed,
    Problem,
    Refused,
    TooDeep,
    TooLong,
    TooManyDigits,
    events,
    first_line,
    json_kind,
    peek,
    read_json,
    record_too_long,
    stopped,
)
from fhir_iapt.sources._record import SourceRecord, at_field, read_error


def read_fhir(
    stream: BinaryIO,
    *,
    name: str,
    options: Mapping[str, Any],
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[SourceRecord | ReadError]:
    """Yield one :class:`SourceRecord` per FHIR resource (see the module docstring)."""
    head, first = peek(stream)
    if first is None:
        return
    if first == ord("["):
        yield from read_json(
            _stream(head, stream), name=name, options={"layout": "array"}, limits=limits
        )
        return
    line, rest = _first_line_of(head, stream, limits.max_line_bytes)
    if _is_whole_json(line) or _next_line_opens_an_object(
        line, rest, stream, limits.max_line_bytes
    ):
        records = read_json(
            _stream(line + rest, stream), name=name, options={"layout": "ndjson"}, limits=limits
        )
        for item in records:
            if isinstance(item, SourceRecord) and _is_bundle(item.data):
                yield from _entries(item.data, item.location, item.size)
            else:
                yield item
        return
    body = line + rest
    yield from _document(Prefixed(body[3:] if body.startswith(BOM) else body, stream), name, limits)


def _stream(head: bytes, rest: BinaryIO) -> BinaryIO:
    return cast(BinaryIO, Prefixed(head, rest))


def _first_line_of(head: bytes, stream: BinaryIO, limit: int) -> tuple[bytes, bytearray]:
    """The bytes up to and including the first newline after the first significant byte; at
    most ``limit`` bytes past it (a longer first line is no NDJSON line: the bytes read so far
    are returned, and the input is read as one document, entry by entry)."""
    parts = [head]
    body = head[3:] if head.startswith(BOM) else head
    start = len(head) - len(body.lstrip(b" \t\r\n"))  # the first significant byte
    scanned = len(head)
    data = head
    while True:
        cut = data.find(b"\n", start)
        if cut >= 0:
            whole = b"".join(parts)
            end = scanned - len(data) + cut + 1
            return whole[:end], bytearray(whole[end:])
        if scanned - start > limit:
            return b"".join(parts), bytearray()
        data = stream.read(65536)
        if not data:
            return b"".join(parts), bytearray()
        parts.append(data)
        scanned += len(data)
        start = 0


def _next_line_opens_an_object(line: bytes, rest: bytearray, stream: BinaryIO, limit: int) -> bool:
    """A broken first NDJSON line: the next line that is not blank also opens an object at its
    very start (in a pretty-printed document the second line is indented or a key). Reads
    ahead (into ``rest``) only as far as that line's first significant byte, and at most
    ``limit`` bytes."""
    if line.strip().removeprefix(BOM) == b"{" or not line.endswith(b"\n"):
        return False
    scanned = 0
    while True:
        tail = bytes(rest[scanned:])
        stripped = tail.lstrip()
        if stripped:
            at = scanned + len(tail) - len(stripped)
            return stripped[:1] == b"{" and (at == 0 or rest[at - 1 : at] == b"\n")
        scanned = len(rest)
        if scanned > limit:
            return False
        chunk = stream.read(65536)
        if not chunk:
            return False
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


def _entries(
    bundle: dict[str, Any], at: Location, size: int = 0
) -> Iterator[SourceRecord | ReadError]:
    """The entries of a Bundle read whole (``size``: its bytes, shared among them)."""
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        yield read_error(
            "Bundle.entry must be an array", replace(at, element="Bundle.entry"), error_code="FI101"
        )
        return
    share = size // max(len(entries), 1)
    for index, item in enumerate(entries):
        yield _entry(item, index, at, share)


def _entry(item: Any, index: int, at: Location, size: int = 0) -> SourceRecord:
    element = f"Bundle.entry[{index}].resource"
    where = Location(file=at.file, row=index + 1, line=at.line, element=element)
    resource = item.get("resource") if isinstance(item, dict) else None
    return SourceRecord(resource, where, size)


def _document(stream: Prefixed, name: str, limits: Limits) -> Iterator[SourceRecord | ReadError]:
    """One JSON document: a Bundle's entries (streamed when ``resourceType`` comes first, as
    FHIR JSON writes it), or the one resource (then the document is the record, and the
    line-length limit applies to it whole)."""
    at = Location(file=name, row=1)
    guard = Guard(stream, limits)
    stream_events = events(guard)
    problem: Problem | None = None
    try:
        opening = list(islice(stream_events, 3))
        if opening == [
            ("start_map", None, 1),
            ("map_key", "resourceType", 1),
            ("string", "Bundle", 1),
        ]:
            yield from _streamed_entries(stream_events, guard, at)
            return
        whole = ijson.ObjectBuilder()
        for event, value, _depth in chain(opening, stream_events):
            if problem is not None:
                continue
            if event == "invalid":
                problem = value
            elif guard.position > guard.span_limit:
                problem = record_too_long(
                    limits,
                    "the JSON document (not a Bundle that names "
                    "its resourceType first, read entry by entry)",
                )
            else:
                whole.event(event, value)
    except (
        ijson.JSONError,
        UnicodeDecodeError,
        TooManyDigits,
        TooDeep,
        TooLong,
        ValueError,
    ) as exc:
        yield _broken(exc, at, limits)
        return
    if problem is not None:
        yield read_error(problem.message, at_field(at, problem.field), error_code=problem.code)
        return
    value = whole.value
    if _is_bundle(value):
        yield from _entries(value, at, guard.position)
    elif isinstance(value, dict):
        yield SourceRecord(value, at, guard.position)
    else:
        yield read_error(
            f"the document is a JSON {json_kind(value)}, not an object", at, error_code="FI101"
        )


_OPEN = ("start_map", "start_array")
_CLOSE = ("end_map", "end_array")


def _streamed_entries(
    stream_events: Iterator[tuple[str, Any, int]], guard: Guard, at: Location
) -> Iterator[SourceRecord | ReadError]:
    """The entries of a Bundle whose ``resourceType`` came first, one record each (an entry
    past a limit is refused, located, and the next one read)."""
    item: ItemBuilder | None = None
    key: Any = None
    entry_value_next = False
    refused: Problem | None = None
    index = 0
    read = 0  # bytes read when the last entry was yielded
    for event, value, depth in stream_events:
        if item is not None:
            item.feed(event, value)
            if depth == 2 and event in _CLOSE:  # the entry's own container closed
                yield _built_entry(item.result(), index, at, guard.position - read)
                item, index, read = None, index + 1, guard.position
            continue
        if event == "invalid":
            if depth == 2 and key == "entry":  # a scalar entry past a limit: refused below
                refused = value
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
            item = ItemBuilder(guard, event, value, what="the Bundle entry")
        elif depth == 2 and event not in _OPEN and event not in _CLOSE:
            # a scalar entry: the map stage rejects it, located
            yield _built_entry(Refused(refused) if refused else value, index, at)
            refused, index = None, index + 1


def _built_entry(value: Any, index: int, at: Location, size: int = 0) -> SourceRecord | ReadError:
    if not isinstance(value, Refused):
        return _entry(value, index, at, size)
    where = Location(
        file=at.file, row=index + 1, line=at.line, element=f"Bundle.entry[{index}].resource"
    )
    problem = value.problem
    message = problem.message.replace("the record", "the Bundle entry", 1)
    return read_error(message, at_field(where, problem.field), error_code=problem.code)


def _broken(exc: Exception, at: Location, limits: Limits) -> ReadError:
    signal = stopped(exc, limits, "the JSON document")
    if signal is not None:
        return read_error(signal[0], at, error_code=signal[1])
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
