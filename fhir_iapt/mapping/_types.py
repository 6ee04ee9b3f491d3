"""Field types: converters from a source value to a typed, checked value.

Each converter is built once when a mapping loads (its options bound in a closure) and called
per record with a non-blank source value: stripped text (CSV, XML) or a decoded JSON value. It
returns the typed value or raises :class:`Invalid` with a message naming the rule broken, never
the value itself (it may be patient data).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_iapt.nhs_number import is_valid_nhs_number
from fhir_iapt.sources._json import json_kind

Converter = Callable[[Any], Any]

TYPES = ("string", "int", "decimal", "date", "bool", "nhs_number", "ods", "code", "enum")

_INT = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_ODS = re.compile(r"[A-Z0-9]{3,10}")
_DATE_DIRECTIVES = {"%Y": r"(?P<Y>\d{4})", "%m": r"(?P<m>\d{1,2})", "%d": r"(?P<d>\d{1,2})"}


class _Today:
    """``date.today()``, looked up at most once a second (it is slow next to the rest)."""

    def __init__(self) -> None:
        self._value = date.today()
        self._until = time.monotonic() + 1.0

    def __call__(self) -> date:
        now = time.monotonic()
        if now >= self._until:
            self._value = date.today()
            self._until = now + 1.0
        return self._value


today = _Today()


class Invalid(Exception):
    """A source value breaks a field's rule; ``code`` is a FHIR IssueType."""

    def __init__(self, message: str, code: str = "value") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _text(raw: Any, *, numbers: bool = True) -> str:
    if raw.__class__ is str:
        return str(raw)
    if numbers and isinstance(raw, int | Decimal) and not isinstance(raw, bool):
        return str(raw)
    raise Invalid(f"expected text, got a JSON {json_kind(raw)}", "structure")


def _identifier(raw: Any) -> str:
    """An identifier's text; a JSON number or boolean is refused, whatever its value.

    A number loses leading zeros (``0000005010`` -> ``5010``) and silently changes type, so an
    identifier must arrive as text: CSV and XML values always do, JSON ones must be strings.
    """
    if raw.__class__ is str:
        return str(raw)
    if isinstance(raw, bool | int | float | Decimal):
        raise Invalid(
            "must be a JSON string (an identifier sent as a number loses leading zeros)",
            "structure",
        )
    return _text(raw)


def string(*, as_list: bool = False, max_length: int | None = None) -> Converter:
    def one(raw: Any) -> str:
        text = _text(raw).strip()
        if max_length is not None and len(text) > max_length:
            raise Invalid(f"is longer than {max_length} characters")
        return text

    if not as_list:
        return one

    def many(raw: Any) -> tuple[str, ...]:
        if raw.__class__ is str and max_length is None:
            return (str(raw),)  # the engine has stripped it already
        items = raw if isinstance(raw, list) else [raw]
        return tuple(text for text in (one(item) for item in items if item is not None) if text)

    return many


def _bounds(value: Any, low: Any, high: Any) -> Any:
    if low is not None and value < low:
        raise Invalid(f"is below the minimum {low}")
    if high is not None and value > high:
        raise Invalid(f"is above the maximum {high}")
    return value


def integer(*, low: int | None = None, high: int | None = None) -> Converter:
    def convert(raw: Any) -> int:
        whole = (
            raw.__class__ is int
            or (raw.__class__ is str and _INT.fullmatch(raw) is not None)
            or (isinstance(raw, Decimal) and raw == raw.to_integral_value())
        )
        if not whole:
            raise Invalid("is not a whole number")
        value = int(raw)
        return int(_bounds(value, low, high))

    return convert


def decimal(*, low: Decimal | None = None, high: Decimal | None = None) -> Converter:
    def convert(raw: Any) -> Decimal:
        if raw.__class__ is str and _DECIMAL.fullmatch(raw):
            value = Decimal(raw)
        elif isinstance(raw, Decimal) and raw.is_finite():
            value = raw
        elif raw.__class__ is int:
            value = Decimal(raw)
        else:
            raise Invalid("is not a decimal number")
        return Decimal(_bounds(value, low, high))

    return convert


def compile_date_format(fmt: str) -> re.Pattern[str]:
    """``%d/%m/%Y`` -> a regex with named groups Y, m, d; raises ValueError for other directives."""
    pattern = ""
    index = 0
    seen: set[str] = set()
    while index < len(fmt):
        if fmt[index] == "%":
            directive = fmt[index : index + 2]
            if directive not in _DATE_DIRECTIVES or directive in seen:
                raise ValueError(f"date formats use %Y, %m and %d once each, not {directive!r}")
            seen.add(directive)
            pattern += _DATE_DIRECTIVES[directive]
            index += 2
        else:
            pattern += re.escape(fmt[index])
            index += 1
    if seen != set(_DATE_DIRECTIVES):
        raise ValueError("a date format needs %Y, %m and %d")
    return re.compile(pattern)


def date_type(
    *, formats: tuple[re.Pattern[str], ...], allow_future: bool, earliest: date | None
) -> Converter:
    def convert(raw: Any) -> date:
        text = _text(raw, numbers=False)
        for pattern in formats:
            match = pattern.fullmatch(text)
            if match is not None:
                break
        else:
            raise Invalid("is not a date in an accepted format")
        try:
            value = date(int(match["Y"]), int(match["m"]), int(match["d"]))
        except ValueError:
            raise Invalid("is not a real calendar date") from None
        if not allow_future and value > today():
            raise Invalid("is in the future")
        if earliest is not None and value < earliest:
            raise Invalid(f"is before {earliest.isoformat()}")
        return value

    return convert


def boolean(*, terms: Mapping[str, Any], casefold: bool) -> Converter:
    def convert(raw: Any) -> bool:
        if raw.__class__ is bool:
            return bool(raw)
        text = _text(raw)
        value = terms.get(text.casefold() if casefold else text)
        if value.__class__ is not bool:
            raise Invalid("is not a yes/no term the lookup table knows", "code-invalid")
        return bool(value)

    return convert


def nhs_number() -> Converter:
    def convert(raw: Any) -> str:
        digits = _identifier(raw).replace(" ", "")
        if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
            raise Invalid("is not 10 digits")
        if not is_valid_nhs_number(digits):
            raise Invalid("fails the NHS number check digit (modulus 11)")
        return digits

    return convert


def ods_code() -> Converter:
    def convert(raw: Any) -> str:
        code = _identifier(raw).upper()
        if not _ODS.fullmatch(code):
            raise Invalid("is not an ODS code (3-10 letters or digits)")
        return code

    return convert


def code(
    *, terms: Mapping[str, Any], displays: Mapping[str, str] | None, casefold: bool
) -> Converter:
    """Look a term up; with ``displays`` return ``(value, display or None)``."""

    def convert(raw: Any) -> Any:
        text = _text(raw)
        key = text.casefold() if casefold else text
        if key not in terms:
            raise Invalid("is not a term the lookup table knows", "code-invalid")
        if displays is None:
            return terms[key]
        return terms[key], displays.get(key)

    return convert


def enum(*, values: frozenset[str]) -> Converter:
    def convert(raw: Any) -> str:
        text = _text(raw)
        if text not in values:
            raise Invalid(f"is not one of: {', '.join(sorted(values))}", "code-invalid")
        return text

    return convert


def decimal_bound(raw: Any) -> Decimal:
    """A YAML bound (int, float or text) as an exact Decimal; raises ValueError."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError("a bound must be a number")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError("a bound must be a number") from None
    if not value.is_finite():
        raise ValueError("a bound must be finite")
    return value


__all__ = [
    "TYPES",
    "Converter",
    "Invalid",
    "boolean",
    "code",
    "compile_date_format",
    "date_type",
    "decimal",
    "decimal_bound",
    "enum",
    "integer",
    "json_kind",
    "nhs_number",
    "ods_code",
    "string",
    "today",
]
