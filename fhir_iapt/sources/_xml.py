"""XML reader: ``lxml.etree.iterparse`` with the safe settings, one detached element per record.

The records are the elements at ``options["record"]``, an absolute path of tag names such as
``/RespiratoryClinicExport/Visit``. Without ``options["namespaces"]`` the names are matched by
local name (whatever namespace an element is in); with it (prefix -> namespace URI) the path
reads as in XPath: ``c:Visit`` is ``Visit`` in the namespace of ``c``, an unprefixed name one in
no namespace. ``options["encoding"]`` reads the bytes in that encoding whatever the XML
declaration says (without it the declaration, else UTF-8, decides). Each record is
detached from the document as soon as it ends, and hung under shallow copies of its ancestors
(tag and attributes, no other children), so memory stays flat however long the file is, and an
absolute XPath such as ``/RespiratoryClinicExport/@clinic`` still reaches the root's attributes.
Elements at record depth that are not records are dropped.

No entity is resolved, no DTD loaded, no network used, no huge-tree mode: an export cannot make
the reader fetch a file or expand entities. A document with a DOCTYPE is refused outright
(libxml2 expands internal-subset entities even with entity resolution off). Parser messages
are never passed on: only the kind of error (from libxml2's code) and its line.

Limits (:mod:`fhir_iapt.limits`): elements nested past the depth limit end reading (FI104); a
record element whose bytes pass the line length is emptied as it is parsed (its descendants
dropped as they end, so memory stays flat) and rejected (FI105), and the next record is read;
an attribute value or text past the field length rejects its record, naming the attribute or
element. (libxml2 itself, outside huge-tree mode, refuses a text node of 10,000,000 bytes and
nesting past 256.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from lxml import etree

from fhir_iapt.errors import Location, ReadError
from fhir_iapt.limits import DEFAULT_LIMITS, ENV_VARS, Limits
from fhir_iapt.sources._record import (
    OVER_LIMIT,
    SourceRecord,
    digit_run_at,
    field_name,
    long_digit_run,
    read_error,
)

_TAG = re.compile(r"(?:[^\W\d][\w.-]*:)?[^\W\d][\w.-]*")


def record_path_tags(path: str) -> tuple[str, ...]:
    """``/A/B`` -> ``("A", "B")`` (``/c:A/c:B`` -> ``("c:A", "c:B")``); raises ValueError
    unless it is an absolute path of names, each with at most one namespace prefix."""
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError("the record path must be absolute, like /Root/Record")
    tags = tuple(path[1:].split("/"))
    if len(tags) < 2 or not all(_TAG.fullmatch(tag) for tag in tags):
        raise ValueError("the record path must name the root and the record, like /Root/Record")
    return tags


def expected_tags(tags: tuple[str, ...], namespaces: Mapping[str, str]) -> tuple[str, ...]:
    """The record path's names as lxml spells tags: ``c:Visit`` -> ``{uri}Visit``; raises
    ValueError for a prefix ``namespaces`` does not declare."""
    out = []
    for tag in tags:
        prefix, colon, local = tag.partition(":")
        if not colon:
            out.append(tag)
        elif prefix in namespaces:
            out.append(f"{{{namespaces[prefix]}}}{local}")
        else:
            raise ValueError(
                f"the record path uses the prefix {prefix!r}, which input: namespaces: does not "
                "declare"
            )
    return tuple(out)


def _local(tag: Any) -> str:
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rsplit("}", 1)[-1]


def _full(tag: Any) -> str:
    """The tag with its namespace (``{uri}local``), as the record path is matched with
    ``namespaces``."""
    return tag if isinstance(tag, str) else ""


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


def _wrong_root(found: str, written: str, expected: str) -> str:
    """The message for a root element that is not the record path's (no namespace URI from
    the file is repeated: it is the export's text)."""
    local = _local(found)
    if local == _local(expected) and found != expected:
        return (
            f"the root element <{written}> is not in the namespace the mapping's input: "
            "namespaces: gives it"
        )
    return f"the root element is <{field_name(local) or '...'}>, expected <{written}>"


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


class _Counted:
    """A read()-able stream counting the bytes read (``position``), in reads of at most an
    eighth of the line length so a record's span is known to within that."""

    def __init__(self, inner: BinaryIO, limit: int, digits: int) -> None:
        self._inner = inner
        self._read = max(64, min(65536, limit // 8))
        self.position = 0
        #: a record is refused when its measured span passes this (never one within the
        #: limit: the measure can overstate a span by one read)
        self.span_limit = limit + self._read
        #: how far a measured span can understate a record's bytes
        self.slack = self._read
        self._digits = digits
        self._digit_tail = b""
        #: where the last run of too many ASCII digits ended (-1: none seen)
        self.digit_run = -1

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(self._read if size < 0 else min(size, self._read))
        self.position += len(data)
        scan = self._digit_tail + data
        if digit_run_at(scan, self._digits) >= 0:
            self.digit_run = self.position
        self._digit_tail = scan[len(scan.rstrip(b"0123456789")) :]
        return data


def _long_value(element: Any, limit: int, digits: re.Pattern[str]) -> tuple[str, str | None] | None:
    """The first attribute value or text in ``element`` longer than ``limit`` characters, or
    holding a run of digits ``digits`` finds: (which limit, where: ``Name/@family``,
    ``Diagnosis``, None when a name does not look like a field name), or None."""

    def broken(value: str | None) -> str | None:
        if not value:
            return None
        if len(value) > limit:
            return "field"
        return "digits" if digits.search(value) else None

    for node in element.iter():
        tag = field_name(_local(node.tag))
        for attribute, value in node.attrib.items():
            if (kind := broken(value)) is not None:
                shown = field_name(_local(attribute))
                return kind, f"{tag}/@{shown}" if tag and shown else None
        kind = broken(node.text) or (broken(node.tail) if node is not element else None)
        if kind is not None:
            return kind, tag
    return None


def _drop(element: Any) -> None:
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is not None:
        parent.remove(element)


def read_xml(
    stream: BinaryIO,
    *,
    name: str,
    options: Mapping[str, Any],
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[SourceRecord | ReadError]:
    """Yield one :class:`SourceRecord` (a detached element) per record element, or a ReadError."""
    record_path = str(options["record"])
    written = record_path_tags(record_path)
    namespaces: Mapping[str, str] = options.get("namespaces") or {}
    tags = expected_tags(written, namespaces) if namespaces else written
    name_of = _full if namespaces else _local
    depth_of_record = len(tags)
    counted = _Counted(stream, limits.max_line_bytes, limits.max_number_digits)
    digits = long_digit_run(limits.max_number_digits)
    span_limit = counted.span_limit
    max_depth = limits.max_depth
    events = etree.iterparse(
        counted,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        **({"encoding": str(options["encoding"])} if options.get("encoding") else {}),
    )
    path: list[str] = []
    count = 0
    start = 0  # where the element at record depth began (bytes read by then)
    read = 0  # bytes read when the last record was yielded
    over = False  # that element passed the line length: it is emptied as it is parsed
    try:
        for event, element in events:
            if event == "start":
                path.append(name_of(element.tag))
                depth = len(path)
                if depth == 1 and _has_doctype(element):
                    # libxml2 expands internal entities even with resolve_entities off: a
                    # document with a DTD is refused before any record is read
                    yield read_error(
                        "the document has a DOCTYPE; DTDs and entities are not accepted",
                        Location(file=name, line=element.sourceline),
                        error_code="FI104",
                    )
                    return
                if depth == 1 and path[0] != tags[0]:
                    yield read_error(
                        _wrong_root(path[0], written[0], tags[0]),
                        Location(file=name, line=element.sourceline, element=f"/{_local(path[0])}"),
                        error_code="FI104",
                    )
                    return
                if depth > max_depth:
                    yield read_error(
                        f"the XML nests elements deeper than {limits.max_depth} (the depth "
                        f"limit, {ENV_VARS['max_depth']}); reading stops here",
                        Location(file=name, row=count + 1, line=element.sourceline),
                        error_code="FI104",
                    )
                    return
                if depth < depth_of_record and any(
                    len(value) > limits.max_field_chars or digits.search(value)
                    for value in element.attrib.values()
                ):  # an ancestor's attributes are part of every record under it
                    yield read_error(
                        f"an attribute of <{field_name(_local(path[-1])) or '...'}> is longer than "
                        f"{limits.max_field_chars:,} characters or holds more than "
                        f"{limits.max_number_digits:,} digits in a row (the field-length and "
                        f"digits limits); reading stops here",
                        Location(file=name, row=count + 1, line=element.sourceline),
                        error_code=OVER_LIMIT,
                    )
                    return
                if depth == depth_of_record:
                    start, over = counted.position, False
                elif depth > depth_of_record and not over:
                    over = counted.position - start > span_limit
                continue
            depth = len(path)
            if depth > depth_of_record:
                if over or counted.position - start > span_limit:
                    over = True
                    _drop(element)  # a descendant of a record past the limit
            elif depth == depth_of_record:
                over = over or counted.position - start > span_limit
                if tuple(path) == tags:
                    count += 1
                    at = Location(
                        file=name,
                        row=count,
                        line=element.sourceline,
                        element=f"{record_path}[{count}]",
                    )
                    # no value can be longer than the record's bytes (at most span + slack)
                    span = counted.position - start + counted.slack
                    # a digit run past the limit was read while this record was
                    near = counted.digit_run >= start - counted.slack
                    long = (
                        _long_value(element, limits.max_field_chars, digits)
                        if not over and (span > limits.max_field_chars or near)
                        else None
                    )
                    if over:
                        _drop(element)
                        yield read_error(
                            f"the record is longer than {limits.max_line_bytes:,} bytes (the "
                            f"line-length limit, {ENV_VARS['max_line_bytes']}); it is skipped",
                            at,
                            error_code=OVER_LIMIT,
                        )
                    elif long is not None:
                        _drop(element)
                        yield read_error(
                            f"a value is longer than {limits.max_field_chars:,} characters (the "
                            f"field-length limit, {ENV_VARS['max_field_chars']})"
                            if long[0] == "field"
                            else f"a value holds more than {limits.max_number_digits:,} digits "
                            f"in a row (the digits limit, {ENV_VARS['max_number_digits']})",
                            at.with_field(long[1]) if long[1] else at,
                            error_code=OVER_LIMIT,
                        )
                    else:
                        yield SourceRecord(_detach(element), at, counted.position - read)
                        read = counted.position
                else:
                    element.getparent().remove(element)
                over = False
            path.pop()
    except etree.XMLSyntaxError as exc:
        reason = _syntax_reason(exc)
        if "UTF-8" in reason or "encoding" in reason:
            encoding = options.get("encoding") or "UTF-8"
            message, code = f"the bytes are not {encoding}; reading stops here", "FI103"
        else:
            message, code = f"the XML is broken ({reason}); reading stops here", "FI104"
        yield read_error(
            message,
            Location(file=name, row=count + 1, line=exc.lineno or None),
            error_code=code,
        )


__all__ = ["expected_tags", "read_xml", "record_path_tags"]
