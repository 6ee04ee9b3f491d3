"""FHIR XML <-> FHIR JSON for R4 resources, driven by the R4 StructureDefinitions.

Neither fhircraft's XML mixin (stdlib ElementTree, element order from model fields, no
``xmlAttr`` handling) nor fhir.resources (R4B only) gives a faithful R4 converter, so this module
walks the R4 base definitions (:mod:`fhir_iapt.fhir._r4defs`) instead. That gives, per the FHIR
XML rules (https://hl7.org/fhir/R4/xml.html):

- elements in definition order, repeating elements as repeated XML elements;
- primitive values in ``value`` attributes, with their ``id`` and extensions (JSON ``_name``)
  on the same XML element;
- ``Element.id`` and ``Extension.url`` as attributes, a resource's ``id`` as an element;
- ``Narrative.div`` as embedded XHTML; contained and Bundle resources nested in their element.

Parsing uses lxml with entity resolution, DTD loading and network access turned off.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from fhir_iapt.errors import EmitError, Issue, Location, ReadError
from fhir_iapt.fhir import _r4defs as defs

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_F = f"{{{FHIR_NS}}}"

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_blank_text=True,
)


# --------------------------------------------------------------------------- JSON -> XML


def _fail_emit(message: str, expression: str) -> EmitError:
    issue = Issue(diagnostics=message, code="structure", expression=expression, error_code="FI640")
    return EmitError(message, issues=[issue], error_code="FI640")


#: A character XML 1.0 cannot hold, not even as a character reference: the control characters
#: but tab, LF and CR, a lone surrogate (not Unicode text), U+FFFE and U+FFFF. FHIR JSON can
#: carry the control characters (the R4 string regex allows them), FHIR XML cannot.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: Any, expression: str) -> str:
    """A primitive's ``value`` attribute text; EmitError FI641 naming the element (never the
    value) when XML cannot hold it."""
    text = _format_primitive(value)
    if _NOT_XML.search(text):
        message = (
            "a string holds a character XML cannot carry (a control character, a lone "
            "surrogate, U+FFFE or U+FFFF)"
        )
        issue = Issue(
            diagnostics=message, code="invalid", expression=expression, error_code="FI641"
        )
        raise EmitError(message, issues=[issue], error_code="FI641")
    return text


def _format_primitive(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _write_resource(
    resource: dict[str, Any], parent: etree._Element | None, expr: str
) -> etree._Element:
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not defs.is_resource_type(rtype):
        raise _fail_emit("resourceType is missing or not an R4 resource type", expr)
    tag = _F + rtype
    if parent is None:
        nsmap: Any = {None: FHIR_NS}
        node = etree.Element(tag, nsmap=nsmap)
    else:
        node = etree.SubElement(parent, tag)
    _write_children(rtype, rtype, resource, node, expr or rtype, resource_root=True)
    return node


def _write_children(
    type_name: str,
    path: str,
    obj: dict[str, Any],
    node: etree._Element,
    expr: str,
    *,
    resource_root: bool = False,
) -> None:
    elements = defs.children_of(type_name, path)
    known: set[str] = {"resourceType"} if resource_root else set()
    for element in elements:
        keys = (
            [element.name + t[:1].upper() + t[1:] for t in element.types]
            if element.choice
            else [element.name]
        )
        for key in keys:
            if key not in obj and f"_{key}" not in obj:
                continue
            known.update((key, f"_{key}"))
            match = defs.match_key(elements, key)
            if match is None:  # pragma: no cover - keys come from the same elements
                continue
            _, type_code = match
            if element.xml_attr and not resource_root:
                if key in obj:
                    node.set(key, _xml_text(obj[key], f"{expr}.{key}"))
                continue
            _write_element(type_name, element, type_code, key, obj, node, f"{expr}.{key}")
    unknown = sorted(k for k in obj if k not in known)
    if unknown:
        raise _fail_emit(
            f"element {unknown[0]!r} is not defined in R4 {type_name}", f"{expr}.{unknown[0]}"
        )


def _write_element(
    type_name: str,
    element: defs.ElementDef,
    type_code: str,
    key: str,
    obj: dict[str, Any],
    node: etree._Element,
    expr: str,
) -> None:
    values = _as_list(obj[key]) if key in obj else []
    shadows = _as_list(obj.get(f"_{key}")) if f"_{key}" in obj else []
    count = max(len(values), len(shadows))
    for index in range(count):
        value = values[index] if index < len(values) else None
        shadow = shadows[index] if index < len(shadows) else None
        item_expr = f"{expr}[{index}]" if element.repeats else expr
        if type_code == "xhtml":
            _write_xhtml(node, key, value, item_expr)
        elif defs.is_primitive(type_code) or (not type_code and not isinstance(value, dict)):
            child = etree.SubElement(node, _F + key)
            if value is not None:
                child.set("value", _xml_text(value, item_expr))
            if isinstance(shadow, dict):
                _write_children("Element", "Element", shadow, child, f"{item_expr}._")
        elif type_code == "Resource":
            if not isinstance(value, dict):
                raise _fail_emit("a resource element must hold an object", item_expr)
            wrapper = etree.SubElement(node, _F + key)
            _write_resource(value, wrapper, item_expr)
        else:
            if not isinstance(value, dict):
                raise _fail_emit(f"{key} must be an object", item_expr)
            child = etree.SubElement(node, _F + key)
            sub_type, sub_path = defs.type_for_children(element, type_code)
            _write_children(sub_type or type_name, sub_path, value, child, item_expr)


def _write_xhtml(node: etree._Element, key: str, value: Any, expr: str) -> None:
    if not isinstance(value, str):
        raise _fail_emit("Narrative.div must be an XHTML string", expr)
    _xml_text(value, expr)
    try:
        div = etree.fromstring(value.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise _fail_emit("Narrative.div is not well-formed XHTML", expr) from exc
    if div.tag != f"{{{XHTML_NS}}}div":
        raise _fail_emit("Narrative.div must be an XHTML div element", expr)
    del key
    node.append(div)


def resource_to_xml(resource: dict[str, Any]) -> bytes:
    """Serialise an R4 resource (JSON dict) as FHIR XML (UTF-8, with an XML declaration).

    Raises :class:`EmitError` naming the element's FHIRPath when the resource has elements R4
    does not define (FI640) or a string XML 1.0 cannot hold (FI641: a control character, a
    lone surrogate, U+FFFE, U+FFFF); never lxml's ValueError.
    """
    root = _write_resource(resource, None, "")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


# --------------------------------------------------------------------------- XML -> JSON


def _fail_read(message: str, element: etree._Element, file: str | None) -> ReadError:
    line = element.sourceline
    location = Location(
        file=file,
        line=line if isinstance(line, int) else None,
        element=element.getroottree().getpath(element),
    )
    issue = Issue(diagnostics=message, code="structure", location=location, error_code="FI130")
    return ReadError(message, issues=[issue], location=location, error_code="FI130")


def _local(element: etree._Element, file: str | None) -> str:
    tag = element.tag
    if not isinstance(tag, str) or not tag.startswith(_F):
        raise _fail_read("element is not in the FHIR namespace", element, file)
    return tag[len(_F) :]


def _parse_primitive(text: str, type_code: str, element: etree._Element, file: str | None) -> Any:
    kind = defs.json_kind(type_code)
    try:
        if kind == "bool":
            if text not in ("true", "false"):
                raise ValueError(text)
            return text == "true"
        if kind == "int":
            return int(text)
        if kind == "decimal":
            if any(c in text for c in ".eE"):
                return float(text)
            return int(text)
    except ValueError as exc:
        raise _fail_read(f"value is not a valid {type_code}", element, file) from exc
    return text


def _read_resource(node: etree._Element, file: str | None) -> dict[str, Any]:
    rtype = _local(node, file)
    if not defs.is_resource_type(rtype):
        raise _fail_read("not an R4 resource type", node, file)
    out: dict[str, Any] = {"resourceType": rtype}
    _read_children(rtype, rtype, node, out, file, resource_root=True)
    return out


def _read_children(
    type_name: str,
    path: str,
    node: etree._Element,
    out: dict[str, Any],
    file: str | None,
    *,
    resource_root: bool = False,
) -> None:
    elements = defs.children_of(type_name, path)
    if not resource_root:
        for name, value in node.attrib.items():
            match = defs.match_key(elements, str(name))
            if match is None or not match[0].xml_attr:
                raise _fail_read(f"attribute {name!r} is not allowed here", node, file)
            out[str(name)] = str(value)
    for child in node:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions carry no data
        key = "div" if child.tag == f"{{{XHTML_NS}}}div" else _local(child, file)
        match = defs.match_key(elements, key)
        if (
            match is None
            or (match[0].xml_attr and not resource_root)
            or (key == "div") != (match[1] == "xhtml")
        ):
            raise _fail_read(f"element {key!r} is not defined in R4 {type_name}", child, file)
        element, type_code = match
        value, shadow = _read_element(type_name, element, type_code, child, file)
        if element.repeats:
            values = out.setdefault(key, [])
            shadows = out.setdefault(f"_{key}", [])
            values.append(value)
            shadows.append(shadow)
        else:
            if key in out or f"_{key}" in out:
                raise _fail_read(f"element {key!r} may appear only once", child, file)
            if value is not None:
                out[key] = value
            if shadow is not None:
                out[f"_{key}"] = shadow
    for key in [k for k in out if k.startswith("_")]:
        if isinstance(out[key], list):
            if all(item is None for item in out[key]):
                del out[key]
            elif key[1:] in out and all(item is None for item in out[key[1:]]):
                del out[key[1:]]
    for key in [k for k in out if not k.startswith("_") and isinstance(out[k], list)]:
        if not out[key]:
            del out[key]


def _read_element(
    type_name: str,
    element: defs.ElementDef,
    type_code: str,
    child: etree._Element,
    file: str | None,
) -> tuple[Any, Any]:
    if type_code == "xhtml":
        return etree.tostring(child, encoding="unicode", with_tail=False), None
    if type_code == "Resource":
        inner = [c for c in child if isinstance(c.tag, str)]
        if len(inner) != 1:
            raise _fail_read("a resource element must hold exactly one resource", child, file)
        return _read_resource(inner[0], file), None
    if defs.is_primitive(type_code):
        value_text = child.get("value")
        value = None if value_text is None else _parse_primitive(value_text, type_code, child, file)
        shadow: dict[str, Any] = {}
        for name in child.attrib:
            if name not in ("value", "id"):
                raise _fail_read(f"attribute {name!r} is not allowed here", child, file)
        if child.get("id") is not None:
            shadow["id"] = child.get("id")
        extensions = [c for c in child if isinstance(c.tag, str)]
        for ext in extensions:
            if _local(ext, file) != "extension":
                raise _fail_read("a primitive may only hold extensions", ext, file)
            item: dict[str, Any] = {}
            _read_children("Extension", "Extension", ext, item, file)
            shadow.setdefault("extension", []).append(item)
        if value is None and not shadow:
            raise _fail_read("a primitive element needs a value or an extension", child, file)
        return value, (shadow or None)
    obj: dict[str, Any] = {}
    sub_type, sub_path = defs.type_for_children(element, type_code)
    _read_children(sub_type or type_name, sub_path, child, obj, file)
    return obj, None


def xml_to_resource(data: bytes, *, file: str | None = None) -> dict[str, Any]:
    """Parse one FHIR XML resource (a Bundle nests its entries) into its R4 JSON form.

    Raises :class:`ReadError` (FI130) naming the XML element and line when the document is not
    well-formed or does not follow the R4 definitions.
    """
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        location = Location(file=file, line=exc.lineno)
        message = "not well-formed XML"
        issue = Issue(diagnostics=message, code="structure", location=location, error_code="FI130")
        raise ReadError(message, issues=[issue], location=location, error_code="FI130") from exc
    return _read_resource(root, file)


__all__ = ["FHIR_NS", "resource_to_xml", "xml_to_resource"]
