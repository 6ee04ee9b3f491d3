"""``fhir-iapt convert``: clinic exports -> UK Core referral bundles."""

from __future__ import annotations

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
from fhir_iapt.errors import MappingError
from fhir_iapt.fhir.options import BuildOptions
from fhir_iapt.mapping import load_mapping
from fhir_iapt.pipeline import ReadProgress, Validation, convert_files


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
def convert(
    inputs: tuple[Path, ...],
    mapping_ref: str,
    out_dir: Path,
    layout: Layout,
    output_format: OutputFormat,
    workers: int,
    validation: Validation,
    request_method: str,
) -> NoReturn:
    """Convert clinic export files (CSV, JSON or XML) to FHIR referral bundles.

    Writes the bundles, rejects.ndjson (one OperationOutcome per rejected record) and
    summary.json into OUT. Exit status: 0 nothing rejected, 1 some rejected, 2 usage error.
    """
    try:
        mapping = load_mapping(mapping_ref)
    except MappingError as exc:
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
    code = write_results(
        results,
        out_dir=out_dir,
        layout=layout,
        output_format=output_format,
        inputs=[p.name for p in inputs],
        label="convert",
        read=read,
        total_bytes=input_bytes(inputs),
    )
    raise SystemExit(code)
