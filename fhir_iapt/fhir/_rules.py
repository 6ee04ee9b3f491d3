"""A profile's differential compiled into rules the validator applies over the R4 base walk.

A differential only restricts its base, so applying each differential element as an extra rule
on top of the R4 (and base profile) checks gives what its snapshot would: cardinality
(``min``/``max``), allowed types of a choice, target types of references, ``fixed[x]`` and
``pattern[x]`` values, required bindings and invariants. An element id is a path from the
resource root (``Observation.value[x].code``, ``Patient.identifier:nhsNumber.value``); a slice
(``:name``) selects the repetitions its discriminator picks: the ``url`` of an extension
slice's profile, or the fixed/pattern values its children hold at the ``value``/``pattern``
discriminator paths. A slice whose discriminator value the differential does not give selects
nothing (its rules are not applied).

Compiling the shipped profiles takes milliseconds, so rules are compiled when a validator is
built, from whatever :class:`~fhir_iapt.fhir.profiles.ProfileSet` it is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir_iapt.fhir.profiles import ProfileSet

_SD = "http://hl7.org/fhir/StructureDefinition/"
#: Differential keys with no effect on what an instance may contain.
_DOC_ONLY = frozenset(
    {
        "id",
        "path",
        "short",
        "definition",
        "comment",
        "requirements",
        "alias",
        "mustSupport",
        "mapping",
        "isSummary",
        "label",
        "example",
        "sliceName",
        "isModifier",
        "isModifierReason",
        "slicing",
    }
)


class _Unset:
    """No fixed/pattern value (None is never a FHIR value, but keep the intent explicit)."""


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class Slice:
    """Which repetitions a slice holds: extension ``url``, or values at discriminator paths."""

    url: str | None = None
    values: tuple[tuple[str, Any], ...] = ()

    def matches(self, item: Any) -> bool:
        if not isinstance(item, Mapping):
            return False
        if self.url is not None:
            return item.get("url") == self.url
        return all(
            any(found == want for found in values_at(item, path)) for path, want in self.values
        )


@dataclass(frozen=True, slots=True)
class Step:
    """One segment of an element id: a JSON name (``value`` for ``value[x]``), a slice."""

    name: str
    choice: bool
    types: tuple[str, ...] | None  # a choice restricted to these types (None: any)
    slice: Slice | None
    sliced_away: bool = False  # a slice whose discriminator is unknown: selects nothing


@dataclass(frozen=True, slots=True)
class Rule:
    """One differential element's restrictions."""

    profile: str  # the profile's name, for messages
    element_id: str
    path: str  # the element's path (FHIRPath type context for invariants)
    steps: tuple[Step, ...]
    min: int | None = None
    max: str | None = None
    types: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    fixed: Any = UNSET
    pattern: Any = UNSET
    value_set: str | None = None  # required binding
    constraints: tuple[tuple[str, str, str], ...] = ()  # (key, expression, human)


@dataclass(slots=True)
class ProfileRules:
    """Every rule of one profile, base-most profile's first."""

    url: str
    type: str
    rules: list[Rule] = field(default_factory=list)


def values_at(item: Any, path: str) -> Iterator[Any]:
    """Values at a dotted path (``coding.system``) inside an item, through lists."""
    current: list[Any] = [item]
    for name in path.split("."):
        nxt: list[Any] = []
        for node in current:
            if isinstance(node, Mapping) and name in node:
                value = node[name]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    yield from current


def _fixed(element: Mapping[str, Any], prefix: str) -> Any:
    for key, value in element.items():
        if key.startswith(prefix) and key[len(prefix) :][:1].isupper():
            return value
    return UNSET


def _type_of(url: str, profiles: ProfileSet) -> str:
    url = url.split("|", 1)[0]
    if url.startswith(_SD) and "/" not in url[len(_SD) :]:
        sd = profiles.structure_definition(url)
        return str(sd["type"]) if sd is not None else url[len(_SD) :]
    sd = profiles.structure_definition(url)
    return str(sd["type"]) if sd is not None else url


def compile_profile(sd: Mapping[str, Any], profiles: ProfileSet) -> ProfileRules:
    """The rules of one StructureDefinition's differential (not its base's)."""
    elements = [
        e for e in (sd.get("differential") or {}).get("element", ()) if isinstance(e, Mapping)
    ]
    by_id = {str(e.get("id", e.get("path"))): e for e in elements}
    out = ProfileRules(url=str(sd.get("url")), type=str(sd.get("type")))
    name = str(sd.get("name") or sd.get("id") or out.url.rsplit("/", 1)[-1])
    for element in elements:
        element_id = str(element.get("id", element.get("path")))
        if set(element) <= _DOC_ONLY and not element.get("constraint"):
            continue
        steps = _steps(element_id, by_id)
        types = tuple(str(t.get("code")) for t in element.get("type", ())) or None
        targets = (
            tuple(
                sorted(
                    {
                        _type_of(str(p), profiles)
                        for t in element.get("type", ())
                        for p in t.get("targetProfile", ())
                    }
                )
            )
            or None
        )
        binding = element.get("binding") or {}
        value_set = (
            str(binding["valueSet"]).split("|", 1)[0]
            if binding.get("strength") == "required" and binding.get("valueSet")
            else None
        )
        constraints = tuple(
            (str(c.get("key")), str(c["expression"]), str(c.get("human", "")))
            for c in element.get("constraint", ())
            if c.get("severity") == "error" and c.get("expression")
        )
        rule = Rule(
            profile=name,
            element_id=element_id,
            path=str(element.get("path")),
            steps=steps,
            min=int(element["min"]) if "min" in element else None,
            max=str(element["max"]) if "max" in element else None,
            types=types if steps and steps[-1].choice else None,
            targets=targets,
            fixed=_fixed(element, "fixed"),
            pattern=_fixed(element, "pattern"),
            value_set=value_set,
            constraints=constraints,
        )
        out.rules.append(rule)
    return out


def _steps(element_id: str, by_id: Mapping[str, Mapping[str, Any]]) -> tuple[Step, ...]:
    segments = element_id.split(".")
    steps: list[Step] = []
    prefix = segments[0]
    for segment in segments[1:]:
        name, _, slice_name = segment.partition(":")
        prefix = f"{prefix}.{segment}"
        choice = name.endswith("[x]")
        base = name[:-3] if choice else name
        own = by_id.get(prefix) or by_id.get(prefix.rsplit(":", 1)[0] if slice_name else prefix)
        types = tuple(str(t.get("code")) for t in (own or {}).get("type", ())) or None
        if choice and slice_name and slice_name.startswith(base) and len(slice_name) > len(base):
            # value[x]:valueQuantity: a type slice, not a repetition slice.
            steps.append(Step(base, True, (slice_name[len(base) :],), None))
            continue
        slice_match: Slice | None = None
        away = False
        if slice_name:
            slice_match = _slice(prefix, name, by_id)
            away = slice_match is None
        steps.append(Step(base, choice, types if choice else None, slice_match, away))
    return tuple(steps)


def _slice(slice_id: str, name: str, by_id: Mapping[str, Mapping[str, Any]]) -> Slice | None:
    element = by_id.get(slice_id) or {}
    if name in ("extension", "modifierExtension"):
        for t in element.get("type", ()):
            for profile in t.get("profile", ()):
                return Slice(url=str(profile).split("|", 1)[0])
        fixed_url = by_id.get(f"{slice_id}.url", {}).get("fixedUri")
        return Slice(url=str(fixed_url)) if fixed_url else None
    parent = by_id.get(slice_id.rsplit(":", 1)[0]) or {}
    discriminators = (parent.get("slicing") or {}).get("discriminator") or ()
    values: list[tuple[str, Any]] = []
    for discriminator in discriminators:
        if discriminator.get("type") not in ("value", "pattern"):
            return None
        path = str(discriminator.get("path"))
        child = by_id.get(f"{slice_id}.{path}") or {}
        want = _fixed(child, "fixed")
        if want is UNSET:
            want = _fixed(child, "pattern")
        if want is UNSET:
            return None
        values.append((path, want))
    return Slice(values=tuple(values)) if values else None


def matches_pattern(pattern: Any, value: Any) -> bool:
    """FHIR ``pattern[x]``: every part of the pattern is in the value (lists: some item)."""
    if isinstance(pattern, Mapping):
        return isinstance(value, Mapping) and all(
            key in value and matches_pattern(want, value[key]) for key, want in pattern.items()
        )
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(matches_pattern(want, item) for item in items) for want in pattern)
    return same_value(pattern, value)


def same_value(want: Any, value: Any) -> bool:
    """JSON equality where ``true`` is not ``1`` and ``1`` is ``1.0``."""
    if isinstance(want, bool) or isinstance(value, bool):
        return isinstance(want, bool) and isinstance(value, bool) and want == value
    if isinstance(want, Mapping):
        return (
            isinstance(value, Mapping)
            and set(want) == set(value)
            and all(same_value(v, value[k]) for k, v in want.items())
        )
    if isinstance(want, list):
        return (
            isinstance(value, list)
            and len(want) == len(value)
            and all(same_value(a, b) for a, b in zip(want, value, strict=True))
        )
    return bool(want == value)


__all__ = [
    "UNSET",
    "ProfileRules",
    "Rule",
    "Slice",
    "Step",
    "compile_profile",
    "matches_pattern",
    "same_value",
    "values_at",
]
