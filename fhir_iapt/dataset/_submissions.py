"""Find the submissions under a directory, check every table's header, and choose which
submission's records count (a Refresh replaces the Primary of its provider and month).

A submission is a folder holding ``IDS000Header`` and the other eight tables, one file each
named by the table, as CSV (``IDS101Referral.csv``) or Parquet (``IDS101Referral.parquet``;
the ``parquet`` extra): the directory itself, or any folder below it (one per month, say). A
table may be in either form, not both. Nothing here reads a data row except the header
table's one row.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from fhir_iapt.dataset import _values as v
from fhir_iapt.dataset._tables import TABLE_NAMES, DatasetSpec
from fhir_iapt.errors import Location, ReadError
from fhir_iapt.limits import Limits
from fhir_iapt.sources import SourceRecord, read_records
from fhir_iapt.sources._parquet import (
    ParquetUnavailable,
    ParquetUnusable,
    parquet_columns,
    read_parquet,
)
from fhir_iapt.sources._record import field_name

#: A table or a column is missing, or a table's file cannot be used at all.
FILE_UNUSABLE = "FI150"
COLUMN_MISSING = "FI151"
#: Two submissions of one provider and month that nothing orders (same type, same time).
AMBIGUOUS = "FI152"

_HEADER = "IDS000Header"
#: The forms a table's file may take, by suffix.
SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True, slots=True)
class Submission:
    """One month's tables from one provider, and where it stands among the others."""

    folder: Path
    label: str  # the folder relative to the directory ("." for the directory itself)
    provider: str  # OrgIDProv
    period_start: date
    period_end: date
    created: str  # DateTimeDatSetCreate as ISO text, "" when absent
    file_type: str | None  # File_Type when the header carries it
    #: each table's suffix (".csv" or ".parquet"), by table name
    suffixes: tuple[tuple[str, str], ...] = ()

    def suffix(self, table: str) -> str:
        return dict(self.suffixes).get(table, ".csv")

    def file(self, table: str) -> Path:
        return self.folder / f"{table}{self.suffix(table)}"

    def name(self, table: str) -> str:
        """The table's file as locations show it, relative to the directory."""
        return _name(self.label, f"{table}{self.suffix(table)}")


def _name(label: str, filename: str) -> str:
    return filename if label == "." else f"{label}/{filename}"


def table_rows(
    path: Path, *, name: str, limits: Limits, columns: tuple[str, ...] | None = None
) -> Iterator[SourceRecord | ReadError]:
    """The rows of one table's file (CSV or Parquet, by its suffix) as the CSV reader gives
    them: ``dict[str, str]`` data, row errors as ReadError values. A Parquet file that cannot
    be opened raises v.BadValue (checked by :func:`find_submissions` before any row is read)."""
    if path.suffix == ".parquet":
        try:
            yield from read_parquet(path, name=name, limits=limits, columns=columns)
        except (ParquetUnavailable, ParquetUnusable) as exc:
            raise v.BadValue(str(exc), code=FILE_UNUSABLE) from None
        return
    with path.open("rb") as fh:
        yield from read_records(fh, name=name, fmt="csv", limits=limits)


def table_file(folder: Path, table: str) -> tuple[str | None, list[str]]:
    """(the suffix of the one file ``table`` has in ``folder``, or None; the suffixes found)."""
    found = [suffix for suffix in SUFFIXES if (folder / f"{table}{suffix}").is_file()]
    return (found[0] if len(found) == 1 else None), found


def _error(message: str, location: Location, code: str) -> ReadError:
    return ReadError(message, location=location, error_code=code)


def header_columns(path: Path, limits: Limits) -> list[str]:
    """The header row of a CSV (its first line), stripped. Raises BadValue when unusable."""
    with path.open("rb") as fh:
        first = fh.readline(limits.max_line_bytes + 1)
    if len(first) > limits.max_line_bytes:
        raise v.BadValue("the header row is longer than the line-length limit", code=FILE_UNUSABLE)
    if first.startswith(b"\xef\xbb\xbf"):
        first = first[3:]
    try:
        line = first.decode("utf-8")
    except UnicodeDecodeError:
        raise v.BadValue("the header row is not UTF-8", code=FILE_UNUSABLE) from None
    if not line.strip():
        raise v.BadValue("the file is empty: no header row", code=FILE_UNUSABLE)
    try:
        cells = next(csv.reader([line], strict=True))
    except csv.Error:
        raise v.BadValue("the header row is not valid CSV", code=FILE_UNUSABLE) from None
    return [cell.strip() for cell in cells]


def _check_table(
    folder: Path, label: str, table: str, spec: DatasetSpec, limits: Limits
) -> tuple[str | None, list[ReadError]]:
    """(the table's suffix; every problem that makes it unusable: no file, a file in both
    forms, an unreadable header, missing or repeated columns)."""
    suffix, found = table_file(folder, table)
    if suffix is None:
        name = _name(label, f"{table}.csv")
        if found:
            message = (
                f"table {table} is there as both {table}.csv and {table}.parquet: "
                "keep one, nothing says which is meant"
            )
        else:
            message = f"table {table} is missing: no {table}.csv or {table}.parquet"
        return None, [_error(message, Location(file=name), FILE_UNUSABLE)]
    name = _name(label, f"{table}{suffix}")
    at = Location(file=name)
    path = folder / f"{table}{suffix}"
    try:
        columns = parquet_columns(path) if suffix == ".parquet" else header_columns(path, limits)
    except v.BadValue as exc:
        return suffix, [
            _error(f"table {table}: {exc.rule}", Location(file=name, line=1), exc.error_code)
        ]
    except (ParquetUnavailable, ParquetUnusable) as exc:
        return suffix, [_error(f"table {table}: {exc}", at, FILE_UNUSABLE)]
    except OSError as exc:
        return suffix, [_error(f"table {table} cannot be read ({exc.strerror})", at, FILE_UNUSABLE)]
    line = 1 if suffix == ".csv" else None
    errors: list[ReadError] = []
    wanted = spec.table(table)
    for column in wanted.required:
        if column not in columns:
            errors.append(
                _error(
                    f"table {table} lacks the column {column}",
                    Location(file=name, line=line, field=column),
                    COLUMN_MISSING,
                )
            )
    for column in (*wanted.required, *wanted.optional):
        if columns.count(column) > 1:
            errors.append(
                _error(
                    f"table {table} has the column {column} more than once",
                    Location(file=name, line=line, field=column),
                    FILE_UNUSABLE,
                )
            )
    return suffix, errors


def _read_header(
    folder: Path, label: str, suffixes: dict[str, str], spec: DatasetSpec, limits: Limits
) -> Submission | ReadError:
    suffix = suffixes[_HEADER]
    name = _name(label, f"{_HEADER}{suffix}")
    rows = []
    try:
        for item in table_rows(folder / f"{_HEADER}{suffix}", name=name, limits=limits):
            if isinstance(item, ReadError):
                return _error(
                    f"table {_HEADER}: {item.message}",
                    item.location or Location(file=name),
                    FILE_UNUSABLE,
                )
            rows.append(item)
            if len(rows) > 1:
                break
    except v.BadValue as exc:
        return _error(f"table {_HEADER}: {exc.rule}", Location(file=name), FILE_UNUSABLE)
    if len(rows) != 1:
        return _error(
            f"table {_HEADER} must have exactly one row (one submission per folder)",
            Location(file=name),
            FILE_UNUSABLE,
        )
    record = rows[0]
    data: dict[str, str] = record.data
    column = "OrgIDProv"
    try:
        provider = v.required(data.get(column)).upper()
        if not (provider.isascii() and provider.isalnum() and 3 <= len(provider) <= 12):
            raise v.BadValue("must be an ODS code (3 to 12 letters and digits)")
        column = "ReportingPeriodStartDate"
        start = v.iso_date(v.required(data.get(column)))
        column = "ReportingPeriodEndDate"
        end = v.iso_date(v.required(data.get(column)))
        column = "DateTimeDatSetCreate"
        created = v.date_time(data.get(column))
        column = "File_Type"
        file_type = v.text(data.get(column))
        if file_type is not None and file_type not in spec.file_types:
            raise v.BadValue(f"must be one of {', '.join(spec.file_types)}")
    except v.BadValue as exc:
        return _error(
            f"table {_HEADER} field {column} {exc.rule}",
            record.location.with_field(column),
            FILE_UNUSABLE,
        )
    assert start is not None
    assert end is not None
    if end < start:
        return _error(
            f"table {_HEADER} field ReportingPeriodEndDate must not be before "
            "ReportingPeriodStartDate",
            record.location.with_field("ReportingPeriodEndDate"),
            FILE_UNUSABLE,
        )
    return Submission(
        folder, label, provider, start, end, created, file_type, tuple(sorted(suffixes.items()))
    )


def _folders(directory: Path) -> Iterator[Path]:
    """Every folder at or below ``directory`` holding a header table, in a stable order."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        if any(f"{_HEADER}{suffix}" in files for suffix in SUFFIXES):
            yield Path(root)


def find_submissions(
    directory: Path, spec: DatasetSpec, limits: Limits
) -> tuple[list[Submission], list[Submission], list[ReadError]]:
    """(the submissions whose records count, in the order they apply; those replaced; every
    file error). With any file error nothing should be derived."""
    errors: list[ReadError] = []
    found: list[Submission] = []
    folders = list(_folders(directory))
    if not folders:
        errors.append(
            _error(
                f"no submission: no {_HEADER}.csv or {_HEADER}.parquet in the directory "
                "or a folder below it",
                Location(file=field_name(directory.name) or "(directory)"),
                FILE_UNUSABLE,
            )
        )
    for folder in folders:
        label = folder.relative_to(directory).as_posix()
        header_ok = True
        suffixes: dict[str, str] = {}
        for table in TABLE_NAMES:
            suffix, problems = _check_table(folder, label, table, spec, limits)
            if suffix is not None:
                suffixes[table] = suffix
            errors.extend(problems)
            header_ok = header_ok and not (problems and table == _HEADER)
        if header_ok:
            header = _read_header(folder, label, suffixes, spec, limits)
            if isinstance(header, ReadError):
                errors.append(header)
            else:
                found.append(header)
    used, replaced, clashes = choose(found, spec)
    errors.extend(clashes)
    return used, replaced, errors


def _rank(sub: Submission, spec: DatasetSpec) -> tuple[int, str]:
    return (spec.file_types.get(sub.file_type or "", -1), sub.created)


def choose(
    found: list[Submission], spec: DatasetSpec
) -> tuple[list[Submission], list[Submission], list[ReadError]]:
    """Per provider and reporting month keep one submission: a Refresh over a Primary, then the
    later DateTimeDatSetCreate. Two that nothing orders are both refused (a file error)."""
    groups: dict[tuple[str, date], list[Submission]] = {}
    for sub in found:
        groups.setdefault((sub.provider, sub.period_start), []).append(sub)
    used: list[Submission] = []
    replaced: list[Submission] = []
    errors: list[ReadError] = []
    for (provider, start), subs in groups.items():
        subs.sort(key=lambda s: _rank(s, spec))
        best = subs[-1]
        if len(subs) > 1 and _rank(subs[-2], spec) == _rank(best, spec):
            for sub in subs:
                if _rank(sub, spec) == _rank(best, spec):
                    errors.append(
                        _error(
                            f"two submissions for provider {provider} and month "
                            f"{start.isoformat()} have the same File_Type and "
                            "DateTimeDatSetCreate: nothing says which replaces the other",
                            Location(file=sub.name(_HEADER)),
                            AMBIGUOUS,
                        )
                    )
            continue
        used.append(best)
        replaced.extend(subs[:-1])
    used.sort(key=lambda s: (s.period_start, *_rank(s, spec), s.label))
    return used, replaced, errors


__all__ = [
    "AMBIGUOUS",
    "COLUMN_MISSING",
    "FILE_UNUSABLE",
    "SUFFIXES",
    "Submission",
    "choose",
    "find_submissions",
    "header_columns",
    "table_file",
    "table_rows",
]
