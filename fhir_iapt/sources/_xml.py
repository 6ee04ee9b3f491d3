"""XML reader: ``lxml.etree.iterparse`` with the safe settings, one detached element per record.

The records are the elements at ``options["record"]``, an absolute path of tag names such as
``/RespiratoryClinicExport/Visit`` (namespaces are matched by local name). Each record is
detached from the document as soon as it ends, and hung under shallow copies of its ancestors
(tag and attributes, no other children), so memory stays flat however long the file is, and an
absolute XPath such as ``/RespiratoryClinicExport/@clinic`` still reaches the root's attributes.
Elements at record depth that are not records are dropped.

No entity is resolved, no DTD loaded, no network used, no huge-tree mode: an export cannot make
the reader fetch a file or expand entities. A document with a DOCTYPE is refused outright
(libxml2 expands internal-subset entities even with entity resolution off). Parser messages
are never passed on: only the kind of error (from libxml2's code) and its line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from lxml import etree

from fhir_iapt.errors import Location, ReadError
from fhir_iapt.sources._record import SourceRecord, read_error


def record_path_tags(path: str) -> tuple[str, ...]:
    """``/A/B`` -> ``("A", "B")``; raises ValueError unless it is an absolute path of names."""
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError("the record path must be absolute, like /Root/Record")
    tags = tuple(path[1:].split("/"))
    if len(tags) < 2 or not all(
        tag.replace("-", "").replace("_", "").replace(".", "").isalnum() and not tag[0].isdigit()
        for tag in tags
    ):
        raise ValueError("the record path must name the root and the record, like /Root/Record")
    return tags


def _local(tag: Any) -> str:
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rsplit("}", 1)[-1]


def _syntax_reason(exc: etree.XMLSyntaxError) -> str:
    """What kind of syntax error, from libxml2's error code alone: its message can quote the
    input (an attribute name, a value: patient data), so none of the message is used."""
    try:
        code = getattr(exc, "code", None)  # lxml-stubs do not declare it
        kind = str(etree.ErrorTypes._getName(code))  # e.g. ERR_TAG_NAME_MISMATCH
    except (AttributeError, KeyError, TypeError, ValueError):
        kind = ""
    if not kind.startswith("ERR_"):
        return "not well-formed"
    return kind[len("ERR_") :].replace("_", " ").lower()


def _has_doctype(element: Any) -> bool:
    docinfo = element.getroottree().docinfo
    return bool(docinfo.doctype) or docinfo.internalDTD is not None


def _detach(element: Any) -> Any:
    """Move ``element`` under shallow copies of its ancestors; return it."""
    ancestors = list(element.iterancestors())
    ancestors.reverse()
    top = etree.Element(ancestors[0].tag, dict(ancestors[0].attrib), nsmap=ancestors[0].nsmap)
    holder = top
    for ancestor in ancestors[1:]:
        holder = etree.SubElement(holder, ancestor.tag, dict(ancestor.attrib))
    element.getparent().remove(element)
    holder.append(element)
    return element


def read_xml(
    stream: BinaryIO, *, name: str, options: Mapping[str, Any]
) -> Iterator[SourceRecord | ReadError]:
    """Yield one :class:`SourceRecord` (a detached element) per record element, or a ReadError."""
    record_path = str(options["record"])
    tags = record_path_tags(record_path)
    depth_of_record = len(tags)
    events = etree.iterparse(
        stream,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    path: list[str] = []
    count = 0
    try:
        for event, element in events:
            if event == "start":
                path.append(_local(element.tag))
                if len(path) == 1 and _has_doctype(element):
                    # libxml2 expands internal entities even with resolve_entities off: a
                    # document with a DTD is refused before any record is read
                    yield read_error(
                        "the document has a DOCTYPE; DTDs and entities are not accepted",
                        Location(file=name, line=element.sourceline),
                        error_code="FI104",
                    )
                    return
                if len(path) == 1 and path[0] != tags[0]:
                    yield read_error(
                        f"the root element is <{path[0]}>, expected <{tags[0]}>",
                        Location(file=name, line=element.sourceline, element=f"/{path[0]}"),
                        error_code="FI104",
                    )
                    return
                continue
            depth = len(path)
            if depth == depth_of_record:
                if tuple(path) == tags:
                    count += 1
                    at = Location(
                        file=name,
                        row=count,
                        line=element.sourceline,
                        element=f"{record_path}[{count}]",
                    )
                    yield SourceRecord(_detach(element), at)
                else:
                    element.getparent().remove(element)
            path.pop()
    except etree.XMLSyntaxError as exc:
        reason = _syntax_reason(exc)
        if "UTF-8" in reason or "encoding" in reason:
            message, code = "the bytes are not UTF-8; reading stops here", "FI103"
        else:
            message, code = f"the XML is broken ({reason}); reading stops here", "FI104"
        yield read_error(
            message,
            Location(file=name, row=count + 1, line=exc.lineno or None),
            error_code=code,
        )


__all__ = ["read_xml", "record_path_tags"]
