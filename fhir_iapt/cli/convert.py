"""``fhir-iapt convert``: clinic exports -> UK Core referral bundles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click

from fhir_iapt.cli._run import (
    Layout,
    OutputFormat,
    default_shape_cache,
    effective_workers,
    fail_usage,
    input_bytes,
    layout_options,
    write_results,
)
from fhir_iapt.errors import ConfigError, MappingError
from fhir_iapt.fhir.options import BuildOptions
from fhir_iapt.ledger import LEDGER_ENV, Ledger, LedgerError, default_ledger_path
from fhir_iapt.limits import ENV_VARS, Limits
from fhir_iapt.mapping import load_mapping
from fhir_iapt.pipeline import ReadProgress, Validation, convert_files
from fhir_iapt.sources import sniff_format

_KIND = {"csv": "CSV", "json": "JSON", "xml": "XML", "fhir": "JSON"}


def check_input_kind(inputs: tuple[Path, ...], mapping_name: str, mapping_format: str) -> None:
    """A usage error (exit 2) when an input plainly is not the kind the mapping reads (XML
    given to a CSV mapping, ...): one clear message naming both, instead of every record
    rejected as broken. Judged by the first bytes (a BOM and white space skipped)."""
    wanted = _KIND[mapping_format]
    for path in inputs:
        try:
            with path.open("rb") as fh:
                head = fh.read(64)
        except OSError:
            continue  # the reader reports an unreadable file as it does today
        found = sniff_format(head)
        if found is not None and _KIND[found] != wanted:
            raise click.UsageError(
                f"--mapping {mapping_name} reads {wanted} input, but {path.name} looks like "
                f"{_KIND[found]}: give a mapping for {_KIND[found]} input"
            )


@click.command()
@click.argument(
    "inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--mapping",
    "mapping_ref",
    required=True,
    help="A bundled mapping name (diabetes-csv, respiratory-xml, cardiac-json) or a YAML path.",
)
@layout_options
@click.option(
    "--max-depth", type=int, help=f"Nesting depth limit (default: ${ENV_VARS['max_depth']} or 100)."
)
@click.option(
    "--max-field-chars",
    type=int,
    help=f"Characters in one value (default: ${ENV_VARS['max_field_chars']} or 131072).",
)
@click.option(
    "--max-line-bytes",
    type=int,
    help=f"Bytes in one line or record (default: ${ENV_VARS['max_line_bytes']} or 1048576).",
)
@click.option(
    "--max-number-digits",
    type=int,
    help=f"Digits in one number (default: ${ENV_VARS['max_number_digits']} or 1000).",
)
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The referral ledger each converted referral is recorded in, for fhir-iapt outcomes "
    f"to match pathways to (default: ${LEDGER_ENV}, else "
    "$XDG_DATA_HOME/fhir-iapt/ledger.sqlite, i.e. ~/.local/share/fhir-iapt/ledger.sqlite).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Read and map only (no --out needed): print each mapped field's fill rate and the "
    "first rejects; build, validate, write and record nothing.",
)
def convert(
    inputs: tuple[Path, ...],
    mapping_ref: str,
    out_dir: Path | None,
    layout: Layout,
    output_format: OutputFormat,
    workers: int,
    validation: Validation,
    overwrite: bool,
    request_method: str,
    max_depth: int | None,
    max_field_chars: int | None,
    max_line_bytes: int | None,
    max_number_digits: int | None,
    ledger_path: Path | None,
    dry_run: bool,
) -> NoReturn:
    """Convert clinic export files (CSV, JSON or XML) to FHIR referral bundles.

    Writes the bundles, rejects.ndjson (one OperationOutcome per rejected record) and
    summary.json into OUT. Exit status: 0 nothing rejected, 1 some rejected, 2 usage error
    (a ledger that cannot be opened or written included).
    The input limits (see the README's Limits) come from the --max-* options, else the
    FHIR_IAPT_MAX_* environment variables, else their defaults.

    Every converted referral is recorded in the referral ledger (--ledger): one file that
    outlives any one --out folder, so the referrals of every month's run are there when
    fhir-iapt outcomes matches the data set's pathways to them.

    --dry-run reads and maps the inputs and prints, for each mapped field, the share of
    records that gave it a value, then the first rejects; exit 0 none rejected, 1 some.
    """
    given = {
        "max_depth": max_depth,
        "max_field_chars": max_field_chars,
        "max_line_bytes": max_line_bytes,
        "max_number_digits": max_number_digits,
    }
    with _limits_in_env({k: v for k, v in given.items() if v is not None}):
        if dry_run:
            _dry_run(inputs, mapping_ref)
        if out_dir is None:
            raise click.MissingParameter(param_hint="'--out'", param_type="option")
        _convert(
            inputs,
            mapping_ref,
            out_dir,
            layout,
            output_format,
            workers,
            validation,
            overwrite,
            request_method,
            ledger_path or default_ledger_path(),
        )


# --out is needed unless --dry-run (which writes nothing): checked in convert itself
for _param in convert.params:
    if _param.name == "out_dir":
        _param.required = False


@contextmanager
def _limits_in_env(options: dict[str, int]) -> Iterator[None]:
    """Put the --max-* options in this process's environment, where the readers (and any
    --workers processes) read the limits, for the length of the command; exit 2 with an
    OperationOutcome for a bad value."""
    saved = {name: os.environ.get(ENV_VARS[name]) for name in options}
    try:
        Limits.from_env()  # a bad variable is a usage error before anything is read
        for name, value in options.items():
            Limits(**{name: value})
            os.environ[ENV_VARS[name]] = str(value)
    except ConfigError as exc:
        _restore(saved)
        fail_usage(exc)
    try:
        yield
    finally:
        _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(ENV_VARS[name], None)
        else:
            os.environ[ENV_VARS[name]] = value


def _dry_run(inputs: tuple[Path, ...], mapping_ref: str) -> NoReturn:
    from fhir_iapt.cli.mapping import echo_dry_run
    from fhir_iapt.mapping import dry_run

    try:
        mapping = load_mapping(mapping_ref)
    except MappingError as exc:
        fail_usage(exc)
    check_input_kind(inputs, mapping.name, mapping.input_format)
    raise SystemExit(echo_dry_run(dry_run(inputs, mapping), mapping, [p.name for p in inputs]))


def _convert(
    inputs: tuple[Path, ...],
    mapping_ref: str,
    out_dir: Path,
    layout: Layout,
    output_format: OutputFormat,
    workers: int,
    validation: Validation,
    overwrite: bool,
    request_method: str,
    ledger_path: Path,
) -> NoReturn:
    try:
        mapping = load_mapping(mapping_ref)
    except MappingError as exc:
        fail_usage(exc)
    check_input_kind(inputs, mapping.name, mapping.input_format)
    try:
        ledger = Ledger(ledger_path)
    except LedgerError as exc:
        fail_usage(exc)
    options = BuildOptions(
        request_method="put" if request_method == "put" else "conditional-create"
    )
    results = convert_files(
        inputs,
        mapping=mapping,
        options=options,
        validation=validation,
        workers=effective_workers(workers),
        shape_cache=default_shape_cache(),
        progress=(read := ReadProgress()),
    )
    try:
        code = write_results(
            results,
            out_dir=out_dir,
            overwrite=overwrite,
            layout=layout,
            output_format=output_format,
            inputs=[p.name for p in inputs],
            label="convert",
            read=read,
            total_bytes=input_bytes(inputs),
            ledger=ledger,
        )
    except LedgerError as exc:
        fail_usage(exc)
    finally:
        ledger.close()
    raise SystemExit(code)
