"""``fhir-iapt validate PATH...``: check FHIR files against R4 and the shipped profiles.

Each PATH is a FHIR JSON resource or Bundle, FHIR XML, or NDJSON (one resource or Bundle a
line), or a folder ``convert`` / ``outcomes`` wrote (as ``push`` takes it: its
``bundles.ndjson``, else its bulk ``<ResourceType>.ndjson`` files, else its ``bundles-xml/``).
Every invalid resource prints its issues on stdout, each naming the file, the line or record,
and the FHIRPath of the bad element: one line per issue, or (``--format json``) one
OperationOutcome JSON line per resource. A summary ``N valid, M invalid`` goes to stderr.

Exit status: 0 all valid, 1 some invalid, 2 a file could not be read or parsed (reported as an
OperationOutcome too, never a traceback).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fhir_iapt.cli._errors import error_format_option, render_outcome
from fhir_iapt.emit import BUNDLES_FILE, XML_DIR
from fhir_iapt.errors import (
    ConfigError,
    FhirIaptError,
    Issue,
    Location,
    ReadError,
    operation_outcome,
)

if TYPE_CHECKING:
    from fhir_iapt.fhir.validate import Validator

UNREADABLE = "FI101"
#: The validator met a failure it did not foresee on one resource (a defect).
UNEXPECTED = "FI001"


def _unreadable(path: Path, message: str, line: int | None = None) -> ReadError:
    location = Location(file=str(path), line=line)
    return ReadError(message, location=location, error_code=UNREADABLE)


def _units(path: Path) -> Iterator[tuple[Location, Any]]:
    """Yield ``(where, resource-or-None)``; None stands for a line that is not JSON."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _unreadable(path, f"cannot read the file ({exc.strerror})") from exc
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        from fhir_iapt.fhir.xml import xml_to_resource

        yield Location(file=str(path)), xml_to_resource(data, file=str(path))
        return
    try:
        decoded = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _unreadable(path, "not UTF-8 text") from exc
    try:
        yield Location(file=str(path)), json.loads(decoded)
        return
    except json.JSONDecodeError as exc:
        whole_error = exc
    except RecursionError:
        raise _unreadable(path, "not readable JSON (nested too deeply)") from None
    # NDJSON lines end at \n only: str.splitlines() would also split at U+2028, U+2029, U+0085
    # and others, which are legal inside JSON strings
    lines = [line.removesuffix("\r") for line in decoded.split("\n")]
    if sum(1 for line in lines if line.strip()) < 2:
        raise _unreadable(path, f"not JSON ({whole_error.msg})", whole_error.lineno)
    row = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row += 1
        where = Location(file=str(path), row=row, line=number)
        try:
            yield where, json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            yield where, None


def _validated(validator: Validator, resource: Any, where: Location) -> list[Issue]:
    """The resource's issues; an unforeseen failure of the validator on it is its one issue
    (the exception's type only: its text may quote the resource), and the file goes on."""
    try:
        return validator.validate(resource, location=where)
    except Exception as exc:  # a defect met by one resource must not end the run
        return [
            Issue(
                diagnostics=f"the validator failed unexpectedly on this resource "
                f"({type(exc).__name__}); it is reported and validation goes on",
                code="exception",
                location=where,
                error_code=UNEXPECTED,
            )
        ]


def files_in(path: Path) -> list[Path]:
    """The files to validate for one PATH: a file itself; for a folder what ``push`` would
    send from it (``bundles.ndjson``, else the bulk files), else its ``bundles-xml/`` files.
    A folder with none of them is a ConfigError (FI804)."""
    if not path.is_dir():
        return [path]
    if (path / BUNDLES_FILE).is_file():
        return [path / BUNDLES_FILE]
    from fhir_iapt.push import bulk_files  # only for a folder: push brings the HTTP client

    bulk = bulk_files(path)
    if bulk:
        return bulk
    xml = sorted((path / XML_DIR).glob("*.xml")) if (path / XML_DIR).is_dir() else []
    if xml:
        return xml
    raise ConfigError(
        f"{path}: no {BUNDLES_FILE}, no <ResourceType>.ndjson files and no {XML_DIR}/ to validate",
        location=Location(file=str(path)),
        error_code="FI804",
    )


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@error_format_option("--format", "--error-format")
def validate(paths: tuple[Path, ...]) -> None:
    """Validate FHIR JSON, XML or NDJSON files (or a convert / outcomes output folder) against
    R4 and the fhir-iapt profiles."""
    from fhir_iapt.fhir.validate import default_validator, has_errors

    validator = default_validator()
    valid = invalid = 0
    unreadable = False
    files: list[Path] = []
    for path in paths:
        try:
            files.extend(files_in(path))
        except FhirIaptError as exc:
            unreadable = True
            click.echo(render_outcome(exc.to_operation_outcome()))
    for path in files:
        try:
            for where, resource in _units(path):
                if resource is None:
                    issues = [
                        Issue(
                            diagnostics="line is not JSON",
                            code="structure",
                            location=where,
                            error_code=UNREADABLE,
                        )
                    ]
                else:
                    issues = _validated(validator, resource, where)
                if has_errors(issues):
                    invalid += 1
                    click.echo(render_outcome(operation_outcome(issues)))
                else:
                    valid += 1
        except FhirIaptError as exc:
            unreadable = True
            click.echo(render_outcome(exc.to_operation_outcome()))
    click.echo(f"{valid} valid, {invalid} invalid", err=True)
    if unreadable:
        raise SystemExit(2)
    if invalid:
        raise SystemExit(1)
