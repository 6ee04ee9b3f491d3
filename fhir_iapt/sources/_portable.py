"""Send a source record to another process: XML records travel as bytes and are re-parsed.

lxml elements cannot be pickled. :func:`portable` serialises an XML record together with its
shallow ancestors (so ``/Root/@attr`` XPaths still work after the trip); :func:`revive` parses it
back with the same safe parser settings and restores the original source line numbers. CSV and
JSON records pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from fhir_iapt.sources._record import SourceRecord

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True, slots=True)
class PortableXml:
    """An XML record under its ancestors, as bytes; ``depth`` = number of ancestors."""

    xml: bytes
    depth: int


def portable(record: SourceRecord) -> SourceRecord:
    """A picklable copy of ``record`` (XML records become :class:`PortableXml`)."""
    data = record.data
    if not etree.iselement(data):
        return record
    depth = sum(1 for _ in data.iterancestors())
    root = data.getroottree().getroot()
    return SourceRecord(PortableXml(etree.tostring(root), depth), record.location)


def revive(record: SourceRecord) -> SourceRecord:
    """Undo :func:`portable` (also accepts a bare serialised record element)."""
    data: Any = record.data
    if isinstance(data, PortableXml):
        element = etree.fromstring(data.xml, _PARSER)
        for _ in range(data.depth):
            element = element[0]
    elif isinstance(data, bytes):
        element = etree.fromstring(data, _PARSER)
    else:
        return record
    first_line: Any = element.sourceline
    offset = (record.location.line or 1) - (first_line or 1)
    if offset:
        for node in element.iter():
            line: Any = node.sourceline
            if line is not None:
                node.sourceline = line + offset
    return SourceRecord(element, record.location)


__all__ = ["PortableXml", "portable", "revive"]
