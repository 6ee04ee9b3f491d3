"""Input limits, in one place: each far above anything a real export holds, so only hostile or
broken input meets them, and each reported as a located rejection, never a crash.

The readers (:mod:`fhir_iapt.sources`) enforce four limits, held in a frozen :class:`Limits`:

``max_depth`` (100)
    The deepest nesting of JSON arrays and objects, or of XML elements. A clinic record nests a
    few levels and a FHIR QuestionnaireResponse a dozen or so; ijson tracks a path prefix per
    event, so 100k nested arrays in a 200 KB body once cost it tens of GB.
``max_field_chars`` (131,072)
    The characters in one value: a CSV cell, a JSON string or key, an XML attribute value or
    text. Python's own ``csv`` default; a clinic export's longest value is a free-text reason of
    a few hundred characters.
``max_line_bytes`` (1 MiB)
    The bytes in one record: a CSV row (all its physical lines), an NDJSON line, a JSON array
    item or Bundle entry, an XML record element. A referral record is a few KB. A record past
    it is skipped without being read whole into memory (so a 10 MB line costs no more than the
    limit), and the next record is read.
``max_number_digits`` (1,000)
    The longest run of digits. FHIR decimals carry at most 18 significant digits and
    identifiers are text; thousands of digits can only be an attack on the parsers (ijson's C
    backend crashes the process on one of 4,301+, and ``int()`` refuses them). At most 4,300.

Each default can be overridden by an environment variable (``FHIR_IAPT_MAX_DEPTH``,
``FHIR_IAPT_MAX_FIELD_CHARS``, ``FHIR_IAPT_MAX_LINE_BYTES``, ``FHIR_IAPT_MAX_NUMBER_DIGITS``),
read by :meth:`Limits.from_env` (the one place) each time a reader starts on an input: so the
library, the CLI (whose ``convert --max-*`` options set them), ``--workers`` child processes and
the relay all see the same values. A caller of :func:`fhir_iapt.sources.read_records` may pass
a :class:`Limits` instead. A bad value is a :class:`~fhir_iapt.errors.ConfigError` (FI805)
naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

from fhir_iapt.errors import ConfigError

#: A bad limit setting (an environment variable or a ``Limits`` argument).
BAD_LIMIT: Final = "FI805"

#: Python's ``int()`` refuses longer digit strings (``sys.get_int_max_str_digits``), and ijson's
#: C backend crashes the process on a number of 4,301 digits or more.
DIGITS_CEILING: Final = 4300


@dataclass(frozen=True, slots=True)
class Limits:
    """The four input limits (see the module docstring); every value a whole number >= 1."""

    max_depth: int = 100
    max_field_chars: int = 131_072
    max_line_bytes: int = 1 << 20
    max_number_digits: int = 1000

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad(item.name, value)
            low, high = _RANGES[item.name]
            if not low <= value <= high:
                raise _bad(item.name, value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, each overridden by its ``FHIR_IAPT_MAX_*`` variable when set (and not
        empty) in ``environ`` (``os.environ`` when None)."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for name, variable in ENV_VARS.items():
            raw = env.get(variable, "").strip()
            if not raw:
                continue
            try:
                values[name] = int(raw.replace("_", ""), 10)
            except ValueError:
                raise _bad(name, raw, variable) from None
            low, high = _RANGES[name]
            if not low <= values[name] <= high:
                raise _bad(name, raw, variable)
        return cls(**values)

    def as_env(self) -> dict[str, str]:
        """The environment variables that make :meth:`from_env` return these limits (for a
        child process's environment)."""
        return {variable: str(getattr(self, name)) for name, variable in ENV_VARS.items()}


#: Limit -> the environment variable that overrides it.
ENV_VARS: Final[Mapping[str, str]] = {
    "max_depth": "FHIR_IAPT_MAX_DEPTH",
    "max_field_chars": "FHIR_IAPT_MAX_FIELD_CHARS",
    "max_line_bytes": "FHIR_IAPT_MAX_LINE_BYTES",
    "max_number_digits": "FHIR_IAPT_MAX_NUMBER_DIGITS",
}

#: Limit -> the values it may take (a depth of 1 would refuse every JSON record).
_RANGES: Final[Mapping[str, tuple[int, int]]] = {
    "max_depth": (2, 100_000),
    "max_field_chars": (1, 1 << 40),
    "max_line_bytes": (1, 1 << 40),
    "max_number_digits": (1, DIGITS_CEILING),
}


def _bad(name: str, value: object, variable: str | None = None) -> ConfigError:
    low, high = _RANGES[name]
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    where = variable or f"Limits({name}=...)"
    return ConfigError(
        f"{where} must be a whole number from {low:,} to {high:,}; got {shown}",
        error_code=BAD_LIMIT,
    )


#: The limits when no variable is set.
DEFAULT_LIMITS: Final = Limits()


def current() -> Limits:
    """The limits in force in this process now: :meth:`Limits.from_env` over ``os.environ``."""
    return Limits.from_env()


#: The defaults under their old names (kept for callers that imported them).
MAX_DEPTH: Final = DEFAULT_LIMITS.max_depth
MAX_NUMBER_DIGITS: Final = DEFAULT_LIMITS.max_number_digits

__all__ = [
    "BAD_LIMIT",
    "DEFAULT_LIMITS",
    "DIGITS_CEILING",
    "ENV_VARS",
    "MAX_DEPTH",
    "MAX_NUMBER_DIGITS",
    "Limits",
    "current",
]
