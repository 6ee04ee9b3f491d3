"""``fhir-iapt outcomes DIR --dataset tt-v2.1`` on Spark: one task per Talking Therapies provider.

The data-set reader (:func:`~fhir_iapt.dataset.read_dataset`) needs every table of a provider's
submissions together: a pathway joins rows of nine tables, and a later month or a Refresh
replaces earlier rows. Nothing joins one provider's rows to another's, so the provider is the
unit of work. The driver finds the submissions (headers only: the same file errors as the CLI,
and with any, nothing is derived) and groups them by provider; each task mirrors its provider's
submission folders (links to the table files, the same names relative to the directory, so
every location reads as the CLI's) and runs the existing reader, ledger match and builder over
them (:func:`~fhir_iapt.pipeline.convert_dataset`) unchanged.

The referral ledger is a snapshot taken in the driver (SQLite's backup: every committed entry)
and shipped to the executors with the job (``SparkContext.addFile``), opened once per process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import pyarrow as pa  # type: ignore[import-untyped]

from fhir_iapt.consent import ConsentSource
from fhir_iapt.dataset import dataset_spec
from fhir_iapt.dataset._submissions import SUFFIXES, find_submissions
from fhir_iapt.dataset._tables import TABLE_NAMES
from fhir_iapt.errors import ConfigError, Location
from fhir_iapt.fhir.options import BuildOptions
from fhir_iapt.ledger import DEFAULT_WINDOW_DAYS, Ledger
from fhir_iapt.limits import Limits, current
from fhir_iapt.pipeline import DatasetReport, Validation, convert_dataset
from fhir_iapt.results import Rejected
from fhir_iapt.spark import _worker
from fhir_iapt.spark._api import Conversion
from fhir_iapt.spark._convert import RESULTS_ARROW, _ddl, _Out

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The results, and a provider's DatasetReport (``report``, JSON) on a row of its own.
DATASET_ARROW: Final = RESULTS_ARROW.append(pa.field("report", pa.string()))
DATASET_DDL: Final = _ddl(DATASET_ARROW)
#: The process cache's key for the data set's shape check (it has no mapping file).
_CHECK_KEY: Final = "tt-v2.1"
#: ``fhir-iapt outcomes --dataset``'s default: PUT, so next month's data set updates the
#: outcome it sent before.
DATASET_OPTIONS: Final = BuildOptions(request_method="put")


def _mirror(root: Path, labels: list[str], into: Path) -> Path:
    """A folder named like ``root`` holding links to the table files of the submissions
    ``labels`` (folders relative to ``root``), at the same relative paths."""
    mirror = into / root.name
    mirror.mkdir()
    for label in labels:
        source = root if label == "." else root / label
        target = mirror if label == "." else mirror / label
        target.mkdir(parents=True, exist_ok=True)
        for table in TABLE_NAMES:
            for suffix in SUFFIXES:
                found = source / f"{table}{suffix}"
                if found.is_file():
                    (target / found.name).symlink_to(found.resolve())
    return mirror


def _spark_file(name: str) -> str:
    from pyspark import SparkFiles

    return SparkFiles.get(name)


class DatasetTask:
    """mapInArrow over ``spark.range(len(groups))``: each id converts one provider."""

    def __init__(
        self,
        root: str,
        groups: list[tuple[str, list[str]]],
        ledger_name: str,
        *,
        consent: ConsentSource | None,
        window_days: int,
        options: BuildOptions,
        validation: Validation,
        limits: Limits,
    ) -> None:
        self.root = root
        self.groups = groups
        self.ledger_name = ledger_name
        self.consent = consent
        self.window_days = window_days
        self.options = options
        self.validation = validation
        self.limits = limits

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        _worker.task_started()
        for batch in batches:
            for index in batch.column(0).to_pylist():
                yield from self._provider(int(index))

    def _provider(self, index: int) -> Iterator[pa.RecordBatch]:
        from fhir_iapt.limits import ENV_VARS

        ledger = _worker.ledger(self.ledger_name, lambda: _spark_file(self.ledger_name))
        check = _worker.checker(_CHECK_KEY, self.validation, self.options)
        consent = _worker.consent(self.consent)
        _, labels = self.groups[index]
        out = _Out(DATASET_ARROW)
        report = DatasetReport()
        saved = {name: os.environ.get(var) for name, var in ENV_VARS.items()}
        with tempfile.TemporaryDirectory(prefix="fhir-iapt-dataset-") as scratch:
            mirror = _mirror(Path(self.root), labels, Path(scratch))
            try:
                _limits_env(self.limits)  # the reader reads the driver's limits
                results = convert_dataset(
                    mirror,
                    ledger=ledger,
                    consent=consent,
                    window_days=self.window_days,
                    options=self.options,
                    validation="none",
                    report=report,
                    workdir=scratch,
                )
                for seq, result in enumerate(results):
                    out.result((index, seq, 0), check(result), extra=(None,))
                    if out.full:
                        yield out.batch()
            finally:
                _restore_env(saved)
        out.add((index, -1, 0), Location(), None, extra=(_json(report),))
        yield out.batch()


def _json(report: DatasetReport) -> str:
    return orjson.dumps(report.as_dict()).decode("utf-8")


def _limits_env(limits: Limits) -> None:
    from fhir_iapt.limits import ENV_VARS

    for name, var in ENV_VARS.items():
        os.environ[var] = str(getattr(limits, name))


def _restore_env(saved: Mapping[str, str | None]) -> None:
    from fhir_iapt.limits import ENV_VARS

    for name, value in saved.items():
        if value is None:
            os.environ.pop(ENV_VARS[name], None)
        else:
            os.environ[ENV_VARS[name]] = value


def merged_report(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One data set's ``DatasetReport.as_dict()`` from its providers' (in provider order)."""
    by_field: dict[str, int] = {}
    items: list[Any] = []
    pathways = disagreeing = 0
    for report in reports:
        pathways += int(report["pathways"])
        disagreeing += int(report["pathways_disagreeing"])
        for name, count in report["by_field"].items():
            by_field[name] = by_field.get(name, 0) + int(count)
        items.extend(report["items"])
    return {
        "pathways": pathways,
        "pathways_disagreeing": disagreeing,
        "by_field": dict(sorted(by_field.items())),
        "items": items,
    }


def _report_of(frame: DataFrame) -> dict[str, Any]:
    from pyspark.sql import functions as F

    rows = frame.where(F.col("status").isNull()).select("file_index", "report").collect()
    ordered = sorted(rows, key=lambda r: r["file_index"])
    return {"dataset": merged_report([orjson.loads(r["report"]) for r in ordered])}


def ledger_file(path: str | os.PathLike[str]) -> Path:
    """The ledger's path; ConfigError when there is no file there (opening it would make an
    empty ledger, and every pathway would go unmatched)."""
    found = Path(path)
    if not found.is_file():
        raise ConfigError(
            "there is no referral ledger here: convert (or the relay) records the referrals "
            "it sends in it; give ledger=",
            location=Location(file=str(found)),
        )
    return found


_snapshots: dict[str, Path] = {}


def _ship_ledger(spark: SparkSession, path: Path) -> str:
    """A consistent copy of the ledger (SQLite's online backup), named by its content and
    added to the job's files; returns its name."""
    with Ledger(path):  # refuses a file that is not a ledger, and migrates an older one
        pass
    scratch = Path(tempfile.mkdtemp(prefix="fhir-iapt-ledger-"))
    copy = scratch / "ledger.sqlite"
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()[:24]
    name = f"fhir-iapt-ledger-{digest}.sqlite"
    known = _snapshots.get(name)
    if known is not None:
        shutil.rmtree(scratch, ignore_errors=True)
        return name
    final = scratch / name
    copy.rename(final)
    try:
        spark.sparkContext.addFile(str(final))
    except Exception:  # Spark Connect: no SparkContext; files travel as artifacts
        spark.addArtifacts(str(final), file=True)
    _snapshots[name] = final
    return name


def dataset_outcomes(
    spark: SparkSession,
    directory: str | os.PathLike[str],
    *,
    ledger: str | os.PathLike[str],
    consent: ConsentSource | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
    options: BuildOptions = DATASET_OPTIONS,
    validation: Validation = "first",
    limits: Limits | None = None,
) -> Conversion:
    """The outcomes of a NHS Talking Therapies Data Set v2.1 directory (one folder per
    submission below it, as ``fhir-iapt outcomes DIR --dataset tt-v2.1``), each pathway
    matched to the referral it answers in the referral ``ledger``, one task per provider.

    The directory must be readable by the executors at the same path. Entries default to PUT
    (as the CLI's). ``summary()`` has the CLI's ``dataset`` section (every NHS Digital derived
    field that disagrees with ours, per pathway). Raises
    :class:`~fhir_iapt.errors.ConfigError` when ``ledger`` is no file, and
    :class:`~fhir_iapt.ledger.LedgerError` when it is not a ledger.
    """
    root = Path(directory)
    bounds = limits if limits is not None else current()
    ledger_path = ledger_file(ledger)
    used, _, errors = find_submissions(root, dataset_spec(), bounds)
    inputs = [root.name]
    if errors:  # as the CLI: a file error anywhere, and nothing is derived
        out = _Out(DATASET_ARROW)
        for seq, error in enumerate(errors):
            out.result(
                (0, seq, 0),
                Rejected(error, error.location or Location(file=root.name)),
                extra=(None,),
            )
        out.add((0, -1, 0), Location(), None, extra=(_json(DatasetReport()),))
        rows = out.batch().to_pylist()
        frame = spark.createDataFrame(
            [tuple(row[n] for n in DATASET_ARROW.names) for row in rows], DATASET_DDL
        )
        return Conversion(frame, inputs, _report_of)
    providers: dict[str, list[str]] = {}
    for submission in used:
        providers.setdefault(submission.provider, []).append(submission.label)
    groups = sorted(providers.items())
    name = _ship_ledger(spark, ledger_path)
    task = DatasetTask(
        str(root.resolve()),
        groups,
        name,
        consent=consent,
        window_days=window_days,
        options=options,
        validation=validation,
        limits=bounds,
    )
    ids = spark.range(0, len(groups), 1, max(1, len(groups)))
    return Conversion(ids.mapInArrow(task, DATASET_DDL), inputs, _report_of)


__all__ = [
    "DATASET_DDL",
    "DATASET_OPTIONS",
    "DatasetTask",
    "dataset_outcomes",
    "ledger_file",
    "merged_report",
]
