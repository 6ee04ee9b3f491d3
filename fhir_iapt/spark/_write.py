"""Write a conversion as ``fhir-iapt convert`` does: bundles.ndjson (or one ``<Type>.ndjson``
per resource type), rejects.ndjson and summary.json in one folder, or the bundles and resources
as Parquet; record the converted referrals in a referral ledger.

The conversion runs once: its results are written to a Parquet staging folder inside the
output folder (compressed and columnar, so each output reads only its columns), every output is
written from there by Spark, and each NDJSON file is put together from Spark's part files, in
order, under a temporary name renamed into place (as the CLI's files are). The folder must be
one that Spark and the driver's Python both see at the same path: a local path in local mode,
a ``/Volumes/...`` path on Databricks.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fhir_iapt.emit import BUNDLES_FILE, REJECTS_FILE, write_summary
from fhir_iapt.emit._atomic import AtomicFile, emit_error, temp_path
from fhir_iapt.ledger import Ledger, LedgerRow
from fhir_iapt.spark._api import Conversion
from fhir_iapt.spark._convert import LEDGER_FIELDS, ORDER, resources_of

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

Layout = Literal["bundles", "bulk"]
Format = Literal["ndjson", "parquet"]

#: Ledger rows recorded per transaction (as ``fhir-iapt convert`` does).
LEDGER_BATCH = 1000


def _literal(path: Path) -> str:
    """``path`` for Spark's readers, which take a path as a glob: ``[``, ``{``, ``*``, ``?``
    and ``\\`` in a folder's name (``out[1]``) escaped to stand for themselves."""
    return re.sub(r"([\[\]{}*?\\])", r"\\\1", str(path))


def _parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("part-") and p.is_file())


def _join_parts(folder: Path, target: Path) -> None:
    """Spark's part files of a text output, in order, as one file: the first part renamed to
    a temporary name beside ``target`` (no copy), the others appended, then renamed into
    place (as :class:`~fhir_iapt.emit._atomic.AtomicFile` does)."""
    parts = _parts(folder) if folder.is_dir() else []
    if not parts:
        AtomicFile(target).commit()  # an empty output is still a file
        return
    tmp = temp_path(target)
    try:
        parts[0].replace(tmp)
        with tmp.open("ab") as out:
            for part in parts[1:]:
                with part.open("rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise emit_error("cannot finish output file", target, exc) from exc


def _text(df: DataFrame, column: str, folder: Path, target: Path) -> None:
    df.select(column).write.mode("overwrite").text(str(folder))
    _join_parts(folder, target)


_NAMES = tuple(name for name, _ in LEDGER_FIELDS)


def _row(values: Mapping[str, Any]) -> LedgerRow:
    v = [values[name] for name in _NAMES]
    return (v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8])


def _latest(results: DataFrame) -> DataFrame:
    """One ledger row per referral identifier: the last in the CLI's order, which is the one
    the CLI's recording (an update per re-sent referral) leaves in the ledger."""
    from pyspark.sql import functions as F

    referrals = results.where(F.col("ledger").isNotNull())
    keys = [F.col("ledger.identifier_system"), F.col("ledger.identifier")]
    last = F.max_by("ledger", F.struct(*ORDER)).alias("ledger")
    return referrals.groupBy(*keys).agg(last).select("ledger")


def _collected_rows(results: DataFrame) -> Iterator[LedgerRow]:
    for row in _latest(results).select("ledger.*").toLocalIterator():
        yield _row(row.asDict())


def _staged_rows(folder: Path) -> Iterator[LedgerRow]:
    """The ledger rows of results staged as Parquet, read here with pyarrow (the driver sees
    the staging folder), without a trip through Spark's collect."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    for part in sorted(folder.glob("part-*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(columns=["ledger"], batch_size=8192):
            for values in batch.column(0).to_pylist():
                if values is not None:
                    yield _row(values)


def _record(rows: Iterable[LedgerRow], path: str | os.PathLike[str]) -> int:
    recorded = 0
    batch: list[LedgerRow] = []
    with Ledger(path) as ledger:
        for row in rows:
            batch.append(row)
            if len(batch) >= LEDGER_BATCH:
                recorded += ledger.record_rows(batch)
                batch = []
        recorded += ledger.record_rows(batch)
    return recorded


def record_ledger(source: Conversion | DataFrame, path: str | os.PathLike[str]) -> int:
    """Record every converted referral of a conversion (or of its ``results``) in the referral
    ledger at ``path`` (on the driver), :data:`LEDGER_BATCH` a transaction; returns how many.
    Raises :class:`~fhir_iapt.ledger.LedgerError` when the ledger cannot be written.
    (:func:`write_output` records from the rows it staged, without converting again.)"""
    results = source.results if isinstance(source, Conversion) else source
    return _record(_collected_rows(results), path)


def write_output(
    conversion: Conversion,
    out_dir: str | os.PathLike[str],
    *,
    layout: Layout = "bundles",
    output_format: Format = "ndjson",
    ordered: bool = False,
    ledger: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Convert once and write what ``fhir-iapt convert --out OUT_DIR`` writes; return the
    summary (also written as ``summary.json``).

    ``layout="bundles"``: ``bundles.ndjson``; ``"bulk"``: one ``<ResourceType>.ndjson`` per
    type, each resource once (the first bundle's copy). ``output_format="parquet"`` writes
    them as Parquet datasets instead (``bundles.parquet/``; ``resources.parquet/`` partitioned
    by ``resourceType``). ``rejects.ndjson`` (in the CLI's order) and ``summary.json`` are
    always written. ``ordered=True`` puts the bundles (and each type's resources) in the
    CLI's order, so the files equal the CLI's byte for byte, at the cost of a sort; without
    it, their lines are the same in Spark's order. With ``ledger``, the converted referrals
    are recorded in that referral ledger (:func:`record_ledger`).
    """
    from pyspark.sql import functions as F

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".fhir-iapt-staging-{uuid.uuid4().hex}"
    try:
        conversion.frame.write.parquet(str(staging / "results"))
        spark = conversion.frame.sparkSession
        frame = spark.read.parquet(_literal(staging / "results"))
        results = frame.where(F.col("status").isNotNull())
        converted = results.where(F.col("status") == "converted")
        rejects = results.where(F.col("status") == "rejected").orderBy(*ORDER)
        _text(rejects, "outcome", staging / "rejects", out / REJECTS_FILE)
        if layout == "bundles":
            bundles = converted.orderBy(*ORDER) if ordered else converted
            if output_format == "parquet":
                bundles.select(*ORDER, "file", "row", "kind", "key", "bundle").write.mode(
                    "overwrite"
                ).parquet(str(out / "bundles.parquet"))
            else:
                _text(bundles, "bundle", staging / "bundles", out / BUNDLES_FILE)
        else:
            _write_resources(resources_of(converted), out, staging, output_format, ordered)
        summary = conversion.summary(frame)
        if ledger is not None:
            _latest(results).write.parquet(str(staging / "ledger"))
            _record(_staged_rows(staging / "ledger"), ledger)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_summary(out, summary)
    return summary


def _write_resources(
    resources: DataFrame, out: Path, staging: Path, output_format: Format, ordered: bool
) -> None:
    if output_format == "parquet":
        resources.select("resourceType", "id", "resource").write.mode("overwrite").partitionBy(
            "resourceType"
        ).parquet(str(out / "resources.parquet"))
        return
    # one partition per type, each in the order of its first bundle: one part file per type
    by_type = resources.repartition("resourceType")
    if ordered:
        by_type = by_type.sortWithinPartitions("resourceType", "first")
    folder = staging / "resources"
    by_type.select("resourceType", "resource").write.mode("overwrite").partitionBy(
        "resourceType"
    ).text(str(folder))
    if not folder.is_dir():
        return
    for typed in sorted(folder.iterdir()):
        prefix = "resourceType="
        if typed.is_dir() and typed.name.startswith(prefix):
            kind = typed.name[len(prefix) :]
            if kind.isalnum():
                _join_parts(typed, out / f"{kind}.ndjson")


__all__ = ["LEDGER_BATCH", "Format", "Layout", "record_ledger", "write_output"]
