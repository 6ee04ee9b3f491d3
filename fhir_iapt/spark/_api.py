"""convert / convert_files / outcome_files: DataFrames in, a :class:`Conversion` out."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhir_iapt.consent import ConsentSource
from fhir_iapt.errors import Location, MappingError, ReadError
from fhir_iapt.fhir.options import DEFAULT_OPTIONS, BuildOptions
from fhir_iapt.limits import Limits, current
from fhir_iapt.mapping import Mapping as MappingFile
from fhir_iapt.mapping import load_mapping
from fhir_iapt.pipeline import MappingRef, Tally, Validation
from fhir_iapt.spark import _convert, _records, _worker

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


class Conversion:
    """What converting a DataFrame of records gives; every frame is lazy (nothing runs until
    it is written or collected, and each action converts again unless ``results`` is
    persisted or :func:`~fhir_iapt.spark.write_output` writes them, which converts once).

    ``results``    one row per result in the CLI's order by ``file_index, seq, part``: its
                   location (``file, row, line, element, field``), ``status`` (converted /
                   skipped / rejected), ``kind``, ``key``, ``bundle`` (JSON), ``reason`` and
                   ``detail`` (skipped), ``code`` and ``outcome`` (rejected: its FI code and
                   the OperationOutcome ``rejects.ndjson`` holds), ``ledger`` (a referral's
                   ledger row, :data:`fhir_iapt.ledger.LedgerRow` by name)
    ``bundles``    the converted: order, location, ``kind``, ``key``, ``bundle``
    ``resources``  the Bulk Data layout: ``resourceType``, ``id``, ``resource`` (JSON, each id
                   once: the first bundle's copy, references within a bundle as
                   ``<Type>/<id>``) and ``first`` (where it was first seen, to sort by)
    ``rejects``    order, location, ``code``, ``outcome``
    ``skipped``    order, location, ``key``, ``reason``, ``detail``
    ``ledger_rows`` the converted referrals' ledger rows (what ``convert --ledger`` records)
    """

    def __init__(
        self,
        frame: DataFrame,
        inputs: Sequence[str],
        summary_extra: Callable[[DataFrame], Mapping[str, Any]] | None = None,
    ) -> None:
        #: everything the conversion gives: the results and, for a data set, a report row per
        #: provider (``status`` null; what ``summary_extra`` reads)
        self.frame = frame
        self.inputs = list(inputs)
        self._summary_extra = summary_extra

    @property
    def results(self) -> DataFrame:
        from pyspark.sql import functions as F

        if self._summary_extra is None:
            return self.frame
        return self.frame.where(F.col("status").isNotNull())

    def _where(self, status: str, *columns: str) -> DataFrame:
        from pyspark.sql import functions as F

        located = (*_convert.ORDER, "file", "row", "line", "element", "field")
        return self.results.where(F.col("status") == status).select(*located, *columns)

    @property
    def bundles(self) -> DataFrame:
        return self._where("converted", "kind", "key", "bundle")

    @property
    def rejects(self) -> DataFrame:
        return self._where("rejected", "code", "outcome")

    @property
    def skipped(self) -> DataFrame:
        return self._where("skipped", "key", "reason", "detail")

    @property
    def ledger_rows(self) -> DataFrame:
        from pyspark.sql import functions as F

        return self.results.where(F.col("ledger").isNotNull()).select("ledger.*")

    @property
    def resources(self) -> DataFrame:
        return _convert.resources_of(self.bundles)

    def summary(self, frame: DataFrame | None = None) -> dict[str, Any]:
        """What ``summary.json`` holds for this run: records, converted, skipped and rejected
        by reason and code, the inputs (a small job over ``frame``: this conversion's, or the
        same rows written out and read back)."""
        source = frame if frame is not None else self.frame
        counts = source.groupBy("status", "reason", "code").count().collect()
        tally = Tally()
        for row in counts:
            n = int(row["count"])
            if row["status"] is None:  # a data set's report rows
                continue
            tally.records += n
            if row["status"] == "converted":
                tally.converted += n
            elif row["status"] == "skipped":
                tally.skipped[row["reason"]] = tally.skipped.get(row["reason"], 0) + n
            else:
                tally.rejected[row["code"]] = tally.rejected.get(row["code"], 0) + n
        summary = tally.as_dict()
        summary["inputs"] = list(self.inputs)
        if self._summary_extra is not None:
            summary.update(self._summary_extra(source))
        return summary


def _mapping(mapping: MappingRef) -> MappingFile[Any]:
    return mapping if isinstance(mapping, MappingFile) else load_mapping(mapping)


def _typed(df: DataFrame, name: str, spark_type: str) -> Column:
    from pyspark.sql import functions as F

    if name in df.columns:
        return F.col(name).cast(spark_type).alias(name)
    return F.lit(None).cast(spark_type).alias(name)


def _order(df: DataFrame) -> list[Column]:
    from pyspark.sql import functions as F

    index = (F.col("_file_index").cast("int") if "_file_index" in df.columns else F.lit(0)).alias(
        "_file_index"
    )
    if "_seq" in df.columns:
        seq = F.col("_seq").cast("long")
    elif "_row" in df.columns:
        seq = F.col("_row").cast("long")
    else:
        seq = F.monotonically_increasing_id()
    return [index, seq.alias("_seq")]


def _missing_columns(mapping: MappingFile[Any], columns: Sequence[str]) -> ReadError | None:
    required = tuple(mapping.input_options.get("required_columns", ()))
    missing = [c for c in required if c not in columns]
    if not missing:
        return None
    return ReadError(
        f"the DataFrame lacks the column(s) the mapping reads: {', '.join(missing)}",
        location=Location(element="DataFrame"),
        error_code="FI102",
    )


def convert(
    records: DataFrame,
    mapping: MappingRef,
    *,
    text_column: str | None = None,
    options: BuildOptions = DEFAULT_OPTIONS,
    validation: Validation = "first",
    consent: ConsentSource | None = None,
    limits: Limits | None = None,
    inputs: Sequence[str] = (),
) -> Conversion:
    """Convert a DataFrame of source records with a bundled mapping name, a mapping file or a
    loaded :class:`~fhir_iapt.mapping.Mapping`, per partition (``mapInArrow``).

    ``records`` is one of:

    * what :func:`read_files` gives (the project's readers ran over files: exact locations);
    * for a CSV mapping, a column per source field (``spark.read.csv(..., header=True)``,
      every column read as text; a null is an empty cell); a column the mapping reads that is
      missing raises :class:`~fhir_iapt.errors.ReadError` (FI102) here, before anything runs;
    * with ``text_column``, one record's text per row: a JSON object (``cardiac-json``, a FHIR
      resource for ``questionnaire-response``) or an XML record element, alone or under its
      ancestors, each read by the mapping's reader with the input ``limits`` (default: the
      driver's ``FHIR_IAPT_MAX_*``).

    Locations come from the optional ``_file``, ``_row``, ``_line``, ``_element`` columns
    (:func:`with_row_numbers`), the outputs' order from ``_file_index`` and ``_seq`` (else
    ``_row``, else the DataFrame's order). The mapping's file and the lookup tables beside it
    travel with the job and are loaded once per executor process; so is the shape check
    (``validation="first"``: the first bundle each process converts) and a
    :class:`~fhir_iapt.consent.ConsentFiles` register (its paths must be readable there).
    """
    loaded = _mapping(mapping)
    source = _worker.MappingSource.of(loaded)
    bounds = limits if limits is not None else current()
    location = [
        _typed(records, "_file", "string"),
        _typed(records, "_row", "long"),
        _typed(records, "_line", "long"),
        _typed(records, "_element", "string"),
    ]
    fields: tuple[str, ...] = ()
    if "_record" in records.columns:
        mode: _convert.Mode = "records"
        extra = [
            _typed(records, "_record", "binary"),
            _typed(records, "_depth", "int"),
            _typed(records, "_code", "string"),
            _typed(records, "_error", "string"),
        ]
    elif text_column is not None:
        mode = "text"
        if text_column not in records.columns:
            raise ValueError(f"records has no column {text_column!r}")
        extra = [_typed(records, text_column, "binary")]
    else:
        if loaded.input_format != "csv":
            raise ValueError(
                f"mapping {loaded.name!r} reads {loaded.input_format} records: give "
                "text_column (a column of record text) or records from read_files"
            )
        mode = "flat"
        fields = tuple(c for c in records.columns if c not in _records.RESERVED)
        problem = _missing_columns(loaded, fields)
        if problem is not None:
            raise problem
        extra = [_typed(records, name, "string") for name in fields]
    prepared = records.select(*_order(records), *location, *extra)
    task = _convert.ConvertTask(
        source,
        mode=mode,
        fields=fields,
        text_column=text_column,
        options=options,
        validation=validation,
        consent=consent,
        limits=bounds,
    )
    return Conversion(prepared.mapInArrow(task, _convert.RESULTS_DDL), inputs)


def _partitions(spark: SparkSession, partitions: int | None) -> int:
    if partitions is not None:
        if partitions < 1:
            raise ValueError("partitions must be 1 or more")
        return partitions
    try:
        return max(1, int(spark.sparkContext.defaultParallelism))
    except Exception:  # Spark Connect has no SparkContext
        return max(1, int(spark.conf.get("spark.sql.shuffle.partitions") or 1))


def read_files(
    spark: SparkSession,
    paths: Sequence[str | os.PathLike[str]],
    mapping: MappingRef,
    *,
    partitions: int | None = None,
    limits: Limits | None = None,
) -> DataFrame:
    """The records of export files, read in the executors by the project's reader for the
    mapping's format (one task per file; the paths must be readable there: local paths in
    local mode, ``/Volumes/...`` or ``/dbfs/...`` on Databricks) and spread over
    ``partitions`` (default: the cluster's parallelism) for :func:`convert`. Each row is one
    item the reader yielded (a record or a read error) with the location ``fhir-iapt
    convert`` reports for it."""
    loaded = _mapping(mapping)
    bounds = limits if limits is not None else current()
    return _records.read_files(
        spark,
        [os.fspath(p) for p in paths],
        _worker.MappingSource.of(loaded),
        bounds,
        _partitions(spark, partitions),
    )


def convert_files(
    spark: SparkSession,
    paths: Sequence[str | os.PathLike[str]],
    mapping: MappingRef,
    *,
    partitions: int | None = None,
    options: BuildOptions = DEFAULT_OPTIONS,
    validation: Validation = "first",
    consent: ConsentSource | None = None,
    limits: Limits | None = None,
) -> Conversion:
    """:func:`read_files` then :func:`convert`: ``fhir-iapt convert PATHS --mapping MAPPING``
    on Spark (the same results, locations and summary)."""
    loaded = _mapping(mapping)
    bounds = limits if limits is not None else current()
    records = read_files(spark, paths, loaded, partitions=partitions, limits=bounds)
    return convert(
        records,
        loaded,
        options=options,
        validation=validation,
        consent=consent,
        limits=bounds,
        inputs=[Path(p).name for p in paths],
    )


#: The bundled mapping for episode exports (``fhir-iapt outcomes``' default).
OUTCOMES_MAPPING = "iapt-outcomes"


def outcome_files(
    spark: SparkSession,
    paths: Sequence[str | os.PathLike[str]],
    mapping: MappingRef = OUTCOMES_MAPPING,
    *,
    partitions: int | None = None,
    options: BuildOptions = DEFAULT_OPTIONS,
    validation: Validation = "first",
    consent: ConsentSource | None = None,
    limits: Limits | None = None,
) -> Conversion:
    """``fhir-iapt outcomes PATHS`` on Spark: episode exports (default mapping
    ``iapt-outcomes``; any mapping whose target is ``episode``, or ``questionnaire-response``
    for FHIR QuestionnaireResponse files, which need a ``consent`` register) to outcome
    bundles, each only with the patient's recorded consent."""
    loaded = _mapping(mapping)
    if loaded.target not in ("episode", "questionnaire-response"):
        raise MappingError(
            f"mapping {loaded.name!r} has target {loaded.target!r}; outcomes needs an "
            "'episode' mapping",
            location=Location(file=str(loaded.path) if loaded.path else loaded.name),
        )
    return convert_files(
        spark,
        paths,
        loaded,
        partitions=partitions,
        options=options,
        validation=validation,
        consent=consent,
        limits=limits,
    )


__all__ = [
    "OUTCOMES_MAPPING",
    "Conversion",
    "convert",
    "convert_files",
    "outcome_files",
    "read_files",
]
