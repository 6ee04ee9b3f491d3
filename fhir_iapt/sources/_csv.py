"""CSV reader: the ``csv`` module over a streaming UTF-8 decoder, one dict per data row.

Handles a UTF-8 byte-order mark, CRLF line ends and quoted delimiters / newlines. Bytes that are
not UTF-8 are decoded with ``surrogateescape`` so that the row holding them can be named exactly;
reading then stops there (the file is in the wrong encoding, later rows cannot be trusted).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from fhir_iapt.errors import Location, ReadError
from fhir_iapt.sources._record import SourceRecord, read_error


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
    stream: BinaryIO, *, name: str, options: Mapping[str, Any]
) -> Iterator[SourceRecord | ReadError]:
    """Yield one :class:`SourceRecord` (header -> cell) per data row, or a ReadError value."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(
        text,
        delimiter=str(options.get("delimiter", ",")),
        quotechar=str(options.get("quotechar", '"')),
        strict=True,
    )
    try:
        yield from _rows(reader, name=name, required=tuple(options.get("required_columns", ())))
    finally:
        text.detach()


def _rows(
    reader: Any, *, name: str, required: tuple[str, ...]
) -> Iterator[SourceRecord | ReadError]:
    header_at = Location(file=name, line=1)
    try:
        raw_header: list[str] = next(reader)
    except StopIteration:
        yield read_error("the file is empty: no header row", header_at, error_code="FI102")
        return
    except csv.Error as exc:
        yield read_error(f"the header row is not valid CSV: {exc}", header_at, error_code="FI102")
        return
    header = [cell.strip() for cell in raw_header]
    if _bad_utf8_cell(header) is not None:
        yield read_error("the header row is not UTF-8", header_at, error_code="FI103")
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
    last_line: int = reader.line_num
    while True:
        start_line = last_line + 1
        try:
            cells: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row_number += 1
            last_line = reader.line_num
            yield read_error(
                f"the row is not valid CSV: {exc}",
                Location(file=name, row=row_number, line=start_line),
                error_code="FI101",
            )
            continue
        last_line = reader.line_num
        if not cells:  # a blank line
            continue
        row_number += 1
        at = Location(file=name, row=row_number, line=start_line)
        bad = _bad_utf8_cell(cells)
        if bad is not None:
            field = header[bad] if bad < width else None
            yield read_error(
                "the bytes are not UTF-8; reading stops here",
                at.with_field(field) if field else at,
                error_code="FI103",
            )
            return
        if len(cells) != width:
            yield read_error(
                f"the row has {len(cells)} fields; the header has {width}", at, error_code="FI101"
            )
            continue
        yield SourceRecord(dict(zip(header, cells, strict=True)), at)


__all__ = ["read_csv"]
