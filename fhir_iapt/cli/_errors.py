"""One error output for every command: a readable line per issue by default, the
OperationOutcome as JSON with ``--error-format json`` (``validate --format json``).

A line reads ``error FI151: IDS201CareContact.csv line 1 field AttendOrDNACode: table
IDS201CareContact lacks the column AttendOrDNACode``: severity, the error code, where, what.
Messages never carry patient data (the adapter's errors name the field and the rule), so both
forms are safe to keep in a log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import click

ErrorFormat = Literal["text", "json"]
_META = "fhir_iapt.error_format"
F = TypeVar("F", bound=Callable[..., Any])


def _remember(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    ctx.meta[_META] = value
    return value


def error_format_option(*names: str, expose: bool = False) -> Callable[[F], F]:
    """The ``--error-format text|json`` option (other ``names`` too, e.g. validate's
    ``--format``); the chosen form is kept for :func:`error_format`."""
    return click.option(
        *(names or ("--error-format",)),
        "error_format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        callback=_remember,
        expose_value=expose,
        is_eager=True,
        help="How errors are printed: one line per issue, or OperationOutcome JSON.",
    )


def error_format() -> ErrorFormat:
    """The running command's ``--error-format`` ("text" outside a command)."""
    ctx = click.get_current_context(silent=True)
    value = ctx.find_root().meta.get(_META) if ctx is not None else None
    if value is None and ctx is not None:
        value = ctx.meta.get(_META)
    return "json" if value == "json" else "text"


def issue_line(issue: Mapping[str, Any]) -> str:
    """One issue of an OperationOutcome as one line."""
    severity = str(issue.get("severity", "error"))
    code = ""
    for coding in (issue.get("details") or {}).get("coding") or []:
        if isinstance(coding, dict) and coding.get("code"):
            code = f" {coding['code']}"
            break
    text = str(issue.get("diagnostics") or issue.get("code") or "")
    expression = issue.get("expression") or []
    at = f" [{', '.join(map(str, expression))}]" if expression else ""
    return f"{severity}{code}: {' '.join(text.split())}{at}"


def render_outcome(outcome: Mapping[str, Any], fmt: ErrorFormat | None = None) -> str:
    """The OperationOutcome in the chosen form (no trailing newline)."""
    if (fmt or error_format()) == "json":
        return json.dumps(outcome, ensure_ascii=False)
    issues = [i for i in outcome.get("issue", []) if isinstance(i, Mapping)]
    return "\n".join(issue_line(issue) for issue in issues)


def echo_outcome(outcome: Mapping[str, Any], *, err: bool = True) -> None:
    click.echo(render_outcome(outcome), err=err)


__all__ = [
    "ErrorFormat",
    "echo_outcome",
    "error_format",
    "error_format_option",
    "issue_line",
    "render_outcome",
]
