"""Source records as DataFrame rows, and back.

The records DataFrame (:data:`RECORDS_DDL`) is what :func:`read_files` gives: one row per item
the project's own reader yields for each file (:func:`~fhir_iapt.sources.read_records`, the
mapping's format and options, the driver's input limits), so row numbers, lines, elements and
every read error are the ones ``fhir-iapt convert`` gives for the same file. A record travels as
bytes no code is run from: a CSV row or a JSON record as JSON text (numbers exactly as read:
``Decimal`` as its digits), an XML record as the bytes of the record under its shallow
ancestors (:func:`~fhir_iapt.sources.portable`), parsed again with the same safe parser. A read
error travels as its OperationOutcome.

Any other DataFrame is read as records too (:func:`records_of`): a column per source field (a
CSV mapping: e.g. ``spark.read.csv`` with every column a string), or a column of record text
(``text_column``: a JSON object or an XML record element per row, e.g. ``spark.read.text``),
each text read by the same reader as a file. Locations come from the optional columns
``_file``, ``_row`` and ``_line`` (:func:`with_row_numbers` numbers the rows of files Spark
read); their order, for the outputs, from ``_file_index`` and ``_seq`` when given, else the row
number, else the DataFrame's order.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import pyarrow as pa  # type: ignore[import-untyped]

from fhir_iapt.emit._encode import dumps_text
from fhir_iapt.errors import FhirIaptError, Issue, Location, ReadError
from fhir_iapt.limits import Limits
from fhir_iapt.mapping import Mapping
from fhir_iapt.sources import SourceRecord, portable, read_records, revive
from fhir_iapt.sources._portable import PortableXml
from fhir_iapt.sources._xml import record_path_tags
from fhir_iapt.spark import _worker

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The records DataFrame: the order of the item (input file, position in what its reader
#: yielded), its location, the record's bytes (XML: and its ancestors' count), or a read
#: error's code and OperationOutcome.
RECORDS_DDL: Final = (
    "_file_index int, _seq long, _file string, _row long, _line long, _element string, "
    "_record binary, _depth int, _code string, _error string"
)
RECORDS_ARROW: Final = pa.schema(
    [
        ("_file_index", pa.int32()),
        ("_seq", pa.int64()),
        ("_file", pa.string()),
        ("_row", pa.int64()),
        ("_line", pa.int64()),
        ("_element", pa.string()),
        ("_record", pa.binary()),
        ("_depth", pa.int32()),
        ("_code", pa.string()),
        ("_error", pa.string()),
    ]
)
#: Columns a records DataFrame may carry besides the source fields.
LOCATION_COLUMNS: Final = ("_file_index", "_seq", "_file", "_row", "_line", "_element")
RESERVED: Final = frozenset(name for name in RECORDS_ARROW.names)

#: Records per Arrow batch a read task yields.
_BATCH: Final = 2048


# --- JSON text of a decoded record ------------------------------------------------------------


def _fragment(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(type(value).__name__)


def _text(value: Any) -> str:
    """JSON text of a value orjson refused (an integer past 64 bits, a lone surrogate)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)  # str (surrogates escaped), int, bool, None


def record_json(data: Any) -> bytes:
    """A decoded JSON record (or a CSV row's dict) as JSON text that :func:`record_data`
    decodes to an equal value: Decimals keep their digits, big integers and lone surrogates
    survive."""
    try:
        return orjson.dumps(data, default=_fragment)
    except (orjson.JSONEncodeError, TypeError):
        return _text(data).encode("ascii")


def _decimal(text: str) -> Decimal:
    return Decimal(text)


def record_data(data: bytes, depth: int | None) -> Any:
    """Undo :func:`record_json` (``depth`` None) or :func:`~fhir_iapt.sources.portable`."""
    if depth is not None:
        return PortableXml(data, depth)
    return json.loads(data, parse_float=_decimal)


# --- read errors ----------------------------------------------------------------------------


def outcome_json(error: FhirIaptError) -> str:
    """The OperationOutcome JSON ``rejects.ndjson`` holds for this error (without the line
    end), as the CLI writes it."""
    return dumps_text(error.to_operation_outcome(), 0).decode("utf-8")


def relocated(error: ReadError, at: Location) -> ReadError:
    """``error`` placed at ``at`` (file, row, line) instead of where a reader of one record's
    text found it; the element and field it named are kept."""

    def move(where: Location | None) -> Location:
        if where is None:
            return at
        return replace(at, element=where.element or at.element, field=where.field)

    issues = [
        Issue(
            diagnostics=i.diagnostics,
            code=i.code,
            severity=i.severity,
            location=move(i.location),
            expression=i.expression,
            error_code=i.error_code,
        )
        for i in error.issues
    ]
    return ReadError(
        error.message, issues=issues, location=move(error.location), error_code=error.error_code
    )


# --- reading files in the executors ---------------------------------------------------------


class ReadTask:
    """mapInArrow over ``spark.range(len(paths))``: each id reads one file with the project's
    reader and yields its items as records rows (one task per file, like the CLI's reader)."""

    def __init__(self, paths: list[str], source: _worker.MappingSource, limits: Limits) -> None:
        self.paths = paths
        self.source = source
        self.limits = limits

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        _worker.task_started()
        mapping = _worker.mapping(self.source)
        for batch in batches:
            for index in batch.column(0).to_pylist():
                yield from self._file(int(index), mapping)

    def _file(self, index: int, mapping: Mapping[Any]) -> Iterator[pa.RecordBatch]:
        path = self.paths[index]
        name = Path(path).name
        rows = _Rows()
        try:
            fh = Path(path).open("rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            error = ReadError(
                f"cannot open input: {exc.strerror or exc}", location=Location(file=name)
            )
            rows.error(index, 0, error, Location(file=name))
            yield rows.batch()
            return
        with fh:
            items = read_records(
                fh,
                name=name,
                fmt=mapping.input_format,
                options=mapping.input_options,
                limits=self.limits,
            )
            for seq, item in enumerate(items):
                if isinstance(item, ReadError):
                    rows.error(index, seq, item, item.location or Location(file=name))
                else:
                    rows.record(index, seq, item)
                if rows.count >= _BATCH:
                    yield rows.batch()
        if rows.count:
            yield rows.batch()


class _Rows:
    """Records rows gathered column by column."""

    def __init__(self) -> None:
        self._columns: list[list[Any]] = [[] for _ in RECORDS_ARROW.names]
        self.count = 0

    def _add(self, *values: Any) -> None:
        for column, value in zip(self._columns, values, strict=True):
            column.append(value)
        self.count += 1

    def record(self, index: int, seq: int, record: SourceRecord) -> None:
        at = record.location
        moved = portable(record).data
        if isinstance(moved, PortableXml):
            data, depth = moved.xml, moved.depth
        else:
            data, depth = record_json(moved), None
        self._add(index, seq, at.file, at.row, at.line, at.element, data, depth, None, None)

    def error(self, index: int, seq: int, error: FhirIaptError, at: Location) -> None:
        self._add(
            index,
            seq,
            at.file,
            at.row,
            at.line,
            at.element,
            None,
            None,
            error.error_code,
            outcome_json(error),
        )

    def batch(self) -> pa.RecordBatch:
        arrays = [
            pa.array(c, type=f.type) for c, f in zip(self._columns, RECORDS_ARROW, strict=True)
        ]
        self._columns = [[] for _ in RECORDS_ARROW.names]
        self.count = 0
        return pa.RecordBatch.from_arrays(arrays, schema=RECORDS_ARROW)


def read_files(
    spark: SparkSession,
    paths: list[str],
    source: _worker.MappingSource,
    limits: Limits,
    partitions: int,
) -> DataFrame:
    """The records of ``paths`` (one read task per file), spread over ``partitions`` for the
    conversion by a hash of their order (no sort, the same spread on every retry)."""
    from pyspark.sql import functions as F

    ids = spark.range(0, len(paths), 1, max(1, len(paths)))
    records = ids.mapInArrow(ReadTask(paths, source, limits), RECORDS_DDL)
    return records.repartition(partitions, F.col("_file_index"), F.col("_seq"))


# --- records of any DataFrame ----------------------------------------------------------------


def _first_tag(text: bytes) -> str | None:
    match = re.search(rb"<\s*(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)", _XML_PROLOG.sub(b"", text))
    return match.group(1).decode("ascii") if match else None


_XML_PROLOG = re.compile(rb"\A\s*(?:<\?xml[^>]*\?>)?\s*")


def xml_document(text: bytes, record_path: str) -> bytes:
    """One record's XML text as a document the XML reader takes: as it is when it starts at
    the record path's root element, else the record element wrapped in its ancestors' tags
    (without their attributes: a field read from an ancestor's attribute is then blank)."""
    tags = record_path_tags(record_path)
    if _first_tag(text) == tags[0]:
        return text
    body = _XML_PROLOG.sub(b"", text)
    opening = b"".join(f"<{t}>".encode() for t in tags[:-1])
    closing = b"".join(f"</{t}>".encode() for t in reversed(tags[:-1]))
    return opening + body + closing


def text_records(
    text: bytes, at: Location, mapping: Mapping[Any], limits: Limits
) -> Iterator[SourceRecord | ReadError]:
    """The records of one record's text, read by the mapping's reader as a one-record file and
    placed at ``at`` (its file, row and line)."""
    fmt = mapping.input_format
    options: dict[str, Any] = dict(mapping.input_options)
    if fmt == "json":
        if b"\n" in text.strip():  # an object over several lines: an array of one
            text, options["layout"] = b"[" + text + b"]", "array"
        else:
            options["layout"] = "ndjson"
    elif fmt == "xml":
        text = xml_document(text, str(options["record"]))
    for item in read_records(
        io.BytesIO(text), name=at.file or "", fmt=fmt, options=options, limits=limits
    ):
        if isinstance(item, ReadError):
            yield relocated(item, at)
            continue
        element = item.location.element if fmt == "fhir" else at.element
        if fmt == "xml" and at.row is not None:
            element = f"{options['record']}[{at.row}]"
        yield SourceRecord(item.data, replace(at, element=element), item.size)


def revived(data: Any, at: Location) -> SourceRecord:
    """A record decoded from its row, at its location (XML parsed again, lines restored)."""
    return revive(SourceRecord(data, at))


def with_row_numbers(df: DataFrame, *, file_column: str | None = None) -> DataFrame:
    """``df`` with ``_row``: 1, 2, ... in the DataFrame's order, per value of ``file_column``
    when given (e.g. ``_file`` from ``F.input_file_name()``).

    For files Spark read (``spark.read.csv`` without ``multiLine``, ``spark.read.text``) that
    order is the file's: Spark reads each file's splits in order. So ``_row`` is the row
    number ``fhir-iapt convert`` reports when no line of the file is blank and no value spans
    lines (the CLI's reader counts neither). Runs one small job (counts per partition) and
    reads ``df`` again for the numbers, so ``df`` must read the same rows each time (files do).
    """
    from pyspark.sql import functions as F

    # monotonically_increasing_id: the partition's id above bit 33, the row's position in the
    # partition below it; the rows of one file are consecutive within a partition
    tagged = df.withColumn("_mid", F.monotonically_increasing_id())
    keys = [F.shiftright("_mid", 33).alias("_p")]
    if file_column is not None:
        keys.append(F.col(file_column).cast("string").alias("_f"))
    counts = (
        tagged.groupBy(*keys)
        .agg(F.count(F.lit(1)).alias("_n"), F.min("_mid").alias("_first"))
        .collect()
    )
    offsets: dict[Any, int] = {}
    table = []
    for item in sorted(counts, key=lambda r: (r["_p"], r["_first"])):
        group = item["_f"] if file_column is not None else None
        done = offsets.get(group, 0)
        table.append((int(item["_p"]), group, int(item["_first"]), done))
        offsets[group] = done + int(item["_n"])
    schema = "_p long, _f string, _first long, _offset long"
    starts = df.sparkSession.createDataFrame(table, schema)
    on = [F.shiftright(tagged["_mid"], 33) == starts["_p"]]
    if file_column is not None:
        on.append(tagged[file_column].cast("string").eqNullSafe(starts["_f"]))
    joined = tagged.join(F.broadcast(starts), on, "inner")
    return joined.select(
        *[tagged[c] for c in df.columns],
        (starts["_offset"] + tagged["_mid"] - starts["_first"] + 1).alias("_row"),
    )


__all__ = [
    "LOCATION_COLUMNS",
    "RECORDS_ARROW",
    "RECORDS_DDL",
    "RESERVED",
    "ReadTask",
    "outcome_json",
    "read_files",
    "record_data",
    "record_json",
    "relocated",
    "revived",
    "text_records",
    "with_row_numbers",
    "xml_document",
]
