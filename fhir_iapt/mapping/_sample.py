"""Read a sample export for ``fhir-iapt mapping init``: its layout, its fields and their values.

The layout is sniffed from the bytes (CSV: encoding, delimiter, preamble lines; JSON: array or
NDJSON; XML: the record element and the namespaces), then the records are read by the same
readers a conversion uses (:func:`fhir_iapt.sources.read_records`), so the fields the proposal
sees are the ones the mapping will: a CSV header as the reader strips it, an XML record with its
ancestors' attributes, JSON keys as dotted paths. Values stay in memory for sniffing (date
formats, units, terms); nothing here writes or prints one.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from fhir_iapt.errors import Location, ReadError
from fhir_iapt.sources import SourceRecord, read_records, sniff_format

#: The most records of a sample read (enough to see every layout and value shape).
MAX_RECORDS = 5000
#: The bytes read to sniff a CSV's encoding and layout, or an XML's structure.
_HEAD = 1 << 20
_XML_ELEMENTS = 50_000
_DELIMITERS = (",", ";", "\t", "|")
_LINE_END = re.compile(r"\r\n|\r|\n")
_JSON_KEY = re.compile(r"[^.\s][^.]*")
_PREFIX = re.compile(r"[A-Za-z_][\w.-]*")


@dataclass
class Column:
    """One source field: its path as a mapping writes it and the values the sample has."""

    path: str
    #: the names it is matched on, outermost first (``patient``, ``nhsNumber``)
    parts: tuple[str, ...]
    #: the non-blank values, one per record (or item) that has one: never written out
    values: list[Any] = field(default_factory=list)
    #: XML: an attribute of an ancestor of the record (an absolute path)
    absolute: bool = False

    @property
    def label(self) -> str:
        return " ".join(self.parts)


@dataclass
class Repeat:
    """A repeating part of a record: a JSON array of objects or a repeated XML element."""

    path: str
    parts: tuple[str, ...]
    columns: list[Column] = field(default_factory=list)
    #: records with at least one item
    records: int = 0
    items: int = 0


@dataclass
class Guess:
    """An ``input:`` option sniffed from the bytes, and why."""

    key: str
    value: Any
    why: str


@dataclass
class Sample:
    """What a sample export holds, as the proposal needs it."""

    file: str
    format: str
    why_format: str
    options: list[Guess]
    columns: list[Column]
    repeats: list[Repeat]
    records: int
    #: rows or records the reader could not read (each a located ReadError, no values)
    unreadable: list[ReadError]
    #: names that cannot be written as a source path, with why
    skipped: list[tuple[str, str]]
    #: every record's flattened values (path -> value), for whole-record checks
    rows: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    #: what was found about the input that needs no option (the default encoding, layout)
    notes: list[str] = field(default_factory=list)

    def reader_options(self) -> dict[str, Any]:
        return {guess.key: guess.value for guess in self.options}


def _fail(message: str, file: str, code: str) -> ReadError:
    return ReadError(message, location=Location(file=file), error_code=code)


def read_sample(path: Path, fmt: str | None = None) -> Sample:
    """Sniff and read the sample at ``path`` (``fmt`` forces csv / json / xml); raises
    :class:`~fhir_iapt.errors.ReadError` when nothing can be read from it."""
    name = path.name
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEAD)
    except OSError:
        raise _fail("the sample cannot be opened", name, "FI100") from None
    why = "as --format says"
    if fmt is None:
        found = sniff_format(head)
        if found is None:
            if head.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise _fail(
                    "the sample is UTF-16: save it as UTF-8 (or a Windows code page) first",
                    name,
                    "FI103",
                )
            raise _fail("the sample is empty, or not text a reader knows", name, "FI102")
        fmt = found
        why = {
            "csv": "the file starts with text, not < or [ or {",
            "json": "the file starts with [ or {",
            "xml": "the file starts with <",
        }[found]
    if fmt == "csv":
        sample = _csv_sample(path, head, why)
    elif fmt == "json":
        sample = _json_sample(path, head, why)
    elif fmt == "xml":
        sample = _xml_sample(path, why)
    else:
        raise _fail(f"a sample is csv, json or xml, not {fmt}", name, "FI100")
    if not sample.records and sample.unreadable:
        raise sample.unreadable[0]  # nothing could be read: why the first record could not
    if not sample.columns and not sample.repeats:
        raise _fail("the sample has no record to read fields from", name, "FI102")
    return sample


def _records(path: Path, fmt: Any, options: dict[str, Any]) -> Iterator[SourceRecord | ReadError]:
    with path.open("rb") as fh:
        for count, item in enumerate(read_records(fh, name=path.name, fmt=fmt, options=options)):
            if count >= MAX_RECORDS:
                return
            yield item


# --- CSV -------------------------------------------------------------------------------------


def _decode(head: bytes, whole: bool) -> tuple[str, Guess | None, str]:
    """The head as text, the ``encoding:`` option it needs (None: the default UTF-8) and why."""
    if head.startswith(b"\xef\xbb\xbf"):
        text = codecs.getincrementaldecoder("utf-8")("replace").decode(head[3:], final=whole)
        return text, None, "UTF-8 (it starts with a UTF-8 byte-order mark)"
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
    except UnicodeDecodeError:
        pass
    else:
        if text.isascii():
            return text, None, "every byte is ASCII: UTF-8, the default, reads it"
        return text, None, "the bytes are UTF-8, the default"
    for encoding, what in (("cp1252", "Windows-1252"), ("iso8859-15", "ISO 8859-15")):
        try:
            text = head.decode(encoding)
        except UnicodeDecodeError:
            continue
        why = f"the bytes are not UTF-8, and {what} reads every one: check the accented letters"
        return text, Guess("encoding", encoding, why), why
    text = head.decode("iso8859-1")
    why = "the bytes are neither UTF-8 nor Windows-1252; Latin-1 reads them: check the accents"
    return text, Guess("encoding", "iso8859-1", why), why


def _cells(line: str, delimiter: str) -> int:
    if not line.strip():
        return 0
    try:
        return len(next(csv.reader([line], delimiter=delimiter), []))
    except csv.Error:
        return 0


def _layout(lines: list[str]) -> tuple[str, int, int]:
    """(delimiter, lines before the header, cells per row): the delimiter that splits the most
    lines into the same number (above one) of cells; the header is the first such line."""
    best: tuple[int, str, int] | None = None
    for delimiter in _DELIMITERS:
        counts = [_cells(line, delimiter) for line in lines]
        common = Counter(c for c in counts if c > 1).most_common(1)
        if not common:
            continue
        width, seen = common[0]
        if best is None or seen > best[0]:
            best = (seen, delimiter, width)
    if best is None:
        return ",", 0, 1
    _seen, delimiter, width = best
    counts = [_cells(line, delimiter) for line in lines]
    header = next(i for i, count in enumerate(counts) if count == width)
    return delimiter, header, width


def _csv_sample(path: Path, head: bytes, why_format: str) -> Sample:
    whole = len(head) < _HEAD
    text, encoding, why_encoding = _decode(head, whole)
    lines = _LINE_END.split(text)
    if not whole:
        lines = lines[:-1]  # the last line may be cut short
    lines = lines[:200]
    delimiter, skip, width = _layout(lines)
    options: list[Guess] = []
    shown = {"\t": "a tab", " ": "a space"}.get(delimiter, f"'{delimiter}'")
    if delimiter != ",":
        options.append(
            Guess("delimiter", delimiter, f"the rows split into {width} cells at {shown}")
        )
    if encoding is not None:
        options.append(encoding)
    if skip:
        options.append(
            Guess(
                "skip_lines",
                skip,
                f"{skip} {'line' if skip == 1 else 'lines'} before the header row do not split "
                f"into {width} cells",
            )
        )
    reader = {"delimiter": delimiter, "skip_lines": skip}
    if encoding is not None:
        reader["encoding"] = encoding.value
    header = _header(lines[skip] if skip < len(lines) else "", delimiter)
    sample = Sample(
        file=path.name,
        format="csv",
        why_format=why_format,
        options=options,
        columns=[],
        repeats=[],
        records=0,
        unreadable=[],
        skipped=[],
    )
    if encoding is None:
        sample.notes.append(why_encoding)
    rows: list[dict[str, Any]] = []
    for item in _records(path, "csv", reader):
        if isinstance(item, ReadError):
            sample.unreadable.append(item)
            continue
        rows.append(item.data)
        header = header or list(item.data)
    sample.truncated = len(rows) + len(sample.unreadable) >= MAX_RECORDS
    seen: Counter[str] = Counter(header)
    for name in dict.fromkeys(header):
        if not name:
            sample.skipped.append(("(a blank column name)", "a column needs a name to be read"))
            continue
        if seen[name] > 1:
            sample.skipped.append((name, "the header repeats it: the columns cannot be told apart"))
            continue
        if not name.isprintable():
            sample.skipped.append(("(a column name with a line break)", "it cannot be named"))
            continue
        values = [row[name].strip() for row in rows if row.get(name, "").strip()]
        sample.columns.append(Column(name, (name,), values))
    sample.rows = [{k: v.strip() for k, v in row.items() if v.strip()} for row in rows]
    sample.records = len(rows)
    return sample


def _header(line: str, delimiter: str) -> list[str]:
    try:
        return [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter), [])]
    except csv.Error:
        return []


# --- JSON ------------------------------------------------------------------------------------


class _Flat:
    """Columns and repeats collected over records, in the order first seen."""

    def __init__(self) -> None:
        self.columns: dict[str, Column] = {}
        self.repeats: dict[str, Repeat] = {}
        self.skipped: dict[str, str] = {}

    def column(self, columns: dict[str, Column], path: str, parts: tuple[str, ...]) -> Column:
        found = columns.get(path)
        if found is None:
            found = columns[path] = Column(path, parts)
        return found


def _blank(value: Any) -> bool:
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def _walk_json(
    value: Any,
    parts: tuple[str, ...],
    flat: _Flat,
    columns: dict[str, Column],
    row: dict[str, Any],
    *,
    in_item: bool,
) -> None:
    path = ".".join(parts)
    if isinstance(value, dict):
        for key, child in value.items():
            if not isinstance(key, str) or not _JSON_KEY.fullmatch(key) or key.isdigit():
                shown = key if isinstance(key, str) and key.isprintable() else "(a key)"
                flat.skipped.setdefault(
                    ".".join((*parts, shown)),
                    "a dotted path cannot name a key with a dot in it, or a number",
                )
                continue
            _walk_json(child, (*parts, key), flat, columns, row, in_item=in_item)
        return
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        if in_item:
            flat.skipped.setdefault(path, "an array inside an array item is not mapped")
            return
        repeat = flat.repeats.get(path)
        if repeat is None:
            repeat = flat.repeats[path] = Repeat(path, parts)
        repeat.records += 1
        items: dict[str, Column] = {c.path: c for c in repeat.columns}
        kept: list[dict[str, Any]] = []
        for item in value:
            if not isinstance(item, dict):
                continue
            repeat.items += 1
            item_row: dict[str, Any] = {}
            _walk_json(item, (), flat, items, item_row, in_item=True)
            kept.append(item_row)
        repeat.columns = list(items.values())
        row[path] = kept
        return
    column = flat.column(columns, path, parts)
    if not _blank(value):
        column.values.append(value)
        row[path] = value


def _json_sample(path: Path, head: bytes, why_format: str) -> Sample:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    array = text.startswith(b"[")
    why_layout = (
        "a JSON array of objects" if array else "NDJSON (one object a line)"
    ) + "; layout auto (the default) reads either"
    sample = Sample(
        file=path.name,
        format="json",
        why_format=why_format,
        options=[],
        columns=[],
        repeats=[],
        records=0,
        unreadable=[],
        skipped=[],
    )
    sample.notes.append(why_layout)
    flat = _Flat()
    for item in _records(path, "json", {"layout": "auto"}):
        if isinstance(item, ReadError):
            sample.unreadable.append(item)
            continue
        sample.records += 1
        row: dict[str, Any] = {}
        _walk_json(item.data, (), flat, flat.columns, row, in_item=False)
        sample.rows.append(row)
    sample.truncated = sample.records + len(sample.unreadable) >= MAX_RECORDS
    paths = set(flat.columns) | set(flat.repeats)
    sample.columns = [
        c
        for c in flat.columns.values()
        if c.values or not any(p.startswith(c.path + ".") for p in paths)
    ]  # a key that is null where other records hold an object is that object, not a field
    sample.repeats = list(flat.repeats.values())
    sample.skipped = list(flat.skipped.items())
    return sample


# --- XML -------------------------------------------------------------------------------------


@dataclass
class _Shape:
    """What the start of an XML document looks like: per element path (full tags from the
    root), how often it occurs, the most siblings of that tag under one parent, and whether
    it carries attributes or text."""

    count: Counter[tuple[str, ...]] = field(default_factory=Counter)
    siblings: Counter[tuple[str, ...]] = field(default_factory=Counter)
    filled: set[tuple[str, ...]] = field(default_factory=set)
    prefixes: dict[str, str] = field(default_factory=dict)
    root: tuple[str, ...] = ()


def _split(tag: str) -> tuple[str, str]:
    """``{uri}local`` -> (uri, local); a tag in no namespace has uri ""."""
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return "", tag


def _shape(path: Path) -> _Shape:
    with path.open("rb") as stream:
        return _shape_of(stream, path.name)


def _shape_of(stream: Any, name: str) -> _Shape:
    shape = _Shape()
    stack: list[tuple[tuple[str, ...], Counter[str]]] = []
    events = etree.iterparse(
        stream,
        events=("start", "end", "start-ns"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    seen = 0
    try:
        for event, item in events:
            if event == "start-ns":
                prefix, uri = item
                if prefix and uri not in shape.prefixes:
                    shape.prefixes[uri] = prefix
                continue
            element = item
            if event == "start":
                if not stack:
                    docinfo = element.getroottree().docinfo
                    if docinfo.doctype or docinfo.internalDTD is not None:
                        raise _fail(
                            "the sample has a DOCTYPE; DTDs and entities are not accepted",
                            name,
                            "FI104",
                        )
                tags = (*stack[-1][0], element.tag) if stack else (element.tag,)
                if stack:
                    stack[-1][1][element.tag] += 1
                stack.append((tags, Counter()))
                shape.count[tags] += 1
                if element.attrib:
                    shape.filled.add(tags)
                seen += 1
                if seen >= _XML_ELEMENTS:
                    break
                continue
            tags, children = stack.pop()
            if (element.text or "").strip() and not len(element):
                shape.filled.add(tags)
            for tag, number in children.items():
                key = (*tags, tag)
                shape.siblings[key] = max(shape.siblings[key], number)
            if len(stack) > 1:
                element.clear()
    except etree.XMLSyntaxError:
        if seen < 2:
            raise _fail("the sample is not well-formed XML", name, "FI104") from None
    if not shape.count:
        raise _fail("the sample has no XML element", name, "FI104")
    shape.root = next(iter(shape.count))
    return shape


def _record_path(shape: _Shape, name: str) -> tuple[tuple[str, ...], str]:
    """The record elements' path (full tags) and why: the first element, going down from the
    root, that repeats under one parent; a lone element holding no values of its own (a
    wrapper such as <Attendances>) is gone through."""
    current = shape.root
    while True:
        children = [p for p in shape.count if len(p) == len(current) + 1 and p[:-1] == current]
        if not children:
            break
        repeated = [p for p in children if shape.siblings[p] >= 2]
        if repeated:
            chosen = max(repeated, key=lambda p: shape.count[p])
            return chosen, f"<{_split(chosen[-1])[1]}> repeats under its parent"
        biggest = max(children, key=lambda p: sum(1 for q in shape.count if q[: len(p)] == p))
        if len(children) == 1 and biggest not in shape.filled:
            current = biggest  # a wrapper
            continue
        return biggest, f"the sample has one <{_split(biggest[-1])[1]}> (one record)"
    raise _fail("the XML has no element under its root to read as a record", name, "FI104")


def _prefix_map(shape: _Shape) -> dict[str, str]:
    """namespace URI -> the prefix the mapping uses: the document's own, else the first letter
    of the root's name for the root's namespace, else ns, ns2 ..."""
    uris = list(dict.fromkeys(uri for tags in shape.count for uri, _ in map(_split, tags) if uri))
    out: dict[str, str] = {}
    used: set[str] = set()
    root_local = _split(shape.root[0])[1]
    for uri in uris:
        candidates = [shape.prefixes.get(uri, "")]
        if uri == _split(shape.root[0])[0]:
            candidates.append(root_local[:1].lower())
        candidates += ["ns", *(f"ns{n}" for n in range(2, 100))]
        prefix = next(
            c
            for c in candidates
            if c and _PREFIX.fullmatch(c) and not c.lower().startswith("xml") and c not in used
        )
        used.add(prefix)
        out[uri] = prefix
    return out


def _qname(tag: str, prefixes: dict[str, str]) -> str:
    uri, local = _split(tag)
    return f"{prefixes[uri]}:{local}" if uri else local


def _xml_sample(path: Path, why_format: str) -> Sample:
    shape = _shape(path)
    tags, why_record = _record_path(shape, path.name)
    prefixes = _prefix_map(shape)
    record = "/" + "/".join(_qname(tag, prefixes) for tag in tags)
    options = [Guess("record", record, why_record)]
    reader: dict[str, Any] = {"record": record}
    if prefixes:
        namespaces = {prefix: uri for uri, prefix in prefixes.items()}
        options.append(
            Guess(
                "namespaces",
                namespaces,
                "the elements are in "
                + ("a namespace" if len(prefixes) == 1 else f"{len(prefixes)} namespaces")
                + " (the root's xmlns); every path names them by these prefixes",
            )
        )
        reader["namespaces"] = namespaces
    sample = Sample(
        file=path.name,
        format="xml",
        why_format=why_format,
        options=options,
        columns=[],
        repeats=[],
        records=0,
        unreadable=[],
        skipped=[],
    )
    elements: list[Any] = []
    for item in _records(path, "xml", reader):
        if isinstance(item, ReadError):
            sample.unreadable.append(item)
            continue
        elements.append(item.data)
    sample.records = len(elements)
    sample.truncated = sample.records + len(sample.unreadable) >= MAX_RECORDS
    repeated: set[tuple[str, ...]] = set()
    for element in elements:
        _find_repeats(element, (), repeated)
    flat = _Flat()
    for element in elements:
        row: dict[str, Any] = {}
        _ancestors(element, prefixes, flat, row)
        _walk_xml(element, (), (), (), _Walk(prefixes, repeated, flat, flat.columns, row))
        for each in flat.repeats:
            if row.get(each):
                flat.repeats[each].records += 1
        sample.rows.append(row)
    sample.columns = list(flat.columns.values())
    sample.repeats = list(flat.repeats.values())
    sample.skipped = list(flat.skipped.items())
    return sample


def _find_repeats(element: Any, full: tuple[str, ...], out: set[tuple[str, ...]]) -> None:
    """Add to ``out`` the full-tag paths (under the record) of elements that repeat under one
    parent in ``element``; nothing under a repeated element is looked at."""
    counts = Counter(child.tag for child in element if isinstance(child.tag, str))
    for child in element:
        if not isinstance(child.tag, str):
            continue
        key = (*full, child.tag)
        if counts[child.tag] > 1:
            out.add(key)
        elif key not in out:
            _find_repeats(child, key, out)


def _ancestors(element: Any, prefixes: dict[str, str], flat: _Flat, row: dict[str, Any]) -> None:
    chain = list(element.iterancestors())
    chain.reverse()
    steps: list[str] = []
    names: list[str] = []
    for ancestor in chain:
        steps.append(_qname(ancestor.tag, prefixes))
        names.append(_split(ancestor.tag)[1])
        for attribute, value in ancestor.attrib.items():
            column_path = "/" + "/".join(steps) + f"/@{_qname(attribute, prefixes)}"
            column = flat.column(flat.columns, column_path, (*names, _split(attribute)[1]))
            column.absolute = True
            if value.strip():
                column.values.append(value.strip())
                row[column_path] = value.strip()


@dataclass
class _Walk:
    """One XML record being flattened: the prefixes, the repeated paths and where to put what
    is found (the record's columns, or a repeated element's item columns)."""

    prefixes: dict[str, str]
    repeated: set[tuple[str, ...]]
    flat: _Flat
    columns: dict[str, Column]
    row: dict[str, Any]
    in_item: bool = False


def _walk_xml(
    element: Any, steps: tuple[str, ...], full: tuple[str, ...], names: tuple[str, ...], w: _Walk
) -> None:
    """Columns for ``element`` (at ``steps`` under the record, written with prefixes; ``full``
    the same with full tags; ``names`` the local names): its attributes, its text when it has
    no child elements, then its children (a repeated one becomes a :class:`Repeat`)."""
    at = "/".join(steps)
    for attribute, value in element.attrib.items():
        column_path = (
            f"{at}/@{_qname(attribute, w.prefixes)}" if at else f"@{_qname(attribute, w.prefixes)}"
        )
        column = w.flat.column(w.columns, column_path, (*names, _split(attribute)[1]))
        if value.strip():
            column.values.append(value.strip())
            w.row[column_path] = value.strip()
    children = [child for child in element if isinstance(child.tag, str)]
    text = (element.text or "").strip()
    if not children and (text or not element.attrib):
        column_path = at or "."
        column = w.flat.column(w.columns, column_path, names or ("text",))
        if text:
            column.values.append(text)
            w.row[column_path] = text
    counts = Counter(child.tag for child in children)
    for child in children:
        step = _qname(child.tag, w.prefixes)
        local = _split(child.tag)[1]
        key, key_full = (*steps, step), (*full, child.tag)
        if w.in_item and counts[child.tag] > 1:
            w.flat.skipped.setdefault(
                "/".join(key), "an element repeated inside a repeated element is not mapped"
            )
            continue
        if not w.in_item and key_full in w.repeated:
            each = "/".join(key)
            repeat = w.flat.repeats.get(each)
            if repeat is None:
                repeat = w.flat.repeats[each] = Repeat(each, (*names, local))
            repeat.items += 1
            items = {c.path: c for c in repeat.columns}
            item_row: dict[str, Any] = {}
            inner = _Walk(w.prefixes, w.repeated, w.flat, items, item_row, in_item=True)
            _walk_xml(child, (), (), (), inner)
            repeat.columns = list(items.values())
            w.row.setdefault(each, []).append(item_row)
            continue
        _walk_xml(child, key, key_full, (*names, local), w)


__all__ = ["MAX_RECORDS", "Column", "Guess", "Repeat", "Sample", "read_sample"]
