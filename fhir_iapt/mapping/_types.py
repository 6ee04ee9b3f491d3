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

TYPES = ("string", "int", "decimal", "date", "bool", "nhs_number", "ods", "code", "enum", "name")

_INT = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_ODS = re.compile(r"[A-Z0-9]{3,10}")
_YEAR = r"(?P<Y>\d{4})"
_DATE_DIRECTIVES = {
    "%Y": _YEAR,
    "%m": r"(?P<m>\d{1,2})",
    "%d": r"(?P<d>\d{1,2})",
    "%H": r"(?P<H>\d{1,2})",
    "%M": r"(?P<M>\d{2})",
    "%S": r"(?P<S>\d{2})",
}
#: a value that starts with a comparator: a censored result ("<20": below what the test reads)
_CENSORED = re.compile(r"\s*(?:[<>]=?|[\u2264\u2265])\s*[0-9.,]")
_TWO_DIGIT_YEAR = (
    "%y (a two-digit year) is refused: '25' could be 1925 or 2025, and a birth date or a "
    "visit date cannot be guessed; use %Y and ask for four-digit years"
)


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


def _number_problem(rule: str, raw: Any, unit: str | None) -> str:
    """The message for a value that is not a number of the field's kind (never the value)."""
    if raw.__class__ is str and _CENSORED.match(raw):
        return (
            "is a censored value ('<' or '>': below or above what the test measures); the "
            "target takes exact values only, so it is refused rather than kept without its "
            "comparator"
        )
    if unit is not None:
        return f"{rule}, alone or followed by its unit {unit} (no other unit is read)"
    return rule


def _without_unit(unit: str, convert: Converter) -> Converter:
    """``convert`` of the value with ``unit`` (and the space before it) taken off its end."""
    size = len(unit)

    def strip(raw: Any) -> Any:
        if raw.__class__ is str and raw.endswith(unit):
            raw = raw[:-size].rstrip()
        return convert(raw)

    return strip


def integer(
    *, low: int | None = None, high: int | None = None, unit: str | None = None
) -> Converter:
    rule = "is not a whole number"

    def convert(raw: Any) -> int:
        whole = (
            raw.__class__ is int
            or (raw.__class__ is str and _INT.fullmatch(raw) is not None)
            or (isinstance(raw, Decimal) and raw == raw.to_integral_value())
        )
        if not whole:
            raise Invalid(_number_problem(rule, raw, unit))
        value = int(raw)
        return int(_bounds(value, low, high))

    return convert if unit is None else _without_unit(unit, convert)


def decimal(
    *,
    low: Decimal | None = None,
    high: Decimal | None = None,
    unit: str | None = None,
    comma: bool = False,
) -> Converter:
    """A decimal; ``comma``: written with a decimal comma (``7,5``), a point is then refused."""
    rule = "is not a decimal number"
    if comma:
        rule += " written with ',' as the decimal separator"

    def convert(raw: Any) -> Decimal:
        if raw.__class__ is str and _DECIMAL.fullmatch(raw):
            value = Decimal(raw)
        elif isinstance(raw, Decimal) and raw.is_finite():
            value = raw
        elif raw.__class__ is int:
            value = Decimal(raw)
        else:
            raise Invalid(_number_problem(rule, raw, unit))
        return Decimal(_bounds(value, low, high))

    chain: Converter = convert
    if comma:

        def with_comma(raw: Any) -> Decimal:
            if raw.__class__ is str:
                if "." in raw:
                    raise Invalid(_number_problem(rule, raw, unit))
                raw = raw.replace(",", ".")
            return convert(raw)

        chain = with_comma
    return chain if unit is None else _without_unit(unit, chain)


def compile_date_format(fmt: str) -> re.Pattern[str]:
    """``%d/%m/%Y`` -> a regex with named groups Y, m, d (and H, M, S for a time, which is
    checked and not kept); raises ValueError for other directives, ``%y`` with its reason."""
    pattern = ""
    index = 0
    seen: set[str] = set()
    while index < len(fmt):
        if fmt[index] == "%":
            directive = fmt[index : index + 2]
            if directive == "%y":
                raise ValueError(_TWO_DIGIT_YEAR)
            if directive not in _DATE_DIRECTIVES or directive in seen:
                raise ValueError(
                    f"date formats use %Y, %m and %d (and %H, %M, %S for a time) once each, "
                    f"not {directive!r}"
                )
            seen.add(directive)
            pattern += _DATE_DIRECTIVES[directive]
            index += 2
        else:
            pattern += re.escape(fmt[index])
            index += 1
    if not {"%Y", "%m", "%d"} <= seen:
        raise ValueError("a date format needs %Y, %m and %d")
    if ("%H" in seen) != ("%M" in seen) or ("%S" in seen and "%H" not in seen):
        raise ValueError("a time in a date format is %H:%M, or %H:%M:%S")
    return re.compile(pattern)


def _time_ok(match: re.Match[str]) -> bool:
    found = match.groupdict()
    hour = found.get("H")
    if hour is None:  # this format has no time
        return True
    second = found.get("S")
    return int(hour) <= 23 and int(found["M"]) <= 59 and (second is None or int(second) <= 59)


def date_type(
    *, formats: tuple[re.Pattern[str], ...], allow_future: bool, earliest: date | None
) -> Converter:
    """A calendar date in one of ``formats``; a time in the format is checked and dropped."""
    two_digit_years = tuple(
        re.compile(p.pattern.replace(_YEAR, r"\d{2}")) for p in formats if _YEAR in p.pattern
    )
    timed = any("H" in p.groupindex for p in formats)

    def convert(raw: Any) -> date:
        text = _text(raw, numbers=False)
        for pattern in formats:
            match = pattern.fullmatch(text)
            if match is not None:
                break
        else:
            if any(short.fullmatch(text) for short in two_digit_years):
                raise Invalid(
                    "has a two-digit year: years must have four digits (a two-digit year could "
                    "be 19xx or 20xx, and the date is not guessed)"
                )
            raise Invalid("is not a date in an accepted format")
        if timed and not _time_ok(match):
            raise Invalid("has a time that is not a real time of day (00:00 to 23:59)")
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


def nhs_number(*, separators: str = "") -> Converter:
    """10 digits, modulus 11 checked; spaces and the ``separators`` characters are dropped."""
    if not separators:

        def convert(raw: Any) -> str:
            digits = _identifier(raw).replace(" ", "")
            if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
                raise Invalid("is not 10 digits")
            if not is_valid_nhs_number(digits):
                raise Invalid("fails the NHS number check digit (modulus 11)")
            return digits

        return convert
    drop = str.maketrans("", "", " " + separators)
    shown = " or ".join(["spaces", *(repr(c) for c in separators)])
    rule = f"is not 10 digits (grouped only by {shown})"

    def grouped(raw: Any) -> str:
        digits = _identifier(raw).translate(drop)
        if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
            raise Invalid(rule)
        if not is_valid_nhs_number(digits):
            raise Invalid("fails the NHS number check digit (modulus 11)")
        return digits

    return grouped


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


def person_name() -> Converter:
    """``FAMILY, Given names`` -> ``(family, (given names,))``: the family name, one comma, the
    given names (as one, like a given-name column), both present; the case is kept."""

    def convert(raw: Any) -> tuple[str, tuple[str, ...]]:
        family, comma, given = _text(raw, numbers=False).partition(",")
        family, given = family.strip(), given.strip()
        if not comma or not family or not given or "," in given:
            raise Invalid(
                "is not a name written 'FAMILY, Given names' (the family name, one comma, "
                "the given names)"
            )
        return family, (given,)

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
    "person_name",
    "string",
    "today",
]
