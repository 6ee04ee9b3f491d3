"""Why a bundle cannot be written as JSON, said by element and rule, never by value.

orjson refuses a few things a Python dict can hold: a ``str`` with a lone surrogate (not
Unicode text: "str is not valid UTF-8"), an integer outside 64 bits, a key that is not a string,
a value of a type JSON has no form for, nesting past 255 levels. A writer that meets one turns
the record into an :class:`~fhir_iapt.errors.UnwritableRecordError` whose issue names the
FHIRPath of the first such element (:func:`json_problem`).

Rejected-record outcomes and the run summary hold no patient data, only names of files and
elements; a file name Python could not decode (bytes kept as lone surrogates) is written with
U+FFFD in their place (:func:`dumps_text`) rather than losing the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from fhir_iapt.errors import Issue, Location, UnwritableRecordError

#: A lone surrogate: a Python ``str`` may hold one, UTF-8 (so JSON and XML) cannot.
_SURROGATE = re.compile("[\ud800-\udfff]")

#: orjson's own nesting limit.
_MAX_DEPTH = 254

_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1

#: The record is rejected with this code (registered in ``fhir_iapt.error_codes``).
UNWRITABLE = "FI641"


def _scalar_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool | float | orjson.Fragment):  # pre-serialised
        return None
    if isinstance(value, str):
        return (
            "a string holds a lone surrogate (not Unicode text)"
            if _SURROGATE.search(value)
            else None
        )
    if isinstance(value, int):
        return None if _INT_MIN <= value <= _INT_MAX else "a number is too large for JSON output"
    return f"a value of type {type(value).__name__} has no JSON form"


def json_problem(tree: Any, root: str) -> tuple[str | None, str]:
    """The FHIRPath (from ``root``) of the first element orjson cannot write, and why.

    ``(None, reason)`` when no single element is to blame.
    """
    stack: list[tuple[Any, str, int]] = [(tree, root, 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return path, "the bundle is nested too deeply for JSON output"
        if isinstance(node, Mapping):
            children: list[tuple[Any, str, int]] = []
            for key, value in node.items():
                if not isinstance(key, str):
                    return path, "an element name is not a string"
                if _SURROGATE.search(key):
                    return path, "an element name holds a lone surrogate (not Unicode text)"
                children.append((value, f"{path}.{key}", depth + 1))
            stack.extend(reversed(children))
        elif isinstance(node, list | tuple):
            stack.extend(
                (value, f"{path}[{index}]", depth + 1)
                for index, value in reversed(list(enumerate(node)))
            )
        else:
            reason = _scalar_problem(node)
            if reason is not None:
                return path, reason
    return None, "the bundle cannot be serialised as JSON"


def unwritable(
    location: Location, expression: str | None, reason: str, *, error_code: str = UNWRITABLE
) -> UnwritableRecordError:
    """The error that rejects one record: where it came from, which element, which rule."""
    message = f"the bundle built for this record cannot be written: {reason}"
    issue = Issue(
        diagnostics=message,
        code="invalid",
        location=location,
        expression=expression,
        error_code=error_code,
    )
    return UnwritableRecordError(message, issues=[issue], location=location, error_code=error_code)


def not_json(location: Location, tree: Any, root: str) -> UnwritableRecordError:
    """The record whose ``tree`` (at FHIRPath ``root``) orjson refused."""
    expression, reason = json_problem(tree, root)
    return unwritable(location, expression, reason)


def _replace_surrogates(tree: Any) -> Any:
    if isinstance(tree, str):
        return _SURROGATE.sub("\ufffd", tree)
    if isinstance(tree, Mapping):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_replace_surrogates(v) for v in tree]
    return tree


def dumps_text(tree: Any, option: int) -> bytes:
    """``orjson.dumps`` for outcomes and summaries (names of files and elements, no patient
    data): a lone surrogate, as Python gives undecodable bytes of a file name, becomes U+FFFD
    instead of failing the write."""
    try:
        return orjson.dumps(tree, option=option)
    except orjson.JSONEncodeError:
        return orjson.dumps(_replace_surrogates(tree), option=option)


__all__ = ["UNWRITABLE", "dumps_text", "json_problem", "not_json", "unwritable"]
