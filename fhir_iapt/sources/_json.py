"""JSON reader: a top-level array streamed item by item (ijson), or NDJSON line by line.

``layout: auto`` (the default) looks at the first byte that is not white space (after any UTF-8
byte-order mark): ``[`` means an array, anything else NDJSON. Numbers with a fraction become
:class:`~decimal.Decimal` in both layouts. Parser messages are reduced to their first line: the
parser would otherwise quote the input (patient data) back.

The input limits (:mod:`fhir_iapt.limits`) hold in both layouts. A record past the field or
line length is rejected (FI105) and the next one read: an NDJSON line past the line length is
skipped to its newline without being held, an array item stops being built once it passes it
(the parser reads on to the item's end; only a single token or gap past the limit, which the
parser would have to hold whole, stops reading). Nesting and digits as before: FI101 for an
NDJSON line, FI104 (reading stops) in an array. A ``\\u`` escape of a lone UTF-16 surrogate
(``"\\ud800"``: valid JSON, but not Unicode text, so no writer could write it) rejects its
record (FI101): in an array the guard below replaces the escape by ``\\uffff`` before ijson sees
it (ijson would turn a lone high surrogate into ``?`` silently, and die on a lone low one), and
the string holding it marks its item refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, BinaryIO, NoReturn

import ijson  # type: ignore[import-untyped]

from fhir_iapt.errors import Location, ReadError
from fhir_iapt.limits import DEFAULT_LIMITS, ENV_VARS, Limits
from fhir_iapt.sources._record import (
    OVER_LIMIT,
    SourceRecord,
    at_field,
    digit_run_at,
    field_name,
    read_error,
)

BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
_READ = 65536


class TooManyDigits(Exception):
    """Raised from a guarded read: a run of digits longer than ``max_number_digits``."""


class TooDeep(Exception):
    """Raised by :func:`events`: arrays and objects nested deeper than ``max_depth``."""


class TooLong(Exception):
    """Raised from a guarded read: more than ``max_line_bytes`` without a parser event (one
    token the parser would have to hold whole, or a gap of white space)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one record is refused, found while parsing it (the parser reads on)."""

    message: str
    code: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """An item :func:`build_items` did not build, and why."""

    problem: Problem


_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})
#: The character a lone surrogate escape is replaced by (a noncharacter: never in an export).
LONE_MARK = "\uffff"


def lone_surrogate(where: str) -> Problem:
    return Problem(
        f"{where} holds a \\u escape of a lone UTF-16 surrogate, which is not Unicode text",
        "FI101",
    )


def field_too_long(limits: Limits, field: object) -> Problem:
    return Problem(
        f"a value is longer than {limits.max_field_chars:,} characters (the field-length "
        f"limit, {ENV_VARS['max_field_chars']})",
        OVER_LIMIT,
        field_name(field),
    )


def record_too_long(limits: Limits, what: str) -> Problem:
    return Problem(
        f"{what} is longer than {limits.max_line_bytes:,} bytes (the line-length limit, "
        f"{ENV_VARS['max_line_bytes']}); it is skipped",
        OVER_LIMIT,
    )


def events(guard: Guard) -> Iterator[tuple[str, Any, int]]:
    """``(event, value, depth)`` of one JSON text, numbers as Decimal/int, in time and memory
    linear in the input: ijson's ``basic_parse`` (no path prefixes, which cost O(depth) per
    event) over ``guard`` (digit runs, lone surrogates and gaps checked before parsing),
    nesting past ``max_depth`` refused (TooDeep). ``depth`` counts the containers open after
    the event (a ``start_map`` of the top object has depth 1, its ``end_map`` depth 0).

    A value past ``max_field_chars``, or holding a replaced lone surrogate, is preceded by an
    ``("invalid", Problem, depth)`` event: the consumer refuses the record holding it."""
    limits = guard.limits
    max_depth = limits.max_depth
    max_field = limits.max_field_chars
    depth = 0
    key: Any = None
    for event, value in ijson.basic_parse(guard, use_float=False):
        guard.mark = guard.position
        if event == "map_key" or event == "string":
            if len(value) > max_field:
                yield "invalid", field_too_long(limits, key if event == "string" else None), depth
            elif guard.lone and LONE_MARK in value:
                where = lone_surrogate("the record")
                yield "invalid", Problem(where.message, where.code, field_name(key)), depth
            if event == "map_key":
                key = value
        elif event == "start_map" or event == "start_array":
            depth += 1
            if depth > max_depth:
                raise TooDeep
        elif event == "end_map" or event == "end_array":
            depth -= 1
        yield event, value, depth


class ItemBuilder:
    """Builds one item (array item, Bundle entry) from its events, or notes why it is refused:
    a problem event inside it, or its bytes passing the line-length limit (then it stops being
    built, so memory stays bounded, and the parser reads on to its end)."""

    def __init__(self, guard: Guard, event: str, value: Any, *, what: str) -> None:
        self._guard = guard
        self._start = guard.position
        self._what = what
        self.problem: Problem | None = None
        self._builder: Any = ijson.ObjectBuilder()
        self._builder.event(event, value)

    def feed(self, event: str, value: Any) -> None:
        if self.problem is not None:
            return
        if event == "invalid":
            self.problem, self._builder = value, None
            return
        if self._guard.position - self._start > self._guard.span_limit:
            self.problem = record_too_long(self._guard.limits, self._what)
            self._builder = None
            return
        self._builder.event(event, value)

    def result(self) -> Any:
        """The item's value, or :class:`Refused`."""
        return Refused(self.problem) if self.problem is not None else self._builder.value


def build_items(guard: Guard, level: int, *, what: str = "the array item") -> Iterator[Any]:
    """Every value whose container opens at ``level`` (1: a top-level array's items), built
    one at a time (constant memory between them); a refused one as :class:`Refused`. (What
    :class:`ItemBuilder` does, inlined: this loop runs once per parser event.)"""
    limit = guard.span_limit
    builder: Any = None
    add: Any = None  # builder.event while the item is being built
    in_item = False
    start = 0
    problem: Problem | None = None
    for event, value, depth in events(guard):
        if in_item:
            if add is not None:
                if event == "invalid":
                    problem, add = value, None
                elif guard.position - start > limit:
                    problem, add = record_too_long(guard.limits, what), None
                else:
                    add(event, value)
            if depth == level and event in _CLOSE:  # the item's own container just closed
                yield Refused(problem) if problem is not None else builder.value
                in_item, builder, add, problem = False, None, None, None
        elif depth == level + 1 and event in _OPEN:
            in_item, start = True, guard.position
            builder = ijson.ObjectBuilder()
            add = builder.event
            add(event, value)
        elif depth == level and event == "invalid":
            problem = value
        elif depth == level and event not in _OPEN and event not in _CLOSE and event != "map_key":
            yield Refused(problem) if problem is not None else value  # a scalar item
            problem = None


_DIGITS = b"0123456789"
#: Any \u escape of a UTF-16 surrogate (paired or not): the cheap test before the exact one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: One escape sequence: a surrogate pair (group 1), any other \u escape (group 2), or a
#: backslash and the character it escapes. Scanned left to right from a point between escapes,
#: the matches are exactly the input's escapes (so ``\\\\ud800`` is a backslash, then text).
_ESCAPE = re.compile(
    rb"\\(?:(u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})|(u[0-9a-fA-F]{4})|.)",
    re.DOTALL,
)
_SURROGATE_HEX = re.compile(rb"u[dD][89a-fA-F]")
#: Bytes kept back at the end of a read when they may hold the start of an escape.
_HOLD = 12


class Guard:
    """A read()-able stream over ``inner`` that checks bytes before a parser sees them: a digit
    run past the limit (TooManyDigits, seen whole across reads), more than the line length
    without a parser event (TooLong; :func:`events` sets ``mark``), and lone surrogate escapes
    (replaced by ``\\uffff``, counted in ``lone``). ``position`` counts the bytes handed on."""

    def __init__(self, inner: Any, limits: Limits = DEFAULT_LIMITS) -> None:
        self._inner = inner
        self.limits = limits
        self._digits = limits.max_number_digits
        self._gap = limits.max_line_bytes
        # reads of an eighth of the line length, so a record's span is known to within that
        self._read = max(64, min(_READ, limits.max_line_bytes // 8))
        #: a record is refused when its measured span passes this (never one within the
        #: limit: the measure can overstate a span by one read)
        self.span_limit = limits.max_line_bytes + self._read
        self._digit_tail = b""
        self._held = b""
        self.position = 0
        self.mark = 0
        self.lone = 0
        self._stop: Exception | None = None

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        if self._stop is not None:
            raise self._stop
        want = self._read if size < 0 else min(size, self._read)
        while True:
            chunk: bytes = self._inner.read(want)
            if chunk:
                scan = self._digit_tail + chunk
                run = digit_run_at(scan, self._digits)
                if run >= 0:
                    # the bytes before the run go to the parser first, so the items they
                    # complete are still read; the next read raises
                    cut = run - len(self._digit_tail)
                    if cut <= 0:
                        raise TooManyDigits
                    self._stop = TooManyDigits()
                    chunk = chunk[:cut]
                self._digit_tail = scan[len(scan.rstrip(_DIGITS)) :]
            out = self._surrogates(chunk, eof=not chunk)
            if not out and self._stop is not None:
                raise self._stop
            if out or not chunk:
                if self.position - self.mark > self._gap:
                    raise TooLong
                self.position += len(out)
                return out

    def _surrogates(self, chunk: bytes, *, eof: bool) -> bytes:
        """``chunk`` (after the bytes held back last time) with each lone surrogate escape
        replaced; bytes that may begin an escape not yet whole are held back (``_held``
        always starts between escapes)."""
        pending = self._held + chunk if self._held else chunk
        if not _SURROGATE_ESCAPE.search(pending) and (eof or b"\\" not in pending[-_HOLD:]):
            self._held = b""
            return pending
        cut = len(pending) if eof else max(len(pending) - _HOLD, 0)
        buffer: bytearray | None = None
        for match in _ESCAPE.finditer(pending):
            if match.start() >= cut:
                break
            if match.end() > cut:  # an escape across the cut: hold it back whole
                cut = match.start()
                break
            single = match.start(2)
            if single >= 0 and _SURROGATE_HEX.match(pending, single):
                if buffer is None:
                    buffer = bytearray(pending)
                buffer[single + 1 : single + 5] = b"ffff"
                self.lone += 1
        out = bytes(buffer) if buffer is not None else pending
        self._held = out[cut:]
        return out[:cut]


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
    stream: BinaryIO,
    *,
    name: str,
    options: Mapping[str, Any],
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[SourceRecord | ReadError]:
    """Yield one :class:`SourceRecord` per JSON object, or a ReadError value."""
    layout = str(options.get("layout", "auto"))
    head, first = peek(stream)
    if first is None:
        return
    if layout == "array" or (layout == "auto" and first == ord("[")):
        body = head[3:] if head.startswith(BOM) else head
        yield from _array(Prefixed(body, stream), name=name, limits=limits)
    else:
        yield from _ndjson(Prefixed(head, stream), name=name, limits=limits)


def first_line(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def stopped(exc: BaseException, limits: Limits, what: str) -> tuple[str, str] | None:
    """The message and code for a guard's signal that ends reading ``what`` ("the JSON array",
    "the JSON document"), or None for any other exception."""
    if isinstance(exc, TooDeep):
        return (
            f"{what} nests arrays or objects deeper than {limits.max_depth} (the depth limit, "
            f"{ENV_VARS['max_depth']}); reading stops here",
            "FI104",
        )
    if isinstance(exc, TooManyDigits):
        return (
            f"{what} holds a number of more than {limits.max_number_digits} digits (the digits "
            f"limit, {ENV_VARS['max_number_digits']}); reading stops here",
            "FI104",
        )
    if isinstance(exc, TooLong):
        return (
            f"{what} holds more than {limits.max_line_bytes:,} bytes without a complete value "
            f"(the line-length limit, {ENV_VARS['max_line_bytes']}); reading stops here",
            OVER_LIMIT,
        )
    return None


def _array(stream: Prefixed, *, name: str, limits: Limits) -> Iterator[SourceRecord | ReadError]:
    index = 0
    guard = Guard(stream, limits)
    items = build_items(guard, 1)
    read = 0  # bytes read when the last item was yielded
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
        except (TooDeep, TooManyDigits, TooLong) as exc:
            signal = stopped(exc, limits, "the JSON array")
            assert signal is not None
            yield read_error(signal[0], at, error_code=signal[1])
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
        size, read = guard.position - read, guard.position
        if isinstance(item, Refused):
            problem = item.problem
            message = problem.message.replace("the record", "the array item", 1)
            yield read_error(message, at_field(at, problem.field), error_code=problem.code)
        elif isinstance(item, dict):
            yield SourceRecord(item, at, size)
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


class Overlong:
    """What :func:`lines` yields for a line past the limit: it was skipped, never held."""


OVERLONG = Overlong()


def lines(stream: Any, limit: int) -> Iterator[bytes | Overlong]:
    """Lines ending at ``\\n`` only (NDJSON), in time linear in the input however long a line;
    a line longer than ``limit`` bytes is read past without being held (:data:`OVERLONG`)."""
    parts: list[bytes] = []  # the pieces of a line not yet ended, joined once when it ends
    held = 0  # their length
    skipping = False
    while True:
        chunk = stream.read(_READ)
        if not chunk:
            if skipping:
                yield OVERLONG
            elif parts:
                yield b"".join(parts)
            return
        start = 0
        while (cut := chunk.find(b"\n", start)) >= 0:
            if skipping or held + cut - start > limit:
                yield OVERLONG
            else:
                parts.append(chunk[start:cut])
                yield b"".join(parts)
            parts, held, skipping = [], 0, False
            start = cut + 1
        if start < len(chunk) and not skipping:
            parts.append(chunk[start:])
            held += len(chunk) - start
            if held > limit:
                parts, held, skipping = [], 0, True


def _ndjson(stream: Prefixed, *, name: str, limits: Limits) -> Iterator[SourceRecord | ReadError]:
    row = 0
    for line_number, raw in enumerate(lines(stream, limits.max_line_bytes), start=1):
        if isinstance(raw, Overlong):
            row += 1
            at = Location(file=name, row=row, line=line_number)
            skipped = record_too_long(limits, "the line")
            yield read_error(skipped.message, at, error_code=skipped.code)
            continue
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
        if digit_run_at(data, limits.max_number_digits) >= 0:
            yield read_error(
                f"the line holds a number of more than {limits.max_number_digits} digits (the "
                f"digits limit, {ENV_VARS['max_number_digits']})",
                at,
                error_code="FI101",
            )
            continue
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
        problem = check_value(value, data, limits, "the line")
        if problem is not None:
            yield read_error(problem.message, at_field(at, problem.field), error_code=problem.code)
        elif isinstance(value, dict):
            yield SourceRecord(value, at, len(raw) + 1)
        else:
            yield read_error(
                f"the line is a JSON {json_kind(value)}, not an object", at, error_code="FI101"
            )


_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_INNERMOST = re.compile(rb"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")


def too_deep(raw: bytes, limit: int) -> bool:
    """Whether the JSON text ``raw`` (already known to parse) nests arrays or objects deeper
    than ``limit``: its strings blanked, then innermost containers removed ``limit`` times, at
    the regex engine's speed (a wide record of many small objects is not walked)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    text = _STRING.sub(b'""', raw)
    for _ in range(limit):
        text, removed = _INNERMOST.subn(b"0", text)
        if not removed:
            return False
    return b"[" in text or b"{" in text


@lru_cache(maxsize=8)
def long_string(limit: int) -> re.Pattern[bytes]:
    """A JSON string token of more than ``limit`` units (a byte, or an escape's first two):
    never fewer units than characters, so no match means no string is longer than ``limit``."""
    return re.compile(rb'"(?:[^"\\]|\\.){%d,}+"' % (limit + 1))


def check_value(value: Any, raw: bytes, limits: Limits, what: str) -> Problem | None:
    """The first limit a decoded JSON value (from ``raw``) breaks, or a lone surrogate in it.

    Tests on the raw bytes first (its length and brackets, a long string token, a surrogate
    escape), so a record is walked only when one of them finds something."""
    if too_deep(raw, limits.max_depth):
        return Problem(
            f"{what} nests JSON arrays or objects deeper than {limits.max_depth} (the depth "
            f"limit, {ENV_VARS['max_depth']})",
            "FI101",
        )
    long = len(raw) > limits.max_field_chars and bool(
        long_string(limits.max_field_chars).search(raw)
    )
    surrogate = _SURROGATE_ESCAPE.search(raw) is not None
    if not (long or surrogate):
        return None
    stack: list[tuple[Any, Any]] = [(value, None)]
    while stack:
        item, key = stack.pop()
        if isinstance(item, str):
            if len(item) > limits.max_field_chars:
                return field_too_long(limits, key)
            if surrogate and not _is_text(item):
                where = lone_surrogate(what)
                return Problem(where.message, where.code, field_name(key))
        elif isinstance(item, dict):
            for child_key, child in item.items():
                if len(child_key) > limits.max_field_chars:
                    return field_too_long(limits, None)
                if surrogate and not _is_text(child_key):
                    return lone_surrogate(what)
                stack.append((child, child_key))
        elif isinstance(item, list):
            stack.extend((child, key) for child in item)
    return None


def _is_text(value: str) -> bool:
    """Whether ``value`` is Unicode text (no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


__all__ = [
    "BOM",
    "LONE_MARK",
    "OVERLONG",
    "Guard",
    "ItemBuilder",
    "Overlong",
    "Prefixed",
    "Problem",
    "Refused",
    "TooDeep",
    "TooLong",
    "TooManyDigits",
    "build_items",
    "check_value",
    "events",
    "field_too_long",
    "first_line",
    "json_kind",
    "lines",
    "lone_surrogate",
    "long_string",
    "peek",
    "read_json",
    "record_too_long",
    "stopped",
    "too_deep",
]
