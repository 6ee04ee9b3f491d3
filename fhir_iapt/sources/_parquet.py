"""Parquet reader: one ``dict[str, str]`` per row, the same text the table's CSV export holds,
so a Parquet table and its CSV go through the same checks.

pyarrow (the ``parquet`` extra) reads the file's schema and streams its row groups in batches
through 1 MiB buffers, one thread, so memory holds a batch and a buffer per column, never the
table. Each value becomes the text a CSV export would
carry: null (and a float NaN, pandas' missing value) -> blank; an integral float -> its integer
(``12.0`` -> ``12``, as a score exported through pandas comes back); other numbers as written
(shortest round-trip for floats, every digit for decimals); a date -> ``YYYY-MM-DD``; a
timestamp -> ``YYYY-MM-DDTHH:MM:SS`` as its wall-clock time (a time zone is dropped, not
converted: converting would move a date stored as midnight UTC to the day before); a time ->
``HH:MM:SS``; booleans ``True`` / ``False`` (NHS Digital's flag spelling). A list or struct
cell has no CSV equivalent and rejects its row (FI101); a text cell past the field-length limit
rejects its row (FI105); bytes that are not UTF-8 reject it (FI103). A file that breaks while
reading is one FI104 after the rows read before it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhir_iapt.errors import Location, ReadError
from fhir_iapt.limits import Limits
from fhir_iapt.sources._record import OVER_LIMIT, SourceRecord, read_error

_BATCH = 4096
_BUFFER = 1 << 20
_UNREADABLE = "FI101"
_NOT_UTF8 = "FI103"
_BROKEN = "FI104"


class ParquetUnavailable(ReadError):
    """pyarrow is not installed (the ``parquet`` extra)."""


class ParquetUnusable(ReadError):
    """The file is not a Parquet file pyarrow can open (the reason, no data in it)."""


def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        raise ParquetUnavailable(
            "reading Parquet needs pyarrow: pip install 'fhir-iapt[parquet]'"
        ) from None
    return pq


def _open(path: Path) -> Any:
    pq = _pyarrow()
    try:
        # buffered reads, no pre-buffering of whole row groups: memory holds a buffer per
        # column, not a row group (measured in bench/dataset.py --parquet)
        return pq.ParquetFile(path, pre_buffer=False, buffer_size=_BUFFER)
    except (OSError, ValueError) as exc:
        # pyarrow's errors derive from these (ArrowInvalid: ValueError, ArrowIOError: OSError)
        raise ParquetUnusable(f"not a readable Parquet file ({type(exc).__name__})") from None


def parquet_columns(path: Path) -> list[str]:
    """The column names of a Parquet file's schema (stripped), reading no row."""
    return [name.strip() for name in _open(path).schema_arrow.names]


class _BadCell(ReadError):
    """One cell has no CSV form (caught per row, never raised out of the reader)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, error_code=code)


def _text(value: Any, max_chars: int) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        if len(value) > max_chars:
            raise _BadCell("is longer than the field-length limit", OVER_LIMIT)
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.replace(tzinfo=None).isoformat()
    if isinstance(value, bytes):
        if len(value) > max_chars:
            raise _BadCell("is longer than the field-length limit", OVER_LIMIT)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadCell("is not UTF-8 text", _NOT_UTF8) from None
    raise _BadCell("is not a single value (a list or a struct has no CSV form)", _UNREADABLE)


def read_parquet(
    path: Path,
    *,
    name: str,
    limits: Limits,
    columns: Sequence[str] | None = None,
) -> Iterator[SourceRecord | ReadError]:
    """Yield each row of the Parquet file at ``path`` as a SourceRecord whose ``data`` maps the
    column name to its CSV text (1-based ``row``; ``name`` is the file as locations show it).
    ``columns`` reads only those of them the file has. Raises ParquetUnavailable /
    ParquetUnusable before the first row when the file cannot be read at all."""
    parquet = _open(path)
    names = parquet.schema_arrow.names
    wanted = None
    if columns is not None:
        keep = set(columns)
        wanted = [n for n in names if n.strip() in keep]
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=_BATCH, columns=wanted, use_threads=False):
            keys = [n.strip() for n in batch.schema.names]
            cells = [column.to_pylist() for column in batch.columns]
            for values in zip(*cells, strict=True) if cells else ():
                row += 1
                at = Location(file=name, row=row)
                data: dict[str, str] = {}
                try:
                    for key, value in zip(keys, values, strict=True):
                        data[key] = _text(value, limits.max_field_chars)
                except _BadCell as exc:
                    yield read_error(
                        f"column {key} {exc}", at.with_field(key), error_code=exc.error_code
                    )
                    continue
                yield SourceRecord(data, at)
            if not cells:
                row += batch.num_rows
    except (OSError, ValueError) as exc:
        yield read_error(
            f"the Parquet file breaks after row {row} ({type(exc).__name__})",
            Location(file=name, row=row + 1),
            error_code=_BROKEN,
        )


__all__ = ["ParquetUnavailable", "ParquetUnusable", "parquet_columns", "read_parquet"]
