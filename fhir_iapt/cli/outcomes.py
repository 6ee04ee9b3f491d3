"""``fhir-iapt outcomes``: IAPT episode exports and session measures -> outcome bundles.

A thin caller of the same pipeline as ``convert``: episode exports (CSV or any mapped layout;
default mapping ``iapt-outcomes``) and FHIR JSON inputs (a QuestionnaireResponse, a Bundle or
array of them, or NDJSON; recognised by a ``resourceType`` key near the start; mapping
``questionnaire-response``) differ only in their mapping. The one consent gate decides for both,
with the ``--consent`` register read live. Same output files, options and exit codes as
``convert``: 0 nothing rejected, 1 some rejected, 2 usage, mapping or consent-register error.

``--dataset tt-v2.1`` reads instead the NHS Talking Therapies Data Set v2.1 tables in one directory
(one CSV or Parquet file per table, one folder per month below it; :mod:`fhir_iapt.dataset`) and
matches each pathway to the referral it answers in the referral ledger (``--ledger``: what
``convert`` and the relay sent; :mod:`fhir_iapt.ledger`): a matched pathway's outcome is ``basedOn``
that referral and leaves only with the patient's choice recorded in it (and no withdrawal in a
``--consent`` register); no match or several is a counted reason. Every NHS Digital derived field
that disagrees with our derivation is listed in ``summary.json`` (``dataset``), per pathway. Entries
default to ``PUT`` (``--request-method``): the same pathway in a later month's data set gives the
same resource ids, so its outcome updates the one sent before instead of being kept as it was.

A QuestionnaireResponse carries no consent, so its outcome is sent only when a consent register
(``--consent FILE``, repeatable: CSV with ``nhs_number`` and ``consent_share_outcomes``, e.g. the
episode export itself) records ``Y`` for it; without one every response is skipped as
``outcomes-consent-not-recorded`` and a one-line hint goes to stderr.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import click
from click.core import ParameterSource

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
from fhir_iapt.consent import ConsentFiles
from fhir_iapt.errors import ConfigError, Location, MappingError
from fhir_iapt.fhir.options import BuildOptions
from fhir_iapt.ledger import (
    DEFAULT_WINDOW_DAYS,
    LEDGER_ENV,
    Ledger,
    LedgerError,
    default_ledger_path,
)
from fhir_iapt.mapping import Mapping, load_mapping
from fhir_iapt.pipeline import (
    DatasetReport,
    ReadProgress,
    ShapeCache,
    Validation,
    convert_dataset,
    convert_files,
)
from fhir_iapt.results import Result

_SNIFF = 4096
#: The bundled mapping for FHIR QuestionnaireResponse inputs.
RESPONSE_MAPPING = "questionnaire-response"


def looks_like_fhir_json(head: bytes) -> bool:
    """True when the start of a file is FHIR JSON (a ``resourceType`` key appears early)."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return stripped[:1] in (b"{", b"[") and b'"resourceType"' in head


def _is_fhir_json(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return looks_like_fhir_json(fh.read(_SNIFF))
    except OSError:
        return False


_NO_CONSENT_HINT = (
    "outcomes: QuestionnaireResponse outcomes need --consent FILE (a CSV with nhs_number and "
    "consent_share_outcomes, e.g. the episode export); without it they are all withheld"
)


def _results(
    inputs: tuple[Path, ...],
    mapping: Mapping[object],
    options: BuildOptions,
    validation: Validation,
    workers: int,
    consent: ConsentFiles | None,
    shape_cache: ShapeCache | None,
    read: ReadProgress | None = None,
) -> Iterator[Result]:
    """Every input's results in input order, each file through the mapping that fits it."""
    responses: Mapping[object] | None = None
    for path in inputs:
        if _is_fhir_json(path):
            responses = responses or load_mapping(RESPONSE_MAPPING)
            chosen = responses
        else:
            chosen = mapping
        yield from convert_files(
            [path],
            mapping=chosen,
            options=options,
            validation=validation,
            workers=workers,
            consent=consent,
            shape_cache=shape_cache,
            progress=read,
        )


@click.command()
@click.argument(
    "inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=True, path_type=Path)
)
@click.option(
    "--dataset",
    type=click.Choice(["tt-v2.1"]),
    help="INPUTS is one directory of the NHS Talking Therapies Data Set v2.1 tables (one CSV or "
    "Parquet file per table, e.g. IDS101Referral.csv; one folder per month below it); each "
    "pathway is matched to its referral in --ledger.",
)
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"With --dataset: the referral ledger convert and the relay recorded (default: "
    f"${LEDGER_ENV}, else $XDG_DATA_HOME/fhir-iapt/ledger.sqlite).",
)
@click.option(
    "--window-days",
    type=click.IntRange(0, 3650),
    default=DEFAULT_WINDOW_DAYS,
    show_default=True,
    help="With --dataset: a pathway answers a referral authored 0 to this many days before its "
    "referral received date.",
)
@click.option(
    "--mapping",
    "mapping_ref",
    default="iapt-outcomes",
    show_default=True,
    help="Mapping for episode exports: a bundled name or a YAML path (target: episode). "
    "FHIR QuestionnaireResponse JSON inputs need none.",
)
@click.option(
    "--consent",
    "consent_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Consent register for QuestionnaireResponse inputs (repeatable): a CSV with "
    "nhs_number and consent_share_outcomes (Y/N/W/blank), optionally "
    "referral_identifier_system and referral_identifier, which are matched first. The episode "
    "export qualifies. Where rows disagree the most restrictive wins (W > N > blank > Y).",
)
@layout_options
def outcomes(
    inputs: tuple[Path, ...],
    dataset: str | None,
    ledger_path: Path | None,
    window_days: int,
    mapping_ref: str,
    consent_files: tuple[Path, ...],
    out_dir: Path,
    layout: Layout,
    output_format: OutputFormat,
    workers: int,
    validation: Validation,
    overwrite: bool,
    request_method: str,
) -> NoReturn:
    """Turn IAPT episode exports and QuestionnaireResponses into outcome bundles.

    Only episodes whose patient agreed to share outcomes (consent_share_outcomes = Y) produce
    anything; QuestionnaireResponses need a --consent register recording Y for them. The
    others are counted as skipped with the reason. Writes the bundles, rejects.ndjson and
    summary.json into OUT. Exit status: 0 nothing rejected, 1 some rejected, 2 usage error
    (including an unreadable or malformed consent register).
    """
    register: ConsentFiles | None = None
    if consent_files:
        try:
            register = ConsentFiles(consent_files)
        except ConfigError as exc:
            fail_usage(exc)
    if dataset is not None:
        context = click.get_current_context()
        if context.get_parameter_source("request_method") is ParameterSource.DEFAULT:
            # Each month's data set restates every open pathway: PUT under the deterministic
            # ids updates the outcome sent before; a conditional create would keep the old one.
            request_method = "put"
        _dataset_outcomes(
            inputs,
            ledger_path,
            window_days,
            register,
            out_dir,
            layout,
            output_format,
            validation,
            overwrite,
            request_method,
        )
    if any(path.is_dir() for path in inputs):
        raise click.UsageError("a directory is read only with --dataset (the data set's tables)")
    try:
        mapping = load_mapping(mapping_ref)
    except MappingError as exc:
        fail_usage(exc)
    if mapping.target != "episode":
        fail_usage(
            MappingError(
                f"mapping {mapping.name!r} has target {mapping.target!r}; outcomes needs an "
                "'episode' mapping",
                location=Location(file=str(mapping.path) if mapping.path else mapping.name),
            )
        )
    if not consent_files and any(_is_fhir_json(path) for path in inputs):
        click.echo(_NO_CONSENT_HINT, err=True)
    options = BuildOptions(
        request_method="put" if request_method == "put" else "conditional-create"
    )
    read = ReadProgress()
    results = _results(
        inputs,
        mapping,
        options,
        validation,
        effective_workers(workers),
        register,
        default_shape_cache(),
        read,
    )
    try:
        code = write_results(
            results,
            out_dir=out_dir,
            overwrite=overwrite,
            layout=layout,
            output_format=output_format,
            inputs=[p.name for p in inputs],
            label="outcomes",
            read=read,
            total_bytes=input_bytes(inputs),
        )
    except ConfigError as exc:  # a consent register broke during the run: nothing is written
        fail_usage(exc)
    raise SystemExit(code)


def _dataset_outcomes(
    inputs: tuple[Path, ...],
    ledger_path: Path | None,
    window_days: int,
    register: ConsentFiles | None,
    out_dir: Path,
    layout: Layout,
    output_format: OutputFormat,
    validation: Validation,
    overwrite: bool,
    request_method: str,
) -> NoReturn:
    """``outcomes DIR --dataset tt-v2.1``: the data set's pathways matched to the ledger."""
    if len(inputs) != 1 or not inputs[0].is_dir():
        raise click.UsageError("--dataset reads one directory: the data set's tables")
    path = ledger_path or default_ledger_path()
    if not path.is_file():
        fail_usage(
            ConfigError(
                "there is no referral ledger here: convert (or the relay) records the referrals "
                "it sends in it; give --ledger",
                location=Location(file=str(path)),
            )
        )
    try:
        ledger = Ledger(path)
    except LedgerError as exc:
        fail_usage(exc)
    options = BuildOptions(
        request_method="put" if request_method == "put" else "conditional-create"
    )
    report = DatasetReport()
    try:
        results = convert_dataset(
            inputs[0],
            ledger=ledger,
            consent=register,
            window_days=window_days,
            options=options,
            validation=validation,
            report=report,
        )
        code = write_results(
            results,
            out_dir=out_dir,
            overwrite=overwrite,
            layout=layout,
            output_format=output_format,
            inputs=[inputs[0].name],
            label="outcomes",
            summary_extra=lambda: {"dataset": report.as_dict()},
        )
    except ConfigError as exc:  # a consent register broke during the run
        fail_usage(exc)
    finally:
        ledger.close()
    raise SystemExit(code)
