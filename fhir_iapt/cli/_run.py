"""The part ``convert`` and ``outcomes`` share: write results, tally them, pick the exit code.

Exit codes: 0 nothing rejected; 1 some records rejected (the good ones are still written);
2 usage or mapping errors (nothing written).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, NoReturn

import click

from fhir_iapt.cli._errors import echo_outcome, error_format_option
from fhir_iapt.cli._progress import Progress
from fhir_iapt.emit import (
    BUNDLES_FILE,
    FAILED_FILE,
    REJECTS_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    XML_DIR,
    BulkWriter,
    NdjsonBundleWriter,
    OutputWriter,
    RejectsWriter,
    XmlBundleWriter,
    write_summary,
)
from fhir_iapt.errors import FhirIaptError, UnwritableRecordError
from fhir_iapt.ledger import Ledger, LedgerError, LedgerRow, referral_row
from fhir_iapt.pipeline import ReadProgress, ShapeCache, Tally
from fhir_iapt.results import Converted, Rejected, Result

Layout = Literal["bundles", "bulk"]
OutputFormat = Literal["json", "xml"]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def layout_options(fn: click.decorators.FC) -> click.decorators.FC:
    """The output options ``convert`` and ``outcomes`` both take."""
    options = [
        click.option(
            "--out",
            "out_dir",
            required=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Output folder (created if missing).",
        ),
        click.option(
            "--layout",
            type=click.Choice(["bundles", "bulk"]),
            default="bundles",
            show_default=True,
            help="bundles: one transaction Bundle per line (bundles.ndjson); "
            "bulk: FHIR Bulk Data layout, one <Type>.ndjson per resource type.",
        ),
        click.option(
            "--format",
            "output_format",
            type=click.Choice(["json", "xml"]),
            default="json",
            show_default=True,
            help="FHIR JSON (NDJSON) or FHIR XML output.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=1,
            show_default=True,
            help="Processes for mapping and building (0 = all cores).",
        ),
        click.option(
            "--validate",
            "validation",
            type=click.Choice(["none", "first", "full"]),
            default="first",
            show_default=True,
            help="Run the R4 + profile validator on the first bundle (a pass is remembered per "
            "mapping, profiles and adapter version, shared with the relay's), on every bundle, "
            "or not at all (values are still checked on every record).",
        ),
        click.option(
            "--overwrite",
            is_flag=True,
            help="Replace the results of an earlier run in --out (without it, a folder that "
            "holds them is refused, so no run is lost by mistake).",
        ),
        click.option(
            "--request-method",
            type=click.Choice(["conditional-create", "put"]),
            default="conditional-create",
            show_default=True,
            help="How bundle entries ask the server to store resources without duplicates.",
        ),
    ]
    options.append(error_format_option())
    for option in reversed(options):
        fn = option(fn)
    return fn


def fail_usage(error: FhirIaptError) -> NoReturn:
    """Print the error on stderr (a line per issue, or OperationOutcome JSON with
    ``--error-format json``) and exit 2."""
    echo_outcome(error.to_operation_outcome())
    raise SystemExit(EXIT_USAGE)


#: What a run (and a push of its output) leaves in --out, besides the bulk layout's files.
_RESULT_FILES = (SUMMARY_FILE, BUNDLES_FILE, REJECTS_FILE, RESULTS_FILE, FAILED_FILE)
_BULK_FILE = re.compile(r"[A-Z][A-Za-z]+\.ndjson")


def earlier_results(out_dir: Path) -> list[str]:
    """The names of an earlier run's results in ``out_dir`` (sorted; [] when none)."""
    if not out_dir.is_dir():
        return []
    found = {name for name in _RESULT_FILES if (out_dir / name).is_file()}
    found |= {p.name for p in out_dir.iterdir() if p.is_file() and _BULK_FILE.fullmatch(p.name)}
    if (out_dir / XML_DIR).is_dir():
        found.add(f"{XML_DIR}/")
    return sorted(found)


def claim_out_dir(out_dir: Path, *, overwrite: bool, label: str) -> None:
    """Make ``out_dir`` ready for a run's results. A folder holding an earlier run's results
    is refused (usage error, exit 2, naming them) unless ``overwrite``; with it they are
    removed first, so no file of the old run is left beside the new one's (a bulk type the
    new run has none of, the push results of the old bundles), and the command says so."""
    earlier = earlier_results(out_dir)
    if earlier and not overwrite:
        raise click.UsageError(
            f"{out_dir} already holds the results of an earlier run ({', '.join(earlier)}): "
            "pass --overwrite to replace them, or choose another --out folder"
        )
    for name in earlier:
        path = out_dir / name.rstrip("/")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if earlier:
        click.echo(f"{label}: replacing the earlier results in {out_dir}", err=True)


def write_results(
    results: Iterable[Result],
    *,
    out_dir: Path,
    overwrite: bool = False,
    layout: Layout,
    output_format: OutputFormat,
    inputs: list[str],
    label: str,
    read: ReadProgress | None = None,
    total_bytes: int | None = None,
    ledger: Ledger | None = None,
    summary_extra: Callable[[], Mapping[str, Any]] | None = None,
) -> int:
    """Write every result, then ``summary.json``; return the exit code.

    ``out_dir`` is claimed first (:func:`claim_out_dir`): an earlier run's results there are
    refused unless ``overwrite``.

    ``summary_extra`` gives more keys for ``summary.json``, asked for once every result is
    written (e.g. what a data-set run found beside its results).

    ``read`` (given to the conversion) and ``total_bytes`` (the inputs' size) let the progress
    display on a terminal show how much of the input is read and the time left.

    With a ``ledger``, every referral written is recorded in it (:class:`_Recorder`: read from
    the bundle's bytes, inserted :data:`LEDGER_BATCH` at a time); a referral bundle the ledger
    cannot record is rejected (FI831) and not written, so nothing is sent unrecorded. A ledger
    that cannot be written raises :class:`~fhir_iapt.ledger.LedgerError`.
    """
    if layout == "bulk" and output_format == "xml":
        raise click.UsageError("--layout bulk is NDJSON by definition; use --format json")
    claim_out_dir(out_dir, overwrite=overwrite, label=label)
    out_dir.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    position = (lambda: read.bytes_read) if read is not None else None
    recorder = _Recorder(ledger) if ledger is not None else None
    with (
        ExitStack() as stack,
        Progress(label, total_bytes=total_bytes, position=position) as progress,
    ):
        if recorder is not None:
            stack.callback(recorder.flush)  # what was written is recorded, even on a failure
        writer: OutputWriter
        if layout == "bulk":
            writer = stack.enter_context(BulkWriter(out_dir))
        elif output_format == "xml":
            writer = stack.enter_context(XmlBundleWriter(out_dir))
        else:
            writer = stack.enter_context(NdjsonBundleWriter(out_dir))
        rejects = stack.enter_context(RejectsWriter(out_dir))
        for result in results:
            if isinstance(result, Converted):
                row: LedgerRow | None = None
                try:
                    if recorder is not None and result.kind == "referral":
                        row = referral_row(result.json())
                    writer.write(result)
                except (UnwritableRecordError, LedgerError) as exc:  # nothing of it written
                    result = Rejected(exc, exc.location or result.location)
                else:
                    if row is not None and recorder is not None:
                        recorder.add(row)
            tally.add(result)
            if isinstance(result, Rejected):
                rejects.write(result)
            progress.update(
                tally.records,
                converted=tally.converted,
                skipped=tally.records - tally.converted - tally.rejected_total,
                rejected=tally.rejected_total,
            )
    summary = tally.as_dict()
    summary["inputs"] = inputs
    if summary_extra is not None:
        summary.update(summary_extra())
    write_summary(out_dir, summary)
    click.echo(
        f"{label}: {tally.records} records, {tally.converted} converted, "
        f"{sum(tally.skipped.values())} skipped, {tally.rejected_total} rejected -> {out_dir}",
        err=True,
    )
    if recorder is not None and ledger is not None:
        click.echo(
            f"{label}: {recorder.recorded} referrals recorded in the ledger {ledger.path}", err=True
        )
    return EXIT_REJECTED if tally.rejected_total else EXIT_OK


#: Ledger entries inserted per transaction while writing results.
LEDGER_BATCH = 1000


class _Recorder:
    """Ledger rows of the referrals written, inserted a batch per transaction."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.pending: list[LedgerRow] = []
        self.recorded = 0

    def add(self, row: LedgerRow) -> None:
        self.pending.append(row)
        if len(self.pending) >= LEDGER_BATCH:
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        self.recorded += self.ledger.record_rows(pending)


def input_bytes(paths: Iterable[Path]) -> int | None:
    """The inputs' total size, for the progress display (None when one cannot be sized)."""
    try:
        return sum(path.stat().st_size for path in paths)
    except OSError:
        return None


def effective_workers(workers: int) -> int:
    """``--workers`` for :func:`~fhir_iapt.pipeline.convert_files`, which reads 0 itself (one
    per CPU when the input is big enough to repay starting them)."""
    return workers


def default_shape_cache() -> ShapeCache:
    """``$XDG_CACHE_HOME/fhir-iapt/shape-checks`` (``~/.cache/...`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return ShapeCache(Path(base) / "fhir-iapt" / "shape-checks")


__all__ = [
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "LEDGER_BATCH",
    "Layout",
    "OutputFormat",
    "claim_out_dir",
    "default_shape_cache",
    "earlier_results",
    "effective_workers",
    "fail_usage",
    "input_bytes",
    "layout_options",
    "write_results",
]
