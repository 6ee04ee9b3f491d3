"""CSV reader: the ``csv`` module over a bounded line reader, one dict per data row.

Handles a UTF-8 byte-order mark, CRLF (and CR) line ends and quoted delimiters / newlines.
The bytes are UTF-8 unless ``options["encoding"]`` names another (a single-byte encoding that
keeps ASCII, such as cp1252: the line splitting works on bytes). Bytes that are not in the
encoding are decoded with ``surrogateescape`` so that the row holding them can be named
exactly; reading then stops there (the file is in the wrong encoding, later rows cannot be
trusted). ``options["skip_lines"]`` physical lines before the header (a preamble) are read past.

Limits (:mod:`fhir_iapt.limits`): a row (all its physical lines) longer than the line length is
never read whole: :class:`_Lines` hands the ``csv`` module lines, counts a row's bytes and, once
they pass the limit, reads on to the row's end (the line end where the row's quote characters
pair up) holding nothing, and the row is rejected (FI105); the next row is read. A cell longer
than the field length rejects its row, naming the column. (``csv.field_size_limit`` alone would
not do: the ``csv`` module reads a whole line before it looks at a field.)
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from fhir_iapt.errors import Location, ReadError
from fhir_iapt.limits import DEFAULT_LIMITS, ENV_VARS, Limits
from fhir_iapt.sources._record import (
    OVER_LIMIT,
    SourceRecord,
    at_field,
    long_digit_run,
    read_error,
)

_BOM = b"\xef\xbb\xbf"
_READ = 65536


class _RowTooLong(Exception):
    """Raised by :class:`_Lines` into the ``csv`` reader (which passes it on and starts afresh
    at the next row): the row passed the line length and was read past."""


class _Lines:
    """Physical lines (ending at ``\\n``, ``\\r\\n`` or ``\\r``, kept) of a binary stream,
    decoded, for ``csv.reader``; ``line`` counts the lines read, skipped ones too. The caller
    marks each row's start (:meth:`start_row`) so a row's bytes can be counted."""

    def __init__(
        self, stream: BinaryIO, *, limit: int, quotechar: str, encoding: str = "utf-8"
    ) -> None:
        self._stream = stream
        self._limit = limit
        self._encoding = encoding
        self._quote = quotechar.encode(encoding) if quotechar else b""
        self._ready: list[bytes | int] = []  # lines read ahead, in reverse order
        self._partial: list[bytes] = []  # the start of a line not yet ended
        self._partial_bytes = 0
        self._over: int | None = None  # that start passed the limit: only its quote count
        self._cr = False  # it ends with CR (the first half of a CRLF, or a line end)
        self._eof = False
        self._first = True
        self.line = 0
        self._row_bytes = 0
        self._row_quotes = 0

    def start_row(self) -> None:
        self._row_bytes = 0
        self._row_quotes = 0

    @property
    def row_bytes(self) -> int:
        """The bytes of the row read since :meth:`start_row`."""
        return self._row_bytes

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self._ready.pop() if self._ready else self._physical()
        if raw is None:
            raise StopIteration
        self.line += 1
        if isinstance(raw, int) or (size := self._row_bytes + len(raw)) > self._limit:
            quotes = raw if isinstance(raw, int) else self._count(raw)
            self._skip_row(self._row_quotes + quotes)
            raise _RowTooLong
        self._row_bytes = size
        if self._quote:
            self._row_quotes += raw.count(self._quote)
        return raw.decode(self._encoding, "surrogateescape")

    def _count(self, raw: bytes) -> int:
        return raw.count(self._quote) if self._quote else 0

    def _skip_row(self, quotes: int) -> None:
        """Read past the rest of a row: lines until its quote characters pair up."""
        while quotes % 2:
            raw = self._physical()
            if raw is None:
                return
            self.line += 1
            quotes += raw if isinstance(raw, int) else self._count(raw)

    def _physical(self) -> bytes | int | None:
        """The next line (bytes), or for a line longer than the limit the number of quote
        characters in it (it is read past, not held), or None at the end."""
        while not self._ready:
            if self._eof:
                return None
            self._fill()
        return self._ready.pop()

    def _fill(self) -> None:
        chunk = self._stream.read(_READ)
        if self._first:
            self._first = False
            while len(chunk) < 3 and (more := self._stream.read(_READ)):
                chunk += more
            if chunk.startswith(_BOM):
                if len(chunk) == 3:
                    return
                chunk = chunk[3:]
        ended: list[bytes | int] = []
        pending = bool(self._partial) or self._over is not None
        if pending and (not chunk or (self._cr and not chunk.startswith(b"\n"))):
            ended.append(self._end_partial(b""))  # the end of input, or a CR line end
            pending = False
        if not chunk:
            self._eof = True
            self._ready = ended
            return
        pieces = chunk.splitlines(keepends=True)
        last = pieces[-1]
        waiting = not last.endswith(b"\n")  # no line end yet, or a CR that may begin CRLF
        for piece in pieces[:-1] if waiting else pieces:
            if pending:
                ended.append(self._end_partial(piece))
                pending = False
            else:
                ended.append(piece if len(piece) <= self._limit else self._count(piece))
        if waiting:
            if not pending:
                self._partial, self._partial_bytes, self._over = [], 0, None
            self._hold(last)
        ended.reverse()
        self._ready = ended

    def _hold(self, piece: bytes) -> None:
        if self._over is not None:
            self._over += self._count(piece)
        else:
            self._partial.append(piece)
            self._partial_bytes += len(piece)
            if self._partial_bytes > self._limit:
                self._over = sum(self._count(p) for p in self._partial)
                self._partial, self._partial_bytes = [], 0
        self._cr = piece.endswith(b"\r")

    def _end_partial(self, piece: bytes) -> bytes | int:
        result: bytes | int
        if self._over is not None:
            result = self._over + self._count(piece)
        elif self._partial_bytes + len(piece) > self._limit:
            result = sum(self._count(p) for p in self._partial) + self._count(piece)
        else:
            result = b"".join(self._partial) + piece
        self._partial, self._partial_bytes, self._over, self._cr = [], 0, None, False
        return result


def _bad_utf8_cell(cells: list[str]) -> int | None:
    """Index of the first cell holding undecodable bytes, or None when all are clean."""
    joined = "".join(cells)
    if joined.isascii():
        return None
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        for index, cell in enumerate(cells):
            try:
                cell.encode("utf-8")
            except UnicodeEncodeError:
                return index
    return None


def read_csv(
    stream: BinaryIO,
    *,
    name: str,
    options: Mapping[str, Any],
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[SourceRecord | ReadError]:
    """Yield one :class:`SourceRecord` (header -> cell) per data row, or a ReadError value."""
    quotechar = str(options.get("quotechar", '"'))
    encoding = str(options.get("encoding") or "utf-8")
    lines = _Lines(stream, limit=limits.max_line_bytes, quotechar=quotechar, encoding=encoding)
    # A row is at most max_line_bytes (so no field is longer): the module's own field limit,
    # process-wide, is raised to that so the row and field checks here decide, not it.
    if csv.field_size_limit() < limits.max_line_bytes:
        csv.field_size_limit(limits.max_line_bytes)
    reader = csv.reader(
        lines,
        delimiter=str(options.get("delimiter", ",")),
        quotechar=quotechar,
        strict=True,
    )
    yield from _rows(
        reader,
        lines,
        name=name,
        required=tuple(options.get("required_columns", ())),
        limits=limits,
        encoding=encoding,
        skip_lines=int(options.get("skip_lines", 0)),
    )


def _row_too_long(limits: Limits, what: str) -> str:
    return (
        f"{what} is longer than {limits.max_line_bytes:,} bytes (the line-length limit, "
        f"{ENV_VARS['max_line_bytes']}); it is skipped"
    )


def _encoding_name(encoding: str) -> str:
    """How messages name the encoding: UTF-8, or the declared one (cp1252)."""
    return "UTF-8" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding


def _skip(lines: _Lines, count: int, name: str, limits: Limits) -> ReadError | None:
    """Read past the ``count`` preamble lines before the header; a ReadError if the file
    ends first (or a preamble line passes the line length)."""
    for _ in range(count):
        lines.start_row()
        try:
            next(lines)
        except StopIteration:
            return read_error(
                f"the file ends within the {count} preamble line(s) before the header "
                "(input: skip_lines)",
                Location(file=name, line=lines.line + 1),
                error_code="FI102",
            )
        except _RowTooLong:
            return read_error(
                _row_too_long(limits, "a preamble line"),
                Location(file=name, line=lines.line),
                error_code="FI102",
            )
    return None


def _rows(
    reader: Any,
    lines: _Lines,
    *,
    name: str,
    required: tuple[str, ...],
    limits: Limits,
    encoding: str = "utf-8",
    skip_lines: int = 0,
) -> Iterator[SourceRecord | ReadError]:
    if skip_lines:
        skipped = _skip(lines, skip_lines, name, limits)
        if skipped is not None:
            yield skipped
            return
    not_encoded = f"the bytes are not {_encoding_name(encoding)}"
    header_at = Location(file=name, line=lines.line + 1)
    try:
        raw_header: list[str] = next(reader)
    except StopIteration:
        yield read_error("the file is empty: no header row", header_at, error_code="FI102")
        return
    except _RowTooLong:
        yield read_error(_row_too_long(limits, "the header row"), header_at, error_code="FI102")
        return
    except csv.Error as exc:
        yield read_error(f"the header row is not valid CSV: {exc}", header_at, error_code="FI102")
        return
    header = [cell.strip() for cell in raw_header]
    if _bad_utf8_cell(header) is not None:
        yield read_error(
            f"the header row is not {_encoding_name(encoding)}", header_at, error_code="FI103"
        )
        return
    missing = [column for column in required if column not in header]
    if missing:
        yield read_error(
            f"the header lacks the column(s) the mapping reads: {', '.join(missing)}",
            header_at,
            error_code="FI102",
        )
        return
    repeated = sorted({c for c in required if header.count(c) > 1})
    if repeated:
        yield read_error(
            f"the header repeats column(s) the mapping reads: {', '.join(repeated)}",
            header_at,
            error_code="FI102",
        )
        return
    width = len(header)
    row_number = 0
    max_field = limits.max_field_chars
    digits = long_digit_run(limits.max_number_digits)
    while True:
        start_line = lines.line + 1
        lines.start_row()
        try:
            cells: list[str] = next(reader)
        except StopIteration:
            return
        except _RowTooLong:
            row_number += 1
            yield read_error(
                _row_too_long(limits, "the row"),
                Location(file=name, row=row_number, line=start_line),
                error_code=OVER_LIMIT,
            )
            continue
        except csv.Error as exc:
            row_number += 1
            yield read_error(
                f"the row is not valid CSV: {exc}",
                Location(file=name, row=row_number, line=start_line),
                error_code="FI101",
            )
            continue
        if not cells:  # a blank line
            continue
        row_number += 1
        at = Location(file=name, row=row_number, line=start_line)
        bad = _bad_utf8_cell(cells)
        if bad is not None:
            field = header[bad] if bad < width else None
            yield read_error(
                f"{not_encoded}; reading stops here", at_field(at, field), error_code="FI103"
            )
            return
        if len(cells) != width:
            yield read_error(
                f"the row has {len(cells)} fields; the header has {width}", at, error_code="FI101"
            )
            continue
        if sum(map(len, cells)) > max_field:
            long = next((i for i, cell in enumerate(cells) if len(cell) > max_field), None)
            if long is not None:
                yield read_error(
                    f"a value is longer than {max_field:,} characters (the field-length limit, "
                    f"{ENV_VARS['max_field_chars']})",
                    at_field(at, header[long]),
                    error_code=OVER_LIMIT,
                )
                continue
        if digits.search("\n".join(cells)):
            long = next(i for i, cell in enumerate(cells) if digits.search(cell))
            yield read_error(
                f"a value holds more than {limits.max_number_digits:,} digits in a row (the "
                f"digits limit, {ENV_VARS['max_number_digits']})",
                at_field(at, header[long]),
                error_code=OVER_LIMIT,
            )
            continue
        yield SourceRecord(dict(zip(header, cells, strict=True)), at, lines.row_bytes)


__all__ = ["read_csv"]
