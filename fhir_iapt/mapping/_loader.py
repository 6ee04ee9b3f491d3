"""Load a mapping file: find it, check all of it, compile it, once.

``load_mapping("diabetes-csv")`` loads a bundled mapping; a path loads any file. The result is
cached per file and modification time. Every problem in the file is reported together, as one
:class:`~fhir_iapt.errors.MappingError` whose issues locate each problem by line and key, before
any record is read.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from lxml import etree

from fhir_iapt._data import mappings_dir
from fhir_iapt.errors import Location, MappingError
from fhir_iapt.mapping import _compile as compile_
from fhir_iapt.mapping._model import (
    INPUT_OPTIONS,
    InputSpec,
    JsonLayout,
    Mapping,
    ScreeningSpec,
    TargetName,
)
from fhir_iapt.mapping._yaml import Node, Problems, compose
from fhir_iapt.mapping.targets import MAP_TARGETS
from fhir_iapt.sources import FORMATS
from fhir_iapt.sources._xml import expected_tags, record_path_tags

FORMAT_VERSION = 1
_TOP_KEYS = (
    "format",
    "name",
    "target",
    "input",
    "source_system",
    "constants",
    "fields",
    "groups",
    "screenings",
)
_INPUT_KEYS = tuple(dict.fromkeys(k for keys in INPUT_OPTIONS.values() for k in keys))
_PREFIX = re.compile(r"[^\W\d][\w.-]*")
_MAX_SKIP_LINES = 1000


def bundled_mappings() -> list[str]:
    """The names of the mappings shipped with the package (``mappings/<name>.yaml``)."""
    return sorted(p.stem for p in mappings_dir().glob("*.yaml"))


def _resolve(name_or_path: str | os.PathLike[str]) -> Path:
    text = os.fspath(name_or_path)
    looks_like_path = (
        isinstance(name_or_path, os.PathLike)
        or text.endswith((".yaml", ".yml"))
        or os.sep in text
        or "/" in text
    )
    if looks_like_path:
        path = Path(text)
        if not path.is_file():
            raise MappingError(
                "the mapping file does not exist", location=Location(file=text), error_code="FI202"
            )
        return path.resolve()
    path = mappings_dir() / f"{text}.yaml"
    if not path.is_file():
        raise MappingError(
            f"there is no bundled mapping {text!r} (bundled: {', '.join(bundled_mappings())})",
            location=Location(file=text),
            error_code="FI202",
        )
    return path.resolve()


def load_mapping(name_or_path: str | os.PathLike[str]) -> Mapping[Any]:
    """Load, check and compile a mapping (a bundled name or a path); raises MappingError."""
    path = _resolve(name_or_path)
    return _load(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _load(path: Path, mtime_ns: int) -> Mapping[Any]:
    text = path.read_text(encoding="utf-8", errors="replace")
    problems = Problems(path.name)
    if not text.lstrip("\ufeff").startswith("#"):
        problems.add("a mapping opens with a comment header naming the source fields it reads", 1)
    root = compose(text, problems)
    top = root.items(_TOP_KEYS)
    target = MAP_TARGETS.get(top["target"].text()) if "target" in top else None
    needed: tuple[str, ...] = ("format", "target", "input")
    if target is None or target.read is None:  # a target read whole maps no fields
        needed += ("source_system", "fields")
    for key in needed:
        if key not in top:
            problems.add(f"the mapping needs {key}:", root.line, key)
    problems.raise_if_any()
    mapping = _build(path, top, problems)
    problems.raise_if_any()
    return mapping


def _single_byte(name: str) -> bool:
    """Every byte is one character and ASCII stays ASCII (cp1252, latin-1, ...): the CSV
    reader splits lines and counts quotes on bytes."""
    decoder = codecs.getincrementaldecoder(name)("surrogateescape")
    try:
        ascii_kept = bytes(range(128)).decode(name) == "".join(map(chr, range(128)))
        return ascii_kept and all(len(decoder.decode(bytes([b]))) == 1 for b in range(256))
    except (UnicodeDecodeError, ValueError):
        return False


def _encoding(node: Node, fmt: str) -> str | None:
    """``encoding:``: Python's name for it, or None after a located problem."""
    try:
        name = codecs.lookup(node.text()).name
    except LookupError:
        node.add("unknown encoding (expected a name such as utf-8, cp1252 or iso8859-15)")
        return None
    if fmt == "csv" and name not in ("utf-8", "utf-8-sig") and not _single_byte(name):
        node.add(
            "a CSV encoding is utf-8 or a single-byte one that keeps ASCII (cp1252, "
            "iso8859-1, iso8859-15...)"
        )
        return None
    if fmt == "xml":
        try:
            etree.fromstring(b"<x/>", etree.XMLParser(encoding=name))
        except (LookupError, etree.XMLSyntaxError):
            node.add("the XML parser does not know this encoding")
            return None
    return "utf-8" if name == "utf-8-sig" else name


def _namespaces(node: Node) -> dict[str, str]:
    """``namespaces:``: prefix -> namespace URI, each prefix a name (not ``xml...``)."""
    entries = node.items()
    if not entries:
        node.add("namespaces: maps at least one prefix to its namespace URI")
    out: dict[str, str] = {}
    for prefix, child in entries.items():
        if not _PREFIX.fullmatch(prefix) or prefix.lower().startswith("xml"):
            child.add("a namespace prefix is a name (letters, digits, _ - .), not xml...")
            continue
        out[prefix] = child.text()
    return out


def _input(node: Node, problems: Problems) -> InputSpec:
    entries = node.items(_INPUT_KEYS)
    if "format" not in entries:
        node.fail("input needs format: " + ", ".join(FORMATS))
    fmt = entries["format"].text()
    if fmt not in FORMATS:
        entries["format"].fail(
            f"unknown input format {fmt!r} (expected one of: {', '.join(FORMATS)})"
        )
    values: dict[str, Any] = {}
    for key, child in entries.items():
        if key not in INPUT_OPTIONS[fmt]:
            child.add(f"{key} does not apply to {fmt} input")
        elif key in ("delimiter", "quotechar"):
            value = child.value()
            if not isinstance(value, str) or len(value) != 1:
                child.add(f"{key} is one character")
            values[key] = value
        elif key == "layout":
            layout = child.text()
            if layout not in ("auto", "array", "ndjson"):
                child.add("layout is auto, array or ndjson")
            values[key] = cast(JsonLayout, layout)
        elif key == "encoding":
            encoding = _encoding(child, fmt)
            if encoding is not None:
                values[key] = encoding
        elif key == "skip_lines":
            count = child.value() if child.is_scalar() else None
            if count.__class__ is not int or not 0 <= count <= _MAX_SKIP_LINES:
                child.add(f"skip_lines is a whole number of lines from 0 to {_MAX_SKIP_LINES}")
            else:
                values[key] = count
        elif key == "namespaces":
            values[key] = MappingProxyType(_namespaces(child))
    if "record" in entries and fmt == "xml":
        record = entries["record"].text()
        try:
            expected_tags(record_path_tags(record), values.get("namespaces", {}))
        except ValueError as exc:
            entries["record"].add(str(exc))
        values["record"] = record
    if fmt == "xml" and "record" not in entries:
        node.add("xml input needs record: /Root/Record (the path of the record elements)")
    return InputSpec(format=fmt, **values)


def _key_line(node: Node, key: str) -> int:
    """The line of ``key`` in mapping ``node`` (the node's own line if it is not there)."""
    for key_node, _value in node.node.value:
        if getattr(key_node, "value", None) == key:
            return int(key_node.start_mark.line) + 1
    return node.line


def _build(path: Path, top: dict[str, Node], problems: Problems) -> Mapping[Any]:
    version = top["format"].value()
    if version != FORMAT_VERSION:
        top["format"].add(f"unknown mapping format version (this engine reads {FORMAT_VERSION})")
    target_name = top["target"].text()
    contract = MAP_TARGETS.get(target_name)
    if contract is None:
        top["target"].fail(
            f"unknown target {target_name!r} (expected one of: {', '.join(MAP_TARGETS)})"
        )
    declared = contract.fields
    spec = _input(top["input"], problems)
    fmt = spec.format
    if contract.input_formats and fmt not in contract.input_formats:
        top["input"].add(
            f"the {target_name} target reads {' or '.join(sorted(contract.input_formats))} input"
        )
    if contract.read is not None:
        for key in ("constants", "fields", "groups", "screenings"):
            if key in top:
                top[key].add(f"the {target_name} target is read whole: it takes no {key}:")
    problems.raise_if_any()
    source_system = top["source_system"].text() if "source_system" in top else ""
    if "source_system" in top and not source_system.startswith(("http://", "https://", "urn:")):
        top["source_system"].add("source_system is an identifier system URI (https://... or urn:)")
    name = top["name"].text() if "name" in top else path.stem
    ctx = compile_.Context(
        fmt=fmt, folder=path.parent, columns=[], namespaces=dict(spec.namespaces)
    )

    constants: dict[str, Any] = {}
    if "constants" in top:
        for key, child in top["constants"].items().items():
            if key not in declared.scalars:
                child.add(f"the target has no field {key!r}")
                continue
            constants[key] = compile_.check_constant(child)
    fields, named = (
        compile_.scalar_fields(top["fields"], ctx, declared.scalars, declared.required)
        if "fields" in top
        else ([], set())
    )
    mapped = named | set(constants)
    for field in fields:
        if field.display_to is not None and field.display_to in mapped:
            problems.add(
                f"{field.display_to!r} is filled from {field.target} (display_to / given_to) "
                "and is also mapped",
                _key_line(top["fields"], field.target),
                f"fields.{field.target}",
            )
    for required in sorted(declared.required - mapped):
        problems.add(
            f"the {target_name} target needs {required!r} (a field or a constant)",
            top["fields"].line,
            "fields",
        )
    groups = compile_.groups(top["groups"], ctx, declared.groups) if "groups" in top else []
    screenings: ScreeningSpec | None = None
    if "screenings" in top:
        if not declared.screenings:
            top["screenings"].add(f"the {target_name} target takes no screenings")
        else:
            screenings = compile_.compile_screenings(top["screenings"], ctx)
    if fmt == "csv":
        spec = replace(spec, required_columns=tuple(ctx.columns))
    return Mapping(
        name=name,
        path=path,
        target=cast(TargetName, target_name),
        input_format=fmt,
        input_options=MappingProxyType(spec.reader_options()),
        source_system=source_system,
        constants=MappingProxyType(constants),
        fields=tuple(fields),
        groups=tuple(groups),
        screenings=screenings,
        contract=contract,
        version=FORMAT_VERSION,
        input=spec,
    )


__all__ = ["FORMAT_VERSION", "bundled_mappings", "load_mapping"]
