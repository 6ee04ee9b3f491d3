"""The conversion per partition, and the DataFrames it gives.

:class:`ConvertTask` is the function ``mapInArrow`` runs in each Python worker over a records
DataFrame (:mod:`fhir_iapt.spark._records`): per record exactly what ``fhir-iapt convert`` does
(:func:`~fhir_iapt.pipeline.convert_record`, the first-bundle shape check, the referral
ledger's row read from the bundle's bytes, a referral that cannot be recorded rejected, FI831),
with the mapping, the checker and any consent register from the process's cache
(:mod:`fhir_iapt.spark._worker`). One row per result: :data:`RESULTS_DDL`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson
import pyarrow as pa  # type: ignore[import-untyped]

from fhir_iapt.consent import ConsentSource
from fhir_iapt.emit.bulk import rewrite_references
from fhir_iapt.errors import Location, ReadError
from fhir_iapt.fhir.options import BuildOptions
from fhir_iapt.ledger import LedgerError, LedgerRow, referral_row
from fhir_iapt.limits import Limits
from fhir_iapt.mapping import Mapping
from fhir_iapt.pipeline import Validation, _Checker, convert_record
from fhir_iapt.results import Converted, Rejected, Result, Skipped
from fhir_iapt.sources import SourceRecord
from fhir_iapt.spark import _records, _worker

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: The ledger row of a converted referral (:data:`fhir_iapt.ledger.LedgerRow`, by name).
LEDGER_FIELDS: Final = (
    ("identifier_system", pa.string()),
    ("identifier", pa.string()),
    ("nhs_number", pa.string()),
    ("authored_on", pa.string()),
    ("performer_ods", pa.string()),
    ("ltc_snomed", pa.string()),
    ("share_outcomes", pa.int32()),
    ("requester_ods", pa.string()),
    ("screening_sent", pa.int32()),
)
_LEDGER_TYPE: Final = pa.struct(list(LEDGER_FIELDS))
_SPARK_TYPES: Final = {pa.string(): "string", pa.int32(): "int", pa.int64(): "long"}

#: One row per result, in the CLI's order by (file_index, seq, part): where it came from, what
#: it came to (status converted / skipped / rejected), and its bundle (JSON, the builder's
#: bytes), skip reason or reject (FI code, OperationOutcome JSON); a referral's ledger row.
RESULTS_ARROW: Final = pa.schema(
    [
        ("file_index", pa.int32()),
        ("seq", pa.int64()),
        ("part", pa.int32()),
        ("file", pa.string()),
        ("row", pa.int64()),
        ("line", pa.int64()),
        ("element", pa.string()),
        ("field", pa.string()),
        ("status", pa.string()),
        ("kind", pa.string()),
        ("key", pa.string()),
        ("bundle", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("code", pa.string()),
        ("outcome", pa.string()),
        ("ledger", _LEDGER_TYPE),
    ]
)


def _ddl(schema: pa.Schema) -> str:
    parts = []
    for item in schema:
        if pa.types.is_struct(item.type):
            inner = ", ".join(f"{f.name}: {_SPARK_TYPES[f.type]}" for f in item.type)
            parts.append(f"{item.name} struct<{inner}>")
        else:
            parts.append(f"{item.name} {_SPARK_TYPES[item.type]}")
    return ", ".join(parts)


RESULTS_DDL: Final = _ddl(RESULTS_ARROW)
ORDER: Final = ("file_index", "seq", "part")

#: Results per Arrow batch, or fewer when their bundles pass this many bytes.
_BATCH_ROWS: Final = 1000
_BATCH_BYTES: Final = 16 << 20

Mode = Literal["records", "text", "flat"]


class _Out:
    """Result rows gathered column by column, flushed as Arrow batches."""

    def __init__(self, schema: pa.Schema = RESULTS_ARROW) -> None:
        self.schema = schema
        self._reset()

    def _reset(self) -> None:
        self.columns: list[list[Any]] = [[] for _ in self.schema.names]
        self.count = 0
        self.bytes = 0

    @property
    def full(self) -> bool:
        return self.count >= _BATCH_ROWS or self.bytes >= _BATCH_BYTES

    def add(
        self,
        order: tuple[int, int, int],
        at: Location,
        status: str | None,
        *,
        kind: str | None = None,
        key: str | None = None,
        bundle: str | None = None,
        reason: str | None = None,
        detail: str | None = None,
        code: str | None = None,
        outcome: str | None = None,
        ledger: LedgerRow | None = None,
        extra: tuple[Any, ...] = (),
    ) -> None:
        values = (
            *order,
            at.file,
            at.row,
            at.line,
            at.element,
            at.field,
            status,
            kind,
            key,
            bundle,
            reason,
            detail,
            code,
            outcome,
            dict(zip((n for n, _ in LEDGER_FIELDS), ledger, strict=True)) if ledger else None,
            *extra,
        )
        for column, value in zip(self.columns, values, strict=True):
            column.append(value)
        self.count += 1
        self.bytes += len(bundle or "") + len(outcome or "")

    def result(
        self, order: tuple[int, int, int], result: Result, extra: tuple[Any, ...] = ()
    ) -> None:
        """Add one pipeline result (a converted referral's ledger row read from its bytes)."""
        if isinstance(result, Converted):
            data = result.json()
            row: LedgerRow | None = None
            if result.kind == "referral":
                try:
                    row = referral_row(data)
                except LedgerError as exc:  # as the CLI: nothing sent that is not recorded
                    self.result(order, Rejected(exc, exc.location or result.location), extra)
                    return
            self.add(
                order,
                result.location,
                "converted",
                kind=result.kind,
                key=result.key,
                bundle=data.decode("utf-8"),
                ledger=row,
                extra=extra,
            )
        elif isinstance(result, Skipped):
            self.add(
                order,
                result.location,
                "skipped",
                key=result.key,
                reason=result.reason,
                detail=result.detail,
                extra=extra,
            )
        else:
            self.add(
                order,
                result.location,
                "rejected",
                code=result.error.error_code,
                outcome=_records.outcome_json(result.error),
                extra=extra,
            )

    def batch(self) -> pa.RecordBatch:
        arrays = [pa.array(c, type=f.type) for c, f in zip(self.columns, self.schema, strict=True)]
        self._reset()
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _location(columns: dict[str, list[Any]], i: int) -> Location:
    return Location(
        file=columns["_file"][i],
        row=columns["_row"][i],
        line=columns["_line"][i],
        element=columns["_element"][i],
    )


class ConvertTask:
    """mapInArrow: records rows in, result rows out (:data:`RESULTS_DDL`)."""

    def __init__(
        self,
        source: _worker.MappingSource,
        *,
        mode: Mode,
        fields: tuple[str, ...],
        text_column: str | None,
        options: BuildOptions,
        validation: Validation,
        consent: ConsentSource | None,
        limits: Limits,
    ) -> None:
        self.source = source
        self.mode = mode
        self.fields = fields
        self.text_column = text_column
        self.options = options
        self.validation = validation
        self.consent = consent
        self.limits = limits

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        _worker.task_started()
        mapping = _worker.mapping(self.source)
        check = _worker.checker(self.source.key, self.validation, self.options)
        consent = _worker.consent(self.consent)
        out = _Out()
        for batch in batches:
            columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
            for i in range(batch.num_rows):
                self._row(columns, i, mapping, check, consent, out)
                if out.full:
                    yield out.batch()
        if out.count:
            yield out.batch()

    def _row(
        self,
        columns: dict[str, list[Any]],
        i: int,
        mapping: Mapping[Any],
        check: _Checker,
        consent: ConsentSource | None,
        out: _Out,
    ) -> None:
        at = _location(columns, i)
        index = columns["_file_index"][i] or 0
        seq = columns["_seq"][i] or 0
        if self.mode == "records" and columns["_error"][i] is not None:
            out.add(
                (index, seq, 0),
                at,
                "rejected",
                code=columns["_code"][i],
                outcome=columns["_error"][i],
            )
            return
        for part, item in enumerate(self._items(columns, i, at, mapping)):
            order = (index, seq, part)
            if isinstance(item, ReadError):
                out.result(order, Rejected(item, item.location or at))
                continue
            result = convert_record(item, mapping, self.options, consent=consent)
            out.result(order, check(result))

    def _items(
        self, columns: dict[str, list[Any]], i: int, at: Location, mapping: Mapping[Any]
    ) -> Iterator[SourceRecord | ReadError]:
        if self.mode == "records":
            data = columns["_record"][i]
            depth = columns["_depth"][i]
            yield _records.revived(_records.record_data(data, depth), at)
        elif self.mode == "text":
            assert self.text_column is not None
            text = columns[self.text_column][i]
            if text is None:
                text = b""
            elif isinstance(text, str):
                text = text.encode("utf-8", "surrogateescape")
            yield from _records.text_records(text, at, mapping, self.limits)
        else:
            yield SourceRecord({name: (columns[name][i] or "") for name in self.fields}, at)


# --- resources (the Bulk Data layout) ---------------------------------------------------------

RESOURCES_ARROW: Final = pa.schema(
    [
        ("resourceType", pa.string()),
        ("id", pa.string()),
        ("resource", pa.string()),
        ("file_index", pa.int32()),
        ("seq", pa.int64()),
        ("part", pa.int32()),
        ("entry", pa.int32()),
    ]
)
RESOURCES_DDL: Final = _ddl(RESOURCES_ARROW)


def bundle_resources(data: bytes) -> Iterator[tuple[str, str, bytes, int]]:
    """The resources of one transaction Bundle as the Bulk Data layout writes them
    (:class:`~fhir_iapt.emit.BulkWriter`): each once, its references to resources of the same
    bundle rewritten from ``urn:uuid:<id>`` to ``<Type>/<id>``; with each its entry's index."""
    bundle = orjson.loads(data)
    entries = [
        (index, e["resource"]) for index, e in enumerate(bundle.get("entry", ())) if "resource" in e
    ]
    keys = [f"{r['resourceType']}/{r['id']}" for _, r in entries]
    targets = {r["id"].encode(): key.encode() for (_, r), key in zip(entries, keys, strict=True)}
    done: set[str] = set()
    for (index, resource), key in zip(entries, keys, strict=True):
        if key in done:  # a resource twice in one bundle is written once
            continue
        done.add(key)
        text = rewrite_references(orjson.dumps(resource), targets)
        yield resource["resourceType"], resource["id"], text, index


class ExplodeTask:
    """mapInArrow: bundle rows in, one row per resource out (:data:`RESOURCES_DDL`)."""

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
            rows: list[list[Any]] = [[] for _ in RESOURCES_ARROW.names]
            for i, text in enumerate(columns["bundle"]):
                order = (columns["file_index"][i], columns["seq"][i], columns["part"][i])
                for kind, ident, data, entry in bundle_resources(text.encode("utf-8")):
                    for column, value in zip(
                        rows, (kind, ident, data.decode("utf-8"), *order, entry), strict=True
                    ):
                        column.append(value)
            arrays = [pa.array(c, type=f.type) for c, f in zip(rows, RESOURCES_ARROW, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, schema=RESOURCES_ARROW)


def resources_of(bundles: DataFrame) -> DataFrame:
    """Every resource of the bundles, once per ``resourceType`` and ``id``: the copy of the
    first bundle in the CLI's order, as ``--layout bulk`` keeps the first copy it writes.
    ``first`` is that bundle's place (file_index, seq, part, entry), to sort by."""
    from pyspark.sql import functions as F

    exploded = bundles.select("file_index", "seq", "part", "bundle").mapInArrow(
        ExplodeTask(), RESOURCES_DDL
    )
    first = F.struct("file_index", "seq", "part", "entry")
    return exploded.groupBy("resourceType", "id").agg(
        F.min_by("resource", first).alias("resource"), F.min(first).alias("first")
    )


__all__ = [
    "LEDGER_FIELDS",
    "ORDER",
    "RESOURCES_DDL",
    "RESULTS_ARROW",
    "RESULTS_DDL",
    "ConvertTask",
    "ExplodeTask",
    "bundle_resources",
    "resources_of",
]
