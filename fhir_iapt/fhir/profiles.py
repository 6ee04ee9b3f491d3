"""The profile set: every conformance resource shipped in ``profiles/``, loaded once.

``profiles/`` holds JSON StructureDefinitions (UK Core and the project's own), CodeSystems,
ValueSets, Questionnaires, Measures (the report's KPIs), and Bundles of them
(``Bundle-r4-required-valuesets.json``). Whatever is there is picked up: a helper adding a
profile only drops a file in the folder.

A :class:`ProfileSet` answers the questions validation asks: which StructureDefinition has this
URL, which of the project's profiles apply to a resource type, which codes a ValueSet allows
(when it can be expanded locally), which Questionnaire a response answers and which Measure
a MeasureReport reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fhir_iapt._data import profiles_dir
from fhir_iapt.errors import Issue, Location, ProfileError
from fhir_iapt.systems import CANONICAL_BASE

_KINDS = ("StructureDefinition", "CodeSystem", "ValueSet", "Questionnaire", "Measure")
BROKEN_PROFILE_FILE = "FI400"

Code = tuple[str, str]  # (system, code)


def _canonical(url: str) -> tuple[str, str | None]:
    base, _, version = url.partition("|")
    return base, (version or None)


@dataclass(slots=True)
class ProfileSet:
    """Conformance resources by canonical URL (one version each: the file's)."""

    structure_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    code_systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    value_sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    questionnaires: dict[str, dict[str, Any]] = field(default_factory=dict)
    measures: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # url -> file name
    _expanded: dict[str, frozenset[Code] | None] = field(default_factory=dict)

    # -- loading ---------------------------------------------------------------------------

    def add(self, resource: Mapping[str, Any], source: str = "(memory)") -> None:
        """Add one conformance resource (or every entry of a Bundle of them)."""
        rtype = resource.get("resourceType")
        if rtype == "Bundle":
            for item in resource.get("entry", ()):
                if isinstance(item, Mapping) and isinstance(item.get("resource"), Mapping):
                    self.add(item["resource"], source)
            return
        if rtype not in _KINDS:
            return
        url = resource.get("url")
        if not isinstance(url, str) or not url:
            raise ProfileError(
                f"{rtype} in {source} has no url",
                location=Location(file=source, element=f"{rtype}.url"),
                error_code=BROKEN_PROFILE_FILE,
            )
        table = {
            "StructureDefinition": self.structure_definitions,
            "CodeSystem": self.code_systems,
            "ValueSet": self.value_sets,
            "Questionnaire": self.questionnaires,
            "Measure": self.measures,
        }[str(rtype)]
        table[url] = dict(resource)
        self.sources[url] = source
        self._expanded.clear()

    @classmethod
    def load(cls, directory: Path | None = None) -> ProfileSet:
        """Load every ``*.json`` conformance resource in ``directory`` (default ``profiles/``)."""
        folder = directory if directory is not None else profiles_dir()
        profile_set = cls()
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                issue = Issue(
                    diagnostics=f"profile file is not readable JSON: {exc}",
                    code="structure",
                    location=Location(file=path.name),
                    error_code=BROKEN_PROFILE_FILE,
                )
                raise ProfileError(
                    issue.diagnostics, issues=[issue], error_code=BROKEN_PROFILE_FILE
                ) from exc
            if isinstance(data, Mapping):
                profile_set.add(data, path.name)
        return profile_set

    # -- structure definitions --------------------------------------------------------------

    def structure_definition(self, url: str) -> dict[str, Any] | None:
        return self.structure_definitions.get(_canonical(url)[0])

    def project_profiles(self, resource_type: str) -> list[str]:
        """URLs of the project's own resource profiles (``{CANONICAL_BASE}/...``) for a type."""
        return sorted(
            url
            for url, sd in self.structure_definitions.items()
            if url.startswith(CANONICAL_BASE + "/")
            and sd.get("type") == resource_type
            and sd.get("kind") == "resource"
        )

    def profile_chain(self, url: str) -> list[dict[str, Any]]:
        """The StructureDefinition of ``url`` and its shipped ancestors, base-most first."""
        chain: list[dict[str, Any]] = []
        current = self.structure_definition(url)
        while current is not None and len(chain) < 20:
            chain.append(current)
            base = current.get("baseDefinition")
            current = self.structure_definition(base) if isinstance(base, str) else None
        return list(reversed(chain))

    # -- terminology ------------------------------------------------------------------------

    def _code_system_codes(self, system: str) -> frozenset[Code] | None:
        cs = self.code_systems.get(system)
        if cs is None or cs.get("content") not in ("complete", None):
            return None
        out: set[Code] = set()

        def walk(concepts: Any) -> None:
            for concept in concepts or ():
                out.add((system, str(concept.get("code"))))
                walk(concept.get("concept"))

        walk(cs.get("concept"))
        return frozenset(out)

    def value_set_codes(self, url: str) -> frozenset[Code] | None:
        """The (system, code) pairs a ValueSet allows, or None when it cannot be expanded here.

        Expands ``expansion.contains``, or ``compose.include`` made of concept lists and whole
        CodeSystems shipped in ``profiles/``. Filters, excludes of unknown systems and value
        sets of external terminologies (SNOMED CT, LOINC) are not expanded: None.
        """
        key = _canonical(url)[0]
        if key in self._expanded:
            return self._expanded[key]
        result = self._expand(key)
        self._expanded[key] = result
        return result

    def _expand(self, url: str) -> frozenset[Code] | None:
        vs = self.value_sets.get(url)
        if vs is None:
            return None
        expansion = vs.get("expansion")
        if isinstance(expansion, Mapping) and expansion.get("contains"):
            return frozenset(_contains(expansion["contains"]))
        compose = vs.get("compose")
        if not isinstance(compose, Mapping):
            return None
        codes: set[Code] = set()
        for include in compose.get("include", ()):
            part = self._include(include)
            if part is None:
                return None
            codes |= part
        for exclude in compose.get("exclude", ()):
            part = self._include(exclude)
            if part is None:
                return None
            codes -= part
        return frozenset(codes)

    def _include(self, include: Mapping[str, Any]) -> set[Code] | None:
        if include.get("filter"):
            return None
        codes: set[Code] | None = None
        system = include.get("system")
        if system:
            if include.get("concept"):
                codes = {(str(system), str(c.get("code"))) for c in include["concept"]}
            else:
                whole = self._code_system_codes(str(system))
                if whole is None:
                    return None
                codes = set(whole)
        for vs_url in include.get("valueSet", ()):
            nested = self.value_set_codes(str(vs_url))
            if nested is None:
                return None
            codes = set(nested) if codes is None else codes & nested
        return codes

    # -- questionnaires ---------------------------------------------------------------------

    def questionnaire(self, canonical: str) -> dict[str, Any] | None:
        """The Questionnaire a ``QuestionnaireResponse.questionnaire`` canonical names."""
        url, version = _canonical(canonical)
        found = self.questionnaires.get(url)
        if found is None or (version is not None and found.get("version") != version):
            return None
        return found

    def measure(self, canonical: str) -> dict[str, Any] | None:
        """The Measure a ``MeasureReport.measure`` canonical names (its version, if given,
        must be the shipped one's)."""
        url, version = _canonical(canonical)
        found = self.measures.get(url)
        if found is None or (version is not None and found.get("version") != version):
            return None
        return found

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self.structure_definitions.values()
        yield from self.code_systems.values()
        yield from self.value_sets.values()
        yield from self.questionnaires.values()
        yield from self.measures.values()


def _contains(items: Any) -> Iterator[Code]:
    for item in items or ():
        if item.get("code") is not None and not item.get("abstract", False):
            yield str(item.get("system")), str(item["code"])
        yield from _contains(item.get("contains"))


@cache
def default_profiles() -> ProfileSet:
    """The shipped ``profiles/`` folder, loaded once per process."""
    return ProfileSet.load()


__all__ = ["Code", "ProfileSet", "default_profiles"]
