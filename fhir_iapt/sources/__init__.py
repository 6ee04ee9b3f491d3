"""Read: turn a CSV, JSON (array or NDJSON), XML or FHIR JSON input into source records.

Every reader streams in constant memory and never raises for bad data: an unreadable record is
yielded as a :class:`~fhir_iapt.errors.ReadError` *value* (with its location) and reading goes on;
damage that ends the file (truncated XML, invalid UTF-8, a broken JSON array) is yielded as one
ReadError locating it, after the records already read. Error codes::

    FI101  a row or record cannot be read (wrong column count, malformed line, not an object)
    FI102  the header is missing columns the mapping reads, or is empty or duplicated
    FI103  the bytes are not UTF-8
    FI104  the file is cut short or broken beyond that point (XML / JSON array)
    FI105  a record is past the field- or line-length limit (skipped; the next one is read)

The input limits (nesting depth, field length, line length, digits) are
:class:`fhir_iapt.limits.Limits`: the ``FHIR_IAPT_MAX_*`` environment variables over the
defaults, read when a reader starts, unless ``limits`` is given.

For worker processes, :func:`portable` / :func:`revive` carry a record across a pickle (XML
records as bytes, with their ancestors' attributes and source lines kept).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, Literal

from fhir_iapt.errors import ReadError
from fhir_iapt.limits import Limits, current
from fhir_iapt.sources._portable import PortableXml, portable, revive
from fhir_iapt.sources._record import SourceRecord

SourceFormat = Literal["csv", "json", "xml", "fhir"]
FORMATS: tuple[SourceFormat, ...] = ("csv", "json", "xml", "fhir")


def read_records(
    stream: BinaryIO,
    *,
    name: str,
    fmt: SourceFormat,
    options: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
) -> Iterator[SourceRecord | ReadError]:
    """Yield the records of ``stream`` (binary) in order; ``name`` is the file name for locations.

    ``options`` come from a mapping's ``input:`` section: csv ``delimiter``, ``quotechar``,
    ``required_columns``; json ``layout`` (``auto``/``array``/``ndjson``); xml ``record`` (the
    absolute path of the record elements, e.g. ``/RespiratoryClinicExport/Visit``); fhir (FHIR
    JSON resources: one, a Bundle, an array or NDJSON) takes none. ``limits`` defaults to
    :func:`fhir_iapt.limits.current` (raises ConfigError, FI805, for a bad variable).
    """
    opts: Mapping[str, Any] = options or {}
    bounds = limits if limits is not None else current()
    if fmt == "csv":
        from fhir_iapt.sources._csv import read_csv

        return read_csv(stream, name=name, options=opts, limits=bounds)
    if fmt == "json":
        from fhir_iapt.sources._json import read_json

        return read_json(stream, name=name, options=opts, limits=bounds)
    if fmt == "xml":
        from fhir_iapt.sources._xml import read_xml

        return read_xml(stream, name=name, options=opts, limits=bounds)
    if fmt == "fhir":
        from fhir_iapt.sources._fhir import read_fhir

        return read_fhir(stream, name=name, options=opts, limits=bounds)
    raise ValueError(f"unknown source format {fmt!r}; expected one of {', '.join(FORMATS)}")


def sniff_format(head: bytes) -> Literal["csv", "json", "xml"] | None:
    """What the first bytes of an input look like: ``xml`` (a ``<`` first), ``json`` (``{`` or
    ``[``), ``csv`` (other text), None when nothing can be said (empty, or not ASCII at the
    start, e.g. UTF-16). A byte-order mark and leading white space are skipped. Used to catch a
    mapping for the wrong kind of input before any record is read."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if not text or text[0] >= 0x80:
        return None
    first = text[:1]
    if first == b"<":
        return "xml"
    if first in (b"{", b"["):
        return "json"
    return "csv"


__all__ = [
    "FORMATS",
    "PortableXml",
    "SourceFormat",
    "SourceRecord",
    "portable",
    "read_records",
    "revive",
    "sniff_format",
]
