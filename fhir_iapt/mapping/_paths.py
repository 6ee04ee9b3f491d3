"""Source paths: compiled once per mapping, evaluated per record.

A path is a CSV column name, an XPath 1.0 expression (XML, relative to the record or item
element) or a dotted JSON path (``patient.name.given``; a number indexes an array). Compiling
returns a :class:`SourcePath` whose ``get`` is fast (no parsing per record) and whose ``line``
finds the exact source line of a value, used only when a problem is reported.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lxml import etree

from fhir_iapt.mapping._types import Invalid, json_kind


@dataclass(frozen=True, slots=True)
class SourcePath:
    """``get(data)`` -> a raw value or None (absent); ``items(data)`` -> a list (for ``each``)."""

    text: str
    get: Callable[[Any], Any]
    items: Callable[[Any], list[Any]]
    line: Callable[[Any], int | None]


def _no_line(_data: Any) -> int | None:
    return None


def _csv(text: str, *, optional_column: bool = False) -> SourcePath:
    getter: Callable[[Any], Any] = (
        operator.methodcaller("get", text) if optional_column else operator.itemgetter(text)
    )

    def items(row: Any) -> list[Any]:
        raise Invalid("a CSV row has no repeating items", "structure")

    return SourcePath(text, getter, items, _no_line)


def _json_keys(text: str) -> tuple[str | int, ...]:
    parts = text.split(".")
    if not all(parts):
        raise ValueError("a JSON path is keys joined by dots, like patient.name.family")
    return tuple(int(p) if p.isdigit() else p for p in parts)


def _json(text: str) -> SourcePath:
    keys = _json_keys(text)

    def get(data: Any) -> Any:
        current = data
        for depth, key in enumerate(keys):
            if current is None:
                return None
            if key.__class__ is str:
                if current.__class__ is not dict:
                    where = ".".join(map(str, keys[:depth])) or "the record"
                    raise Invalid(
                        f"expected an object at {where}, got a JSON {json_kind(current)}",
                        "structure",
                    )
                current = current.get(key)
            else:
                if current.__class__ is not list:
                    where = ".".join(map(str, keys[:depth])) or "the record"
                    raise Invalid(
                        f"expected an array at {where}, got a JSON {json_kind(current)}",
                        "structure",
                    )
                index = int(key)
                current = current[index] if index < len(current) else None
        return current

    def items(data: Any) -> list[Any]:
        value = get(data)
        if value is None:
            return []
        if value.__class__ is not list:
            raise Invalid(f"expected an array, got a JSON {json_kind(value)}", "structure")
        return list(value)

    return SourcePath(text, get, items, _no_line)


def _xml_text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if etree.iselement(value):
        return "".join(str(t) for t in value.itertext())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return None


def _xml(text: str, namespaces: Mapping[str, str] | None = None) -> SourcePath:
    ns = dict(namespaces) if namespaces else None
    fast = etree.XPath(text, namespaces=ns, smart_strings=False)
    located = etree.XPath(text, namespaces=ns)
    try:  # what only evaluating finds (an undeclared prefix, a variable): found at load
        fast(etree.Element("record"))
    except etree.XPathEvalError as exc:
        reason = str(exc)
        if "prefix" in reason.lower():
            raise ValueError(
                "the XPath uses a namespace prefix that input: namespaces: does not declare"
            ) from None
        raise ValueError(f"the XPath cannot be evaluated: {reason}") from None

    def get(element: Any) -> Any:
        result = fast(element)
        if result.__class__ is not list:
            return _xml_text(result)
        if not result:
            return None
        if len(result) > 1:
            raise Invalid(f"matches {len(result)} nodes; expected one", "structure")
        return _xml_text(result[0])

    def items(element: Any) -> list[Any]:
        result = fast(element)
        if result.__class__ is not list or not all(etree.iselement(r) for r in result):
            raise Invalid("must select elements", "structure")
        return list(result)

    def line(element: Any) -> int | None:
        try:
            result = located(element)
        except etree.XPathError:
            return None
        if isinstance(result, list) and result:
            first: Any = result[0]
            if etree.iselement(first):
                found: Any = first.sourceline
                return int(found) if found else None
            getparent = getattr(first, "getparent", None)
            parent = getparent() if getparent is not None else None
            if parent is not None and parent.sourceline:
                return int(parent.sourceline)
        return int(element.sourceline) if element.sourceline else None

    return SourcePath(text, get, items, line)


def compile_path(
    fmt: str,
    text: str,
    *,
    optional_column: bool = False,
    namespaces: Mapping[str, str] | None = None,
) -> SourcePath:
    """Compile ``text`` for input format ``fmt``; raises ValueError (or XPathSyntaxError).
    ``optional_column`` (CSV): a row from a header without the column reads it as absent.
    ``namespaces`` (XML): prefix -> namespace URI, for prefixed names in the XPath."""
    if fmt == "csv":
        return _csv(text, optional_column=optional_column)
    if fmt == "json":
        return _json(text)
    if fmt == "xml":
        try:
            return _xml(text, namespaces)
        except etree.XPathSyntaxError as exc:
            raise ValueError(f"the XPath does not compile: {exc}") from None
    raise ValueError(f"unknown input format {fmt!r}")


def with_default(path: SourcePath, default: Any) -> SourcePath:
    """``path`` whose ``get`` gives ``default`` where the source value is blank (absent, empty
    or only spaces, an empty JSON array): the field's converter then reads the default."""
    get = path.get

    def get_or_default(data: Any) -> Any:
        value = get(data)
        if (
            value is None
            or (value.__class__ is str and not value.strip())
            or (value.__class__ is list and not value)
        ):
            return default
        return value

    return replace(path, get=get_or_default)


__all__ = ["SourcePath", "compile_path", "with_default"]
