"""The unit the readers yield: one source record and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_iapt.errors import Location, ReadError


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as read, not yet mapped.

    ``data`` is a ``dict[str, str]`` (CSV header -> cell), the decoded JSON object, or an lxml
    element (XML) detached from the document: its ancestors are shallow copies (tag and
    attributes only), so absolute XPaths such as ``/Root/@clinic`` still work on it.
    ``location`` names the file, the 1-based record number (``row``), the physical line where
    known and the record's element (XPath or JSON path).
    """

    data: Any
    location: Location


def read_error(message: str, location: Location, *, error_code: str = "FI100") -> ReadError:
    """A ReadError value (never raised by the readers: they yield it)."""
    return ReadError(message, location=location, error_code=error_code)


__all__ = ["SourceRecord", "read_error"]
