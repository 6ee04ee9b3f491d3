"""``fhir-iapt mapping``: the bundled mappings, the load-time check of one, and a proposed
mapping for a new export layout (``init``). Also how ``convert --dry-run`` prints its result.

Only the map stage is imported: checking or proposing a mapping never loads the validator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import click

from fhir_iapt.cli._errors import echo_outcome, error_format_option
from fhir_iapt.errors import FhirIaptError, MappingError, ReadError
from fhir_iapt.mapping import (
    DryRun,
    Mapping,
    Proposal,
    bundled_mappings,
    load_mapping,
    propose_mapping,
    target_names,
)
from fhir_iapt.mapping.targets import MAP_TARGETS

EXIT_OK = 0
EXIT_DECISIONS = 1
EXIT_USAGE = 2


def _fail(error: FhirIaptError) -> NoReturn:
    echo_outcome(error.to_operation_outcome())
    raise SystemExit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def mapping() -> None:
    """Mapping files: the bundled ones, the load-time check, a proposal for a new export."""


def _description(path: Path | None, name: str) -> str:
    """The header comment's first sentence (``# name: what the export is.``, which may go on
    over the next comment lines)."""
    if path is None:
        return ""
    words: list[str] = []
    for line in path.read_text("utf-8").splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or (words and (not text or text.startswith("Reads:"))):
            break
        if words or text.startswith(f"{name}:"):
            words.append(text.removeprefix(f"{name}:").strip())
    about = " ".join(words)
    end = about.find(". ")
    return about if end < 0 else about[: end + 1]


@mapping.command("list")
def list_mappings() -> None:
    """The bundled mappings: name, input format and target, read from each file."""
    rows = []
    for name in bundled_mappings():
        loaded = load_mapping(name)
        rows.append((name, loaded.input_format, loaded.target, _description(loaded.path, name)))
    widths = [
        max(len(row[i]) for row in [("name", "input", "target", ""), *rows]) for i in (0, 1, 2)
    ]
    click.echo(f"{'name':<{widths[0]}}  {'input':<{widths[1]}}  {'target':<{widths[2]}}  about")
    for name, fmt, target, about in rows:
        click.echo(f"{name:<{widths[0]}}  {fmt:<{widths[1]}}  {target:<{widths[2]}}  {about}")


def summary(loaded: Mapping[Any]) -> str:
    """One line on what a loaded mapping maps."""

    def count(n: int, what: str) -> str:
        return f"{n} {what}" if n == 1 else f"{n} {what}s"

    parts = [count(len(loaded.fields), "field"), count(len(loaded.constants), "constant")]
    if loaded.groups:
        parts.append(", ".join(f"group {g.name}" for g in loaded.groups))
    if loaded.screenings is not None:
        fixed = [f.shape.name for f in loaded.screenings.fixed]
        if fixed:
            parts.append("screenings " + ", ".join(fixed))
        if loaded.screenings.each is not None:
            parts.append(f"screenings from each {loaded.screenings.each.text}")
    if loaded.contract.read is not None:
        parts = ["read whole"]
    return f"{loaded.name}: {loaded.target} from {loaded.input_format} input; " + ", ".join(parts)


@mapping.command()
@click.argument("file")
@error_format_option()
def check(file: str) -> NoReturn:
    """Check a mapping FILE (or a bundled name) as it loads: the whole file, every problem
    located by line and key. No record is read and the validator is not loaded.

    Exit status: 0 the mapping loads; 2 it does not (each problem printed on stderr).
    """
    try:
        loaded = load_mapping(file)
    except MappingError as exc:
        _fail(exc)
    click.echo(f"ok: {summary(loaded)}")
    raise SystemExit(EXIT_OK)


@mapping.command()
@click.argument("sample", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--target",
    required=True,
    type=click.Choice(sorted(MAP_TARGETS)),
    help="The record kind the export's records become (referral: a clinic visit).",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the proposal here (default: standard output).",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["csv", "json", "xml"]),
    help="The sample's format (default: told from its first bytes).",
)
@error_format_option()
def init(
    sample: Path, target: str, out_file: Path | None, overwrite: bool, input_format: str | None
) -> NoReturn:
    """Propose a mapping for the export layout of SAMPLE (a CSV, JSON or XML export).

    Fields are matched to the target's by name (mappings/tables/field-names.yaml), and the
    values decide the options (date formats, separators, units, lookup tables, answer
    columns). Every guess has a comment; what could not be placed is listed at the end, and
    a required field nothing matched is marked DECIDE. No value of the sample is written.

    Exit status: 0 the proposal passes `fhir-iapt mapping check`; 1 it needs the decisions
    listed first; 2 usage error (nothing written).
    """
    if out_file is not None and out_file.exists() and not overwrite:
        raise click.UsageError(f"{out_file} exists: pass --overwrite to replace it")
    name = out_file.stem if out_file is not None else None
    try:
        target_names(target)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        proposal = propose_mapping(sample, target, name=name, fmt=input_format)
    except ReadError as exc:
        _fail(exc)
    if out_file is None:
        click.echo(proposal.text, nl=False)
    else:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(proposal.text, encoding="utf-8")
    _report(proposal, out_file)
    raise SystemExit(EXIT_OK if proposal.check is None else EXIT_DECISIONS)


def _report(proposal: Proposal, out_file: Path | None) -> None:
    """What the proposal found, on stderr (names and counts only)."""
    sample = proposal.sample
    where = str(out_file) if out_file is not None else "standard output"

    def echo(text: str) -> None:
        click.echo(f"mapping init: {text}", err=True)

    echo(
        f"{sample.records} records read from {sample.file}; {len(proposal.placed)} fields "
        f"placed, {len(proposal.unplaced)} not placed (listed at the end) -> {where}"
    )
    if sample.unreadable:
        echo(f"{len(sample.unreadable)} records could not be read, the first:")
        echo_outcome(sample.unreadable[0].to_operation_outcome())
    if proposal.check is None:
        tried = proposal.tried
        if tried is not None:
            echo(
                f"the proposal passes mapping check; on the sample {tried.mapped} of "
                f"{tried.records} records map"
            )
        return
    names = ", ".join(target for target, _ in proposal.decisions)
    echo(f"needs a decision before it loads: {names or 'see below'}")
    echo_outcome(proposal.check.to_operation_outcome())


def echo_dry_run(result: DryRun, loaded: Mapping[Any], inputs: list[str]) -> int:
    """Print a dry run (the fill rate of every mapped field, then the first rejects) and
    return the exit code: 0 nothing rejected, 1 some rejected."""
    files = inputs[0] if len(inputs) == 1 else f"{len(inputs)} files"
    click.echo(
        f"dry run of {loaded.name} ({loaded.target}) on {files}: {result.records} records "
        f"read, {result.mapped} map, {result.rejected_total} rejected; nothing built, "
        "validated, written or recorded"
    )
    rows = [(f.name, f.filled, f.source) for f in result.fills]
    width = max([len("field"), *(len(name) for name, _, _ in rows)])
    click.echo(f"{'field':<{width}}  {'filled':>13}  from")
    for name, filled, source in rows:
        share = f"{filled * 100 // result.records}%" if result.records else "-"
        counted = f"{filled}/{result.records}"
        click.echo(f"{name:<{width}}  {counted:>8} {share:>4}  {source}")
    if result.rejects:
        shown = len(result.rejects)
        click.echo(f"first rejects ({shown} of {result.rejected_total}):")
        for reject in result.rejects:  # a line per issue, or JSON with --error-format json
            echo_outcome(reject.to_operation_outcome(), err=False)
    return 1 if result.rejected_total else 0


__all__ = ["echo_dry_run", "mapping", "summary"]
