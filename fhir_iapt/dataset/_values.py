"""Cell checks shared by the header and the tables: each returns the value or raises
:class:`BadValue` with the rule broken (never the value)."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation

from fhir_iapt.errors import ReadError

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?Z?")
_TIME = re.compile(r"(?:\d{4}-\d{2}-\d{2}[T ])?(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?Z?")
_ICD10 = re.compile(r"([A-Z]\d\d)\.?(\d{0,2})[A-Z]?")


class BadValue(ReadError):
    """A cell breaks ``rule`` (the message); the caller adds table, row and field."""

    def __init__(self, rule: str, *, code: str = "FI153") -> None:
        super().__init__(rule, error_code=code)
        self.rule = rule


def text(raw: str | None) -> str | None:
    """The cell stripped; blank -> None."""
    if raw is None:
        return None
    value = raw.strip()
    return value or None


def required(raw: str | None) -> str:
    value = text(raw)
    if value is None:
        raise BadValue("must not be blank")
    return value


def iso_date(raw: str | None) -> date | None:
    """YYYY-MM-DD, optionally with a time after it (dropped); blank -> None."""
    value = text(raw)
    if value is None:
        return None
    match = _DATE.fullmatch(value)
    if match is None:
        raise BadValue("must be a date YYYY-MM-DD")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise BadValue("must be a real calendar date") from None


def clock(raw: str | None) -> str:
    """HH:MM[:SS] or a date-time -> ``HH:MM:SS``; blank -> "" (sorts before any time)."""
    value = text(raw)
    if value is None:
        return ""
    match = _TIME.fullmatch(value)
    if match is None:
        raise BadValue("must be a time HH:MM:SS")
    try:
        return time(int(match[1]), int(match[2]), int(match[3] or 0)).isoformat()
    except ValueError:
        raise BadValue("must be a real time of day") from None


def date_time(raw: str | None) -> str:
    """An ISO date-time (or a date) -> ISO text for ordering; blank -> ""."""
    value = text(raw)
    if value is None:
        return ""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None).isoformat()
    except ValueError:
        raise BadValue("must be a date-time YYYY-MM-DDTHH:MM:SS") from None


def code_in(
    raw: str | None, allowed: frozenset[str], label: str, *, strip_zeros: bool
) -> str | None:
    """A code from ``allowed`` (``'05'`` read as ``'5'`` when ``strip_zeros``); blank -> None."""
    value = text(raw)
    if value is None:
        return None
    if strip_zeros and value.isascii() and value.isdigit():
        value = value.lstrip("0") or "0"
    if value not in allowed:
        raise BadValue(f"must be one of {label}", code="FI153")
    return value


def two_digit(raw: str | None) -> str | None:
    """A code of one or two digits, as two (``'2'`` -> ``'02'``); blank -> None."""
    value = text(raw)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 2):
        raise BadValue("must be a code of two digits")
    return value.zfill(2)


def decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BadValue("must be a number, NA or N/A", code="FI154") from None
    if not value.is_finite():
        raise BadValue("must be a number, NA or N/A", code="FI154")
    return value


def decimal_places(value: Decimal) -> int:
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or not any(digits):
        return 0
    trailing = len(digits) - len(bytes(digits).rstrip(b"\x00"))
    return max(0, -(exponent + trailing))


def icd10(code: str) -> str | None:
    """``"f411"`` / ``"F41.1"`` -> ``"F41.1"``; None when not of the form A00 / A00.0."""
    match = _ICD10.fullmatch(code.strip().upper())
    if match is None:
        return None
    return f"{match[1]}.{match[2]}" if match[2] else match[1]


__all__ = [
    "BadValue",
    "clock",
    "code_in",
    "date_time",
    "decimal",
    "decimal_places",
    "icd10",
    "iso_date",
    "required",
    "text",
    "two_digit",
]
