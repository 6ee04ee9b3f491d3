"""Validate FHIR R4 resources against the R4 base definitions and the shipped profiles.

The validator walks each resource's JSON along a compiled plan; nothing is generated at start:

* the R4 base: ``profiles/plan/r4-plan.json`` (:mod:`fhir_iapt.fhir._plan`, compiled once from
  the R4 4.0.1 snapshots): every element's cardinality, types, primitive regex, required
  binding, reference target types and invariants. The walk reports unknown elements, a wrong
  JSON type (an object where a string goes, a list where one value goes), ``null``, empty
  strings, empty arrays and empty objects (ele-1), primitive formats (a dateTime with a time
  but no timezone, an id breaking the id pattern, a calendar-invalid date), missing required
  elements, codes outside a required binding that ``profiles/`` can expand, references to a
  resource type the element does not allow, ``#`` references without the contained resource
  (ref-1), extensions with both or neither of value and extension (ext-1), and every other R4
  invariant of severity error on the types met, evaluated with fhirpathpy (``qty-3``,
  ``per-1``, ``obs-6``, ``ppc-1``, ``bdl-3``...);
* the profiles: each applicable profile's differential, and its base profiles', compiled to
  rules (:mod:`fhir_iapt.fhir._rules`): cardinality, choice types, fixed and pattern values,
  reference targets, required bindings and invariants, slices by extension url or by
  discriminator value; an extension whose url names a shipped extension definition is held to
  it;
* :mod:`fhir_iapt.fhir._checks`: QuestionnaireResponse answers against the shipped
  Questionnaire, a MeasureReport's groups and populations against the shipped Measure, and
  references inside a Bundle (every ``urn:uuid`` resolves, no fullUrl twice).

Which profiles apply to a resource: the R4 base, every profile in ``meta.profile`` that
``profiles/`` has (an unknown one is a warning, FI405), and, for a type with exactly one project
profile (ServiceRequest, QuestionnaireResponse), that profile. Observation has two (scores and
episode outcomes), so an Observation is held to a project profile only when it claims it.

Issues carry the FHIRPath of the element (``Bundle.entry[2].resource.status``; a repeating
element always with its index) and never the value found there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any, cast

from fhir_iapt.errors import Issue, Location
from fhir_iapt.fhir import _checks
from fhir_iapt.fhir import _r4defs as defs
from fhir_iapt.fhir._plan import r4_plan
from fhir_iapt.fhir._rules import (
    UNSET,
    ProfileRules,
    Rule,
    Step,
    compile_profile,
    matches_pattern,
    same_value,
)
from fhir_iapt.fhir.profiles import ProfileSet, default_profiles

STRUCTURE = "FI401"
BAD_CODE = "FI402"
UNRESOLVED = "FI404"
UNKNOWN_PROFILE = "FI405"
INVARIANT = "FI406"
NOT_A_RESOURCE = "FI407"
WRONG_TARGET = "FI409"
R4_BASE = "http://hl7.org/fhir/StructureDefinition/"

_INT32 = (-(2**31), 2**31 - 1)
_CALENDAR_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_REF_TYPE_RE = re.compile(
    r"^(?:.*/)?([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)
_CODED = ("code", "Coding", "CodeableConcept")

#: (type name, parent path) -> JSON key -> (element, type code)
_Index = dict[str, tuple[defs.ElementDef, str]]


@cache
def _index(type_name: str, path: str) -> tuple[_Index, tuple[defs.ElementDef, ...]]:
    elements = defs.children_of(type_name, path)
    out: _Index = {}
    for element in elements:
        if element.choice:
            for code in element.types:
                out[element.name + code[:1].upper() + code[1:]] = (element, code)
        else:
            out[element.name] = (element, element.types[0] if element.types else "")
    return out, elements


@cache
def _element_info(
    type_name: str, path: str
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(invariant keys, reference target types, R4 core profiles)`` of one plan element."""
    for raw in r4_plan()["types"][type_name]["elements"]:
        if raw["p"] == path:
            return tuple(raw.get("c", ())), tuple(raw.get("tp", ())), tuple(raw.get("pr", ()))
    return (), (), ()


#: ``\s`` / ``\S`` as FHIR's regexes mean them (XML Schema: whitespace is space, tab, LF and CR
#: only), inside a character class and outside one. Python's Unicode ``\s`` also takes
#: U+00A0, U+0085, U+2028, U+2029, U+3000…, so a name holding a no-break space failed the R4
#: ``string`` regex ``[ \r\n\t\S]+``.
_XSD_CLASS = {"s": "\\t\\n\\r\\x20", "S": "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x21-\\U0010ffff"}
_XSD_ALONE = {"s": "[\\t\\n\\r\\x20]", "S": "[^\\t\\n\\r\\x20]"}


def _xsd_pattern(pattern: str) -> str:
    """A FHIR (XML Schema style) regex in Python syntax, its whitespace escapes made explicit."""
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            table = _XSD_CLASS if in_class else _XSD_ALONE
            out.append(table.get(escaped, pattern[index : index + 2]))
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


@cache
def _regex(type_code: str) -> re.Pattern[str] | None:
    pattern = r4_plan()["regex"].get(type_code)
    return re.compile(_xsd_pattern(pattern)) if pattern else None


def _has_value(inputs: list[Any]) -> bool:
    return len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)


def _no_trace(label: str, value: Any) -> None:
    del label, value


class _Invariants:
    """FHIRPath invariants, compiled once per expression (fhirpathpy, R4 model)."""

    def __init__(self) -> None:
        import fhirpathpy
        from fhirpathpy.engine.nodes import ResourceNode
        from fhirpathpy.models import models

        self._fhirpath = fhirpathpy
        self._node: Callable[[Any, str], Any] = ResourceNode.create_node
        self._model = models["r4"]
        # trace() would print the values it traces (patient data) to stdout: swallow them.
        self._options = {
            "userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}},
            "traceFn": _no_trace,
        }
        self._compiled: dict[str, Callable[..., list[Any]]] = {}
        self._guards: dict[tuple[str, str], frozenset[str] | None] = {}

    def holds(
        self, expression: str, node: Any, type_path: str, resource: Any, root: Any
    ) -> bool | None:
        """True/False, or None when the expression cannot be evaluated here."""
        function = self._compiled.get(expression)
        if function is None:
            function = self._fhirpath.compile(expression, self._model, self._options)
            self._compiled[expression] = function
        if isinstance(node, Mapping) and self._vacuous(expression, node, type_path):
            return True
        try:  # fhirpathpy raises bare Exception (a function it lacks, a bad operand)
            result: Any = function(
                self._node(node, type_path), {"resource": resource, "rootResource": root}
            )
        except Exception:
            return None
        return not (result == [False] or result is False)

    def _vacuous(self, expression: str, node: Mapping[str, Any], type_path: str) -> bool:
        """True when the node holds none of the names the expression reads and the expression
        holds on an empty node: its result cannot differ, so it is not evaluated (dom-2..5 on
        every resource without ``contained``: most of the time a walk would spend).

        Only for expressions that read the node through names alone: no function called on
        the node itself (``children()``, ``hasValue()``...), no ``$this``, no ``%`` variable.
        """
        key = (expression, type_path)
        guard = self._guards.get(key, _UNKNOWN)
        if guard is _UNKNOWN:
            guard = None
            text = _STRING_RE.sub("''", expression)
            if not (_ROOT_CALL_RE.search(text) or "$" in text or "%" in text):
                empty = self.holds_on_empty(expression, type_path)
                if empty:
                    guard = frozenset(_NAME_RE.findall(text))
            self._guards[key] = guard
        if guard is None:
            return False
        return not any(k.lstrip("_").startswith(name) for k in node for name in guard)

    def holds_on_empty(self, expression: str, type_path: str) -> bool:
        try:
            result: Any = self._compiled[expression](self._node({}, type_path), {})
        except Exception:
            return False
        return not (result == [False] or result is False)


_UNKNOWN: Any = object()
#: Invariants whose expression is one path from this element: true when it is absent.
#: dom-3 (contained resources are referenced) reads %resource, so the generic guard skips it.
_NEEDS = {"dom-3": "contained"}
_STRING_RE = re.compile(r"'(?:[^'\\]|\\.)*'")
#: a function invoked on the node itself: at the start, or after an operator or a bracket
_ROOT_CALL_RE = re.compile(r"(?<![.\w`])([A-Za-z_]\w*)\s*\(")
_NAME_RE = re.compile(r"(?<![.\w`])`?([A-Za-z_]\w*)\b`?(?!\s*\()")


@dataclass(slots=True)
class _Context:
    """Where a walk is: the resource (``%resource``), its container and the Bundle's index."""

    resource: Mapping[str, Any]
    root: Mapping[str, Any]
    bundle: Mapping[str, str] | None  # fullUrl -> resourceType


class Validator:
    """Validates resources and bundles; build once, reuse (profile rules compiled once)."""

    def __init__(self, profiles: ProfileSet | None = None, *, by_type: bool = True) -> None:
        self.profiles = profiles if profiles is not None else default_profiles()
        self.by_type = by_type
        r4_plan()
        self._rules: dict[str, ProfileRules] = {
            url: compile_profile(sd, self.profiles)
            for url, sd in self.profiles.structure_definitions.items()
        }
        self._invariants = _Invariants()
        self._constraints: dict[str, list[str]] = r4_plan()["constraints"]

    def applicable_profiles(self, resource: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """``(profiles to check, claimed profiles not known here)`` for a resource."""
        rtype = str(resource.get("resourceType"))
        # A meta or meta.profile of the wrong JSON type claims nothing here: the R4 walk reports
        # it at meta / meta.profile[i] (and a value that is not a URL is not quoted back).
        meta = resource.get("meta")
        claimed = meta.get("profile") if isinstance(meta, Mapping) else None
        urls: list[str] = []
        unknown: list[str] = []
        for raw in claimed if isinstance(claimed, list) else []:
            if not isinstance(raw, str):
                continue
            url = raw.split("|", 1)[0]
            sd = self.profiles.structure_definition(url)
            if url == R4_BASE + rtype:
                continue
            if sd is None or sd.get("type") != rtype:
                unknown.append(raw)
            elif url not in urls:
                urls.append(url)
        if self.by_type:
            own = self.profiles.project_profiles(rtype)
            if len(own) == 1 and own[0] not in urls:
                urls.append(own[0])
        return urls, unknown

    def warm_up(self, *resource_types: str) -> None:
        """Index these types now (the plan is loaded already; this only saves a few ms)."""
        for rtype in resource_types:
            if defs.is_resource_type(rtype):
                _index(rtype, rtype)

    # -- entry points -----------------------------------------------------------------------

    def validate(
        self, resource: dict[str, Any], *, location: Location | None = None
    ) -> list[Issue]:
        """Every problem found in one resource (a Bundle: its entries too); [] when valid.

        Issues of severity ``warning`` (unknown profile or Questionnaire) do not make a
        resource invalid; see :func:`has_errors`.
        """
        if isinstance(resource, Mapping) and resource.get("resourceType") == "Bundle":
            return self.validate_bundle(resource, location=location)
        walk = _Walk(self)
        walk.resource(resource, "", None)
        return _locate(walk.issues, location)

    def validate_bundle(
        self, bundle: dict[str, Any], *, location: Location | None = None
    ) -> list[Issue]:
        """The Bundle, each ``entry.resource``, and that in-bundle references resolve."""
        if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
            return _locate(
                [_issue("not a Bundle", "structure", "Bundle", NOT_A_RESOURCE)], location
            )
        walk = _Walk(self)
        walk.resource(bundle, "", None)
        walk.issues.extend(_checks.check_references(bundle))
        return _locate(walk.issues, location)


class _Walk:
    """One validation: walks a resource along the plan and collects issues."""

    def __init__(self, validator: Validator) -> None:
        self.v = validator
        self.issues: list[Issue] = []
        self._seen: set[tuple[str | None, str, str | None]] = set()

    def add(
        self, message: str, code: str, expression: str, error_code: str, severity: str = "error"
    ) -> None:
        key = (expression, message, error_code)
        if key not in self._seen:
            self._seen.add(key)
            self.issues.append(_issue(message, code, expression, error_code, severity))

    # -- resources --------------------------------------------------------------------------

    def resource(
        self, resource: Any, expr: str, outer: _Context | None, contained: bool = False
    ) -> None:
        rtype = resource.get("resourceType") if isinstance(resource, Mapping) else None
        if not isinstance(rtype, str) or not defs.is_resource_type(rtype):
            self.add(
                "not an R4 resource: resourceType is missing or unknown",
                "structure",
                f"{expr}.resourceType" if expr else "resourceType",
                NOT_A_RESOURCE,
            )
            return
        resource = cast(Mapping[str, Any], resource)
        expr = expr or rtype
        bundle = outer.bundle if outer is not None else None
        if rtype == "Bundle":
            bundle = _bundle_index(resource)
        root = outer.root if (contained and outer is not None) else resource
        ctx = _Context(resource=resource, root=root, bundle=bundle)
        self.complex(rtype, rtype, resource, expr, ctx, root=True)
        self.invariants(rtype, rtype, resource, expr, ctx)
        urls, unknown = self.v.applicable_profiles(resource)
        for url in unknown:
            self.add(
                f"profile {url} is not known here and was not checked",
                "not-supported",
                f"{expr}.meta.profile",
                UNKNOWN_PROFILE,
                severity="warning",
            )
        applied: set[str] = set()
        for url in urls:
            for sd in self.v.profiles.profile_chain(url):
                rules = self.v._rules.get(str(sd.get("url")))
                if rules is not None and rules.url not in applied:
                    applied.add(rules.url)
                    self.apply(rules, resource, expr, ctx)
        if rtype == "QuestionnaireResponse":
            self.issues.extend(_checks.check_response(self.v.profiles, resource, expr))
        elif rtype == "MeasureReport":
            self.issues.extend(_checks.check_measure_report(self.v.profiles, resource, expr))

    # -- the R4 walk --------------------------------------------------------------------------

    def complex(
        self,
        type_name: str,
        path: str,
        obj: Mapping[str, Any],
        expr: str,
        ctx: _Context,
        *,
        root: bool = False,
    ) -> None:
        index, elements = _index(type_name, path)
        if not root and not any(k != "id" for k in obj):
            self.add("element has no value and no children (ele-1)", "invariant", expr, INVARIANT)
        present: dict[str, list[str]] = {}
        for key, value in obj.items():
            if root and key == "resourceType":
                continue
            if key.startswith("_") and len(key) > 1:
                self.primitive_extension(index, key, value, obj, expr, ctx, present)
                continue
            match = index.get(key)
            if match is None:
                self.add(
                    "element is not defined in R4 here", "structure", f"{expr}.{key}", STRUCTURE
                )
                continue
            element, type_code = match
            present.setdefault(element.path, []).append(key)
            for item, item_expr in self.items(element, key, value, obj, expr):
                self.value(type_name, element, type_code, item, item_expr, ctx)
        for element in elements:
            keys = present.get(element.path, [])
            if len(set(keys)) > 1:
                self.add(
                    f"only one type of {element.name}[x] is allowed",
                    "structure",
                    f"{expr}.{keys[1]}",
                    STRUCTURE,
                )
            if element.min > 0 and not keys:
                self.add(
                    "required element is missing", "required", f"{expr}.{element.name}", STRUCTURE
                )
            if element.repeats and element.max != "*" and keys:
                value = obj.get(keys[0])
                if isinstance(value, list) and len(value) > int(element.max):
                    self.add(
                        f"at most {element.max} repetitions allowed",
                        "structure",
                        f"{expr}.{keys[0]}",
                        STRUCTURE,
                    )

    def items(
        self, element: defs.ElementDef, key: str, value: Any, obj: Mapping[str, Any], expr: str
    ) -> list[tuple[Any, str]]:
        """The values of one JSON property, after its array/single shape is checked."""
        if element.repeats:
            if not isinstance(value, list):
                self.add(
                    "element repeats: the value must be a JSON array",
                    "structure",
                    f"{expr}.{key}",
                    STRUCTURE,
                )
                return []
            if not value:
                self.add("an array must not be empty", "structure", f"{expr}.{key}", STRUCTURE)
                return []
            shadow = obj.get("_" + key)
            out = []
            for index, item in enumerate(value):
                item_expr = f"{expr}.{key}[{index}]"
                if item is None:
                    has_ext = (
                        isinstance(shadow, list)
                        and index < len(shadow)
                        and shadow[index] is not None
                    )
                    if not has_ext:
                        self.add("null is not a value", "structure", item_expr, STRUCTURE)
                    continue
                out.append((item, item_expr))
            return out
        if isinstance(value, list):
            self.add(
                "element does not repeat: the value must not be an array",
                "structure",
                f"{expr}.{key}",
                STRUCTURE,
            )
            return []
        if value is None:
            self.add("null is not a value", "structure", f"{expr}.{key}", STRUCTURE)
            return []
        return [(value, f"{expr}.{key}")]

    def primitive_extension(
        self,
        index: _Index,
        key: str,
        value: Any,
        obj: Mapping[str, Any],
        expr: str,
        ctx: _Context,
        present: dict[str, list[str]],
    ) -> None:
        match = index.get(key[1:])
        if match is None or not defs.is_primitive(match[1]):
            self.add("element is not defined in R4 here", "structure", f"{expr}.{key}", STRUCTURE)
            return
        element = match[0]
        present.setdefault(element.path, []).append(key[1:])
        values = value if isinstance(value, list) and element.repeats else [value]
        if element.repeats and not isinstance(value, list):
            self.add(
                "element repeats: the value must be a JSON array",
                "structure",
                f"{expr}.{key}",
                STRUCTURE,
            )
            return
        for i, item in enumerate(values):
            item_expr = f"{expr}.{key}[{i}]" if element.repeats else f"{expr}.{key}"
            if item is None and element.repeats:
                continue
            if not isinstance(item, Mapping):
                self.add(
                    "a primitive's extension holder must be a JSON object",
                    "structure",
                    item_expr,
                    STRUCTURE,
                )
                continue
            self.complex("Element", "Element", item, item_expr, ctx)

    def value(
        self,
        type_name: str,
        element: defs.ElementDef,
        type_code: str,
        item: Any,
        expr: str,
        ctx: _Context,
    ) -> None:
        if defs.is_primitive(type_code):
            self.primitive(type_code, item, expr)
        elif type_code == "Resource" or defs.is_resource_type(type_code):
            if not isinstance(item, Mapping):
                self.add("a resource must be a JSON object", "structure", expr, STRUCTURE)
                return
            contained = element.path.endswith(".contained")
            self.resource(item, expr, ctx, contained=contained)
            return
        else:
            if not isinstance(item, Mapping):
                self.add(
                    f"the value must be a JSON object ({type_code or 'element'})",
                    "structure",
                    expr,
                    STRUCTURE,
                )
                return
            sub_type, sub_path = defs.type_for_children(element, type_code)
            self.complex(sub_type or type_name, sub_path, item, expr, ctx)
            if sub_type is not None:
                self.invariants(sub_type, sub_type, item, expr, ctx)
                for profile in _element_info(type_name, element.content_ref or element.path)[2]:
                    self.core_profile(profile, sub_type, item, expr, ctx)
            if type_code == "Reference":
                targets = _element_info(type_name, element.content_ref or element.path)[1]
                self.reference(item, expr, ctx, targets)
            elif type_code == "Extension":
                self.extension(item, expr, ctx)
        if (
            element.binding_strength == "required"
            and element.binding_value_set
            and type_code in _CODED
        ):
            self.binding(element.binding_value_set, type_code, item, expr)
        self.invariants(
            type_name,
            element.content_ref or element.path,
            item,
            expr,
            ctx,
            type_path=element.content_ref or element.path,
        )

    def primitive(self, type_code: str, item: Any, expr: str) -> None:
        kind = defs.json_kind(type_code)
        if kind == "bool":
            ok = isinstance(item, bool)
        elif kind == "int":
            ok = (
                isinstance(item, int)
                and not isinstance(item, bool)
                and _INT32[0] <= item <= _INT32[1]
            )
            if ok and type_code == "positiveInt":
                ok = item > 0
            elif ok and type_code == "unsignedInt":
                ok = item >= 0
        elif kind == "decimal":
            ok = (
                isinstance(item, int | float | Decimal)
                and not isinstance(item, bool)
                and (not isinstance(item, float) or math.isfinite(item))
            )
        else:
            ok = isinstance(item, str) and item != ""
            if ok:
                pattern = _regex(type_code)
                ok = pattern is None or pattern.fullmatch(item) is not None
                if ok and type_code in ("date", "dateTime", "instant"):
                    ok = _calendar_ok(item)
        if not ok:
            self.add(f"not a valid FHIR {type_code}", "value", expr, STRUCTURE)

    def extension(self, item: Mapping[str, Any], expr: str, ctx: _Context) -> None:
        has_value = any(k.startswith("value") for k in item)
        if bool(item.get("extension")) == has_value:
            self.add(
                "an extension has either a value or extensions, not both or neither (ext-1)",
                "invariant",
                expr,
                INVARIANT,
            )
        url = item.get("url")
        if isinstance(url, str):
            for sd in self.v.profiles.profile_chain(url):
                rules = self.v._rules.get(str(sd.get("url")))
                if rules is not None and sd.get("type") == "Extension":
                    self.apply(rules, item, expr, ctx)

    def reference(
        self, item: Mapping[str, Any], expr: str, ctx: _Context, targets: tuple[str, ...]
    ) -> None:
        ref = item.get("reference")
        if isinstance(ref, str) and ref.startswith("#") and ref != "#":
            ids = {c.get("id") for c in ctx.root.get("contained") or () if isinstance(c, Mapping)}
            if ref[1:] not in ids:
                self.add(
                    "reference to a contained resource that is not there (ref-1)",
                    "not-found",
                    f"{expr}.reference",
                    UNRESOLVED,
                )
        self.target(item, expr, ctx, targets)

    def target(
        self, item: Mapping[str, Any], expr: str, ctx: _Context, targets: tuple[str, ...]
    ) -> None:
        if not targets or "Resource" in targets:
            return
        found = _referenced_type(item, ctx)
        if found is None:
            return
        rtype, where = found
        if rtype not in targets:
            self.add(
                "reference to a resource type this element does not allow",
                "value",
                f"{expr}.{where}",
                WRONG_TARGET,
            )

    def binding(self, value_set: str, type_code: str, value: Any, expr: str) -> None:
        allowed = self.v.profiles.value_set_codes(value_set)
        if allowed is None:
            return  # not expandable here (external terminology): not checked
        if type_code == "code":
            if isinstance(value, str) and not any(code == value for _, code in allowed):
                self.add(
                    f"code is not in the required value set {value_set}",
                    "code-invalid",
                    expr,
                    BAD_CODE,
                )
            return
        codings = (
            [value]
            if type_code == "Coding"
            else (value.get("coding", []) if isinstance(value, Mapping) else [])
        )
        if not isinstance(codings, list):
            return
        good = [
            c
            for c in codings
            if isinstance(c, Mapping) and (str(c.get("system")), str(c.get("code"))) in allowed
        ]
        if not good:
            self.add(
                f"no coding from the required value set {value_set}", "code-invalid", expr, BAD_CODE
            )

    def invariants(
        self,
        type_name: str,
        path: str,
        node: Any,
        expr: str,
        ctx: _Context,
        type_path: str | None = None,
    ) -> None:
        keys = _element_info(type_name, path)[0]
        for key in keys:
            needs = _NEEDS.get(key)
            if needs is not None and isinstance(node, Mapping) and needs not in node:
                continue
            _, expression, human = self._constraint(key)
            self.check_invariant(
                key.split("@", 1)[0], expression, human, node, type_path or path, expr, ctx
            )

    def core_profile(
        self, profile: str, type_code: str, item: Any, expr: str, ctx: _Context
    ) -> None:
        """The invariants an R4 core data-type profile adds (SimpleQuantity: sqty-1)."""
        core = r4_plan()["coreProfiles"].get(profile)
        if core is None or core["type"] != type_code:
            return
        for key in core["c"]:
            _, expression, human = self._constraint(key)
            self.check_invariant(
                key.split("@", 1)[0], expression, human, item, type_code, expr, ctx
            )

    def _constraint(self, key: str) -> list[str]:
        return self.v._constraints[key]

    def check_invariant(
        self,
        key: str,
        expression: str,
        human: str,
        node: Any,
        type_path: str,
        expr: str,
        ctx: _Context,
    ) -> None:
        held = self.v._invariants.holds(expression, node, type_path, ctx.resource, ctx.root)
        if held is None:
            self.add(f"invariant {key} could not be evaluated", "invariant", expr, INVARIANT)
        elif not held:
            self.add(f"invariant {key} failed: {human}", "invariant", expr, INVARIANT)

    # -- profile rules --------------------------------------------------------------------------

    def apply(self, rules: ProfileRules, root: Mapping[str, Any], expr: str, ctx: _Context) -> None:
        for rule in rules.rules:
            parents = self.navigate(root, expr, rule.steps[:-1])
            if not rule.steps:
                self.rule_values(rule, [(root, expr)], ctx)
                continue
            last = rule.steps[-1]
            if rule.types is not None:  # every value[x] found, to report a type not allowed
                last = Step(last.name, True, None, last.slice, last.sliced_away)
            for parent, parent_expr in parents:
                values = list(_select(parent, parent_expr, last))
                where = f"{rules.url.rsplit('/', 1)[-1]}"
                count = len(values)
                if rule.min is not None and count < rule.min and not last.sliced_away:
                    self.add(
                        f"required element is missing (profile {where})",
                        "required",
                        f"{parent_expr}.{last.name}",
                        STRUCTURE,
                    )
                if (
                    rule.max is not None
                    and rule.max != "*"
                    and count > int(rule.max)
                    and not last.sliced_away
                ):
                    name = values[0][2] if values else last.name
                    message = (
                        "element is not allowed"
                        if rule.max == "0"
                        else f"at most {rule.max} allowed"
                    )
                    self.add(
                        f"{message} (profile {where})",
                        "structure",
                        f"{parent_expr}.{name}",
                        STRUCTURE,
                    )
                if rule.types is not None:
                    for _, value_expr, key in values:
                        if key[len(last.name) :] not in {_cap(t) for t in rule.types}:
                            self.add(
                                f"type not allowed here (profile {where})",
                                "structure",
                                value_expr,
                                STRUCTURE,
                            )
                self.rule_values(rule, [(v, e) for v, e, _ in values], ctx)

    def rule_values(self, rule: Rule, values: list[tuple[Any, str]], ctx: _Context) -> None:
        where = rule.profile
        for value, value_expr in values:
            if rule.fixed is not UNSET and not same_value(rule.fixed, value):
                self.add(
                    f"value does not match the fixed value (profile {where})",
                    "value",
                    value_expr,
                    STRUCTURE,
                )
            if rule.pattern is not UNSET and not matches_pattern(rule.pattern, value):
                self.add(
                    f"value does not match the pattern (profile {where})",
                    "value",
                    value_expr,
                    STRUCTURE,
                )
            if rule.value_set is not None:
                code = (
                    "code"
                    if isinstance(value, str)
                    else (
                        "CodeableConcept"
                        if isinstance(value, Mapping) and "coding" in value
                        else "Coding"
                    )
                )
                self.binding(rule.value_set, code, value, value_expr)
            if rule.targets is not None and isinstance(value, Mapping):
                self.target(value, value_expr, ctx, rule.targets)
            for key, expression, human in rule.constraints:
                self.check_invariant(key, expression, human, value, rule.path, value_expr, ctx)

    def navigate(
        self, root: Mapping[str, Any], expr: str, steps: tuple[Step, ...]
    ) -> list[tuple[Mapping[str, Any], str]]:
        nodes: list[tuple[Mapping[str, Any], str]] = [(root, expr)]
        for step in steps:
            nxt: list[tuple[Mapping[str, Any], str]] = []
            for node, node_expr in nodes:
                for value, value_expr, _ in _select(node, node_expr, step):
                    if isinstance(value, Mapping):
                        nxt.append((value, value_expr))
            nodes = nxt
        return nodes


def _cap(code: str) -> str:
    return code[:1].upper() + code[1:]


def _select(node: Mapping[str, Any], expr: str, step: Step) -> list[tuple[Any, str, str]]:
    """``(value, FHIRPath, JSON key)`` of each repetition of one step under a node."""
    if step.sliced_away:
        return []
    if step.choice:
        suffixes = {_cap(t) for t in step.types} if step.types else None
        keys = [
            k
            for k in node
            if k.startswith(step.name)
            and k[len(step.name) :][:1].isupper()
            and (suffixes is None or k[len(step.name) :] in suffixes)
        ]
    else:
        keys = [step.name] if step.name in node else []
    out: list[tuple[Any, str, str]] = []
    for key in keys:
        value = node[key]
        if isinstance(value, list):
            items = [(v, f"{expr}.{key}[{i}]") for i, v in enumerate(value) if v is not None]
        elif value is None:
            items = []
        else:
            items = [(value, f"{expr}.{key}")]
        for item, item_expr in items:
            if step.slice is None or step.slice.matches(item):
                out.append((item, item_expr, key))
    return out


def _referenced_type(item: Mapping[str, Any], ctx: _Context) -> tuple[str, str] | None:
    """``(resource type, "reference"|"type")`` a Reference points at, when it can be told."""
    ref = item.get("reference")
    if isinstance(ref, str):
        if ref.startswith("#"):
            for c in ctx.root.get("contained") or ():
                if isinstance(c, Mapping) and c.get("id") == ref[1:]:
                    return str(c.get("resourceType")), "reference"
            return None
        if ref.startswith(("urn:uuid:", "urn:oid:")):
            if ctx.bundle is not None and ref in ctx.bundle:
                return ctx.bundle[ref], "reference"
            return None
        found = _REF_TYPE_RE.match(ref)
        if found and defs.is_resource_type(found.group(1)):
            return found.group(1), "reference"
        if ctx.bundle is not None and ref in ctx.bundle:
            return ctx.bundle[ref], "reference"
        return None
    rtype = item.get("type")
    if isinstance(rtype, str) and defs.is_resource_type(rtype):
        return rtype, "type"
    return None


def _bundle_index(bundle: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else ():
        if (
            isinstance(entry, Mapping)
            and isinstance(entry.get("fullUrl"), str)
            and isinstance(entry.get("resource"), Mapping)
        ):
            out[entry["fullUrl"]] = str(entry["resource"].get("resourceType"))
    return out


def _calendar_ok(text: str) -> bool:
    found = _CALENDAR_RE.match(text)
    if found is None:
        return True  # a year or year-month: the regex has checked it
    try:
        date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
    except ValueError:
        return False
    return True


def _issue(
    message: str, code: str, expression: str, error_code: str, severity: str = "error"
) -> Issue:
    return Issue(
        diagnostics=message,
        code=code,
        expression=expression,
        error_code=error_code,
        severity="warning" if severity == "warning" else "error",
    )


def _locate(issues: list[Issue], location: Location | None) -> list[Issue]:
    if location is None:
        return issues
    return [
        Issue(
            diagnostics=i.diagnostics,
            code=i.code,
            severity=i.severity,
            location=location,
            expression=i.expression,
            error_code=i.error_code,
        )
        for i in issues
    ]


def has_errors(issues: list[Issue]) -> bool:
    """True when any issue is an error (warnings alone leave a resource valid)."""
    return any(issue.severity in ("error", "fatal") for issue in issues)


@cache
def default_validator() -> Validator:
    """One Validator over the shipped ``profiles/``, built on first use and reused."""
    return Validator()


__all__ = ["Validator", "default_validator", "has_errors"]
