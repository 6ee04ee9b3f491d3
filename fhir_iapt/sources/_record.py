"""The unit the readers yield: one source record and where it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from fhir_iapt.errors import Location, ReadError

#: A record that passes an input limit (field or line length): see :mod:`fhir_iapt.limits`.
OVER_LIMIT: Final = "FI105"


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as read, not yet mapped.

    ``data`` is a ``dict[str, str]`` (CSV header -> cell), the decoded JSON object, or an lxml
    element (XML) detached from the document: its ancestors are shallow copies (tag and
    attributes only), so absolute XPaths such as ``/Root/@clinic`` still work on it.
    ``location`` names the file, the 1-based record number (``row``), the physical line where
    known and the record's element (XPath or JSON path). ``size`` is about how many bytes of
    the input the record was read from (0 when not measured): summed over records it is the
    bytes read, so work can be sized by bytes (e.g. chunks of records sent to worker
    processes), not only by count.
    """

    data: Any
    location: Location
    size: int = field(default=0, compare=False)


def read_error(message: str, location: Location, *, error_code: str = "FI100") -> ReadError:
    """A ReadError value (never raised by the readers: they yield it)."""
    return ReadError(message, location=location, error_code=error_code)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def field_name(name: object) -> str | None:
    """``name`` (a CSV header, JSON key, XML tag or attribute) when it looks like a field name,
    else None: a key in hostile input could be a patient value, and messages never hold one."""
    if isinstance(name, str) and _NAME.fullmatch(name):
        return name
    return None


@lru_cache(maxsize=8)
def long_digit_run(limit: int) -> re.Pattern[str]:
    """A run of more than ``limit`` digits (any Unicode decimal digit: ``int()`` reads them
    all, and refuses more than 4,300 of them)."""
    return re.compile(rf"\d{{{limit + 1},}}")


#: Bytes -> "0" for an ASCII digit, "x" for anything else (so a run of digits is a run of "0").
_DIGIT_MAP = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x78 for byte in range(256))


def digit_run_at(data: bytes, limit: int) -> int:
    """Where the first run of more than ``limit`` ASCII digits in ``data`` starts, or -1 (a
    byte translation and a substring search: several times faster than a regex)."""
    return data.translate(_DIGIT_MAP).find(b"0" * (limit + 1))


def at_field(location: Location, name: object) -> Location:
    """``location`` naming the field ``name`` when it looks like a field name."""
    shown = field_name(name)
    return location.with_field(shown) if shown else location


__all__ = [
    "OVER_LIMIT",
    "SourceRecord",
    "at_field",
    "digit_run_at",
    "field_name",
    "long_digit_run",
    "read_error",
]
