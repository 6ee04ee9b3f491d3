"""``fhir-iapt report``: each pathway's results, readable by anyone: NHS England's KPIs per
Talking Therapies provider x LTC pathway x month, the referral loop per sending clinic, and the
data-quality checks, from outcome inputs and the referral ledger.

INPUTS are data-set directories (``--dataset tt-v2.1``: one folder of the NHS Talking Therapies
Data Set v2.1 tables, one folder per month below it) and episode exports (CSV, mapping
``iapt-outcomes`` or ``--mapping``), in any mix. The ledger (``--ledger``, default as for
``convert``) gives the referrals sent; without one the referral-loop KPIs and the referral
checks are left out (said on stderr). ``OUT`` gets:

* ``kpis.csv``: one row per KPI x provider (or sending clinic) x LTC pathway x month;
* ``measure-reports.ndjson``: the same as FHIR R4 summary MeasureReports, one per line, each
  against its Measure in ``profiles/``;
* ``data-quality.csv``: each check that found something, with the count, the share and the ids
  it came from (pathway ids, ledger referral identifiers, file:row; never patient data);
* ``report.html``: one self-contained page (no network needed) with the tables and charts;
* ``rejects.ndjson``: one OperationOutcome per row that could not be used (no values).

Figures are published by default with NHS England's rule (counts under 5 suppressed, others
rounded to 5, rates from counts under 5 not shown; :mod:`fhir_iapt.report._kpis`);
``--no-suppress`` gives exact figures for the service's own use. ``--out`` is claimed as
``convert`` claims it: a folder holding an earlier run's results is refused unless
``--overwrite``. Errors print as every command prints them (``--error-format``). Exit status:
0 every row used, 1 some rows rejected (the report is still written), 2 usage error, or an
input that cannot be read at all (nothing written).
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import NoReturn

import click

from fhir_iapt.cli._errors import error_format_option
from fhir_iapt.cli._run import (
    EXIT_OK,
    EXIT_REJECTED,
    claim_out_dir,
    earlier_results,
    fail_usage,
)
from fhir_iapt.emit import REJECTS_FILE, RejectsWriter
from fhir_iapt.errors import ConfigError, FhirIaptError, Issue, Location, MappingError, ReadError
from fhir_iapt.ledger import (
    DEFAULT_WINDOW_DAYS,
    LEDGER_ENV,
    Ledger,
    LedgerError,
    default_ledger_path,
)
from fhir_iapt.mapping import load_mapping
from fhir_iapt.report._build import EPISODE_MAPPING, ReportBuilder
from fhir_iapt.report._model import ReportData
from fhir_iapt.report._write import (
    KPIS_FILE,
    MEASURE_REPORTS_FILE,
    QUALITY_FILE,
    REPORT_FILE,
    write_kpis,
    write_measure_reports,
    write_quality,
    write_text,
)

#: Every file error: an input the report cannot be made from.
INPUT_UNUSABLE = "FI150"
#: What a report leaves in --out.
OUTPUTS = (KPIS_FILE, MEASURE_REPORTS_FILE, QUALITY_FILE, REPORT_FILE, REJECTS_FILE)


def _refuse_earlier(out_dir: Path, *, overwrite: bool) -> None:
    """--out is claimed as convert and outcomes claim it: a folder holding an earlier report
    (or another command's results) is refused unless --overwrite."""
    found = sorted(
        {name for name in OUTPUTS if (out_dir / name).is_file()} | set(earlier_results(out_dir))
    )
    if found and not overwrite:
        raise click.UsageError(
            f"{out_dir} already holds the results of an earlier run ({', '.join(found)}): "
            "pass --overwrite to replace them, or choose another --out folder"
        )


def _open_ledger(ledger_path: Path | None) -> Ledger | None:
    path = ledger_path or default_ledger_path()
    if not path.is_file():
        if ledger_path is not None:  # a mistyped path must not become a new, empty ledger
            fail_usage(
                LedgerError(
                    "there is no referral ledger at this path", location=Location(file=str(path))
                )
            )
        click.echo(
            "report: no referral ledger (convert and the relay record the referrals they send "
            "in it; give --ledger): the referral-loop KPIs and referral checks are left out",
            err=True,
        )
        return None
    try:
        return Ledger(path)
    except LedgerError as exc:
        fail_usage(exc)


def _unusable(builder: ReportBuilder) -> FhirIaptError:
    issues: list[Issue] = [issue for item in builder.unusable for issue in item.error.issues]
    return ReadError(
        "an input cannot be read, so nothing was reported (a report of part of the data would "
        "understate every figure)",
        issues=issues,
        error_code=issues[0].error_code if issues else INPUT_UNUSABLE,
    )


def _html(data: ReportData) -> str:
    """report.html (imported when needed: the charts' libraries take a moment to load)."""
    from fhir_iapt.report._html import render_html

    return render_html(data)


@click.command()
@click.argument(
    "inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=True, path_type=Path)
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created if missing).",
)
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The referral ledger convert and the relay recorded (default: ${LEDGER_ENV}, else "
    "$XDG_DATA_HOME/fhir-iapt/ledger.sqlite; without one the referral loop is left out).",
)
@click.option(
    "--no-suppress",
    is_flag=True,
    help="Exact figures for the service's own use: no suppression, no rounding. Do not "
    "publish them.",
)
@click.option(
    "--dataset",
    type=click.Choice(["tt-v2.1"]),
    help="Directories in INPUTS are NHS Talking Therapies Data Set v2.1 tables (one CSV or "
    "Parquet file per table; one folder per month below it).",
)
@click.option(
    "--mapping",
    "mapping_ref",
    default=EPISODE_MAPPING,
    show_default=True,
    help="Mapping for episode exports: a bundled name or a YAML path (target: episode).",
)
@click.option(
    "--window-days",
    type=click.IntRange(0, 3650),
    default=DEFAULT_WINDOW_DAYS,
    show_default=True,
    help="A data-set pathway answers a ledger referral authored 0 to this many days before its "
    "referral received date.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the results of an earlier run in --out (without it, a folder that holds them "
    "is refused, so no run is lost by mistake).",
)
@error_format_option()
def report(
    inputs: tuple[Path, ...],
    out_dir: Path,
    ledger_path: Path | None,
    no_suppress: bool,
    dataset: str | None,
    mapping_ref: str,
    window_days: int,
    overwrite: bool,
) -> NoReturn:
    """Write NHS England's KPIs, their MeasureReports, the data-quality checks and report.html
    for the pathways in INPUTS (data-set directories and/or episode-export CSVs) into OUT.

    Exit status: 0 every row used, 1 some rows rejected (listed in rejects.ndjson; the report
    is still written), 2 usage error or an input that cannot be read (nothing written).
    """
    if dataset is None and any(path.is_dir() for path in inputs):
        raise click.UsageError(
            "a directory is read as the Talking Therapies data set: give --dataset tt-v2.1"
        )
    _refuse_earlier(out_dir, overwrite=overwrite)
    try:
        mapping = load_mapping(mapping_ref)
    except MappingError as exc:
        fail_usage(exc)
    if mapping.target != "episode" and any(not path.is_dir() for path in inputs):
        fail_usage(
            MappingError(
                f"mapping {mapping.name!r} has target {mapping.target!r}; the report reads "
                "episode exports with an 'episode' mapping",
                location=Location(file=str(mapping.path) if mapping.path else mapping.name),
            )
        )
    ledger = _open_ledger(ledger_path)
    suppress = not no_suppress
    try:
        builder = ReportBuilder(ledger=ledger, window_days=window_days)
        for path in inputs:
            if path.is_dir():
                builder.add_dataset(path, label=str(path))
            else:
                builder.add_export(path, mapping, label=str(path))
        if builder.unusable:
            fail_usage(_unusable(builder))
        generated = date.today()
        data, counts = builder.build(suppress=suppress, generated=generated)
        page = _html(data)
        claim_out_dir(out_dir, overwrite=True, label="report")  # another command's old files
        write_kpis(out_dir / KPIS_FILE, data)
        write_quality(out_dir / QUALITY_FILE, data)
        reports = write_measure_reports(
            out_dir / MEASURE_REPORTS_FILE, counts, suppress=suppress, generated=generated
        )
        with RejectsWriter(out_dir) as rejects:
            for item in builder.rejected:
                rejects.write(item)
        write_text(out_dir / REPORT_FILE, page)
    except (ConfigError, FhirIaptError) as exc:
        fail_usage(exc)
    finally:
        if ledger is not None:
            ledger.close()
    figures = "published (suppressed and rounded)" if suppress else "exact (--no-suppress)"
    click.echo(
        f"report: {builder.pathways} pathways from {len(inputs)} input(s), "
        f"{len(data.kpis)} KPI values ({reports} MeasureReports), {len(data.quality)} "
        f"data-quality findings, {len(builder.rejected)} rows rejected; figures {figures} "
        f"-> {out_dir}",
        err=True,
    )
    sys.stderr.flush()
    raise SystemExit(EXIT_REJECTED if builder.rejected else EXIT_OK)
