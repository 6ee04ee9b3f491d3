"""Validate FHIR R4 resources against the R4 base definitions and the shipped profiles.

The structural validator is fhircraft (R4 4.0.1 StructureDefinitions; a pydantic model built
from each profile's differential over its base chain). It checks cardinality (a missing
``subject``), unknown elements, ``value[x]`` types, primitive formats (a bad date), fixed and
pattern values (``intent`` other than ``order``) and the FHIRPath invariants of severity error.
:mod:`fhir_iapt.fhir._checks` adds what fhircraft does not do: required code bindings where the
ValueSet can be expanded from ``profiles/``, calendar-valid dates, QuestionnaireResponse answers
against the shipped Questionnaire, and references inside a Bundle.

Which definitions apply to a resource: the R4 base, every profile in ``meta.profile`` that
``profiles/`` has (an unknown one is a warning, FI405), and, for a type with exactly one project
profile (ServiceRequest, QuestionnaireResponse), that profile. Observation has two (scores and
episode outcomes), so an Observation is held to a project profile only when it claims it.

fhircraft cannot build a profile whose extension slices name extension definitions we do not
ship (UK Core Patient names a dozen); such slices are dropped from the model, so those
extensions are checked as plain R4 Extensions. fhircraft also rejects every contained/Bundle
resource as "not a Resource", so nested resources are validated one by one instead.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from fhir_iapt.errors import Issue, Location
from fhir_iapt.fhir import _checks
from fhir_iapt.fhir import _r4defs as defs
from fhir_iapt.fhir.profiles import ProfileSet, default_profiles

STRUCTURE = "FI401"
UNKNOWN_PROFILE = "FI405"
INVARIANT = "FI406"
NOT_A_RESOURCE = "FI407"
R4_BASE = "http://hl7.org/fhir/StructureDefinition/"
_CHOICE_RE = re.compile(r"element (\w+)\[x\]")


#: Differential keys with no effect on what an instance may contain.
_DOC_ONLY = frozenset({"id", "path", "short", "definition", "comment", "requirements", "alias",
                       "mustSupport", "mapping", "isSummary", "label", "example"})


def _prune(sd: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """A copy of ``sd`` fhircraft can build: without differential elements typed by profiles
    nobody has, and without documentation-only elements (``mustSupport``, ``short``...).

    The second works around a fhircraft 0.9 defect: a differential entry on a backbone element
    (``QuestionnaireResponse.item.answer``) rebuilds it without its ``value[x]`` choices.
    """
    elements = (sd.get("differential") or {}).get("element")
    if not elements:
        return sd
    dropped: list[str] = []
    dropped_doc = False
    kept = []
    for element in elements:
        element_id = str(element.get("id", ""))
        if any(element_id.startswith(d + ".") or element_id.startswith(d + ":")
               for d in dropped):
            continue
        if set(element) <= _DOC_ONLY:
            dropped_doc = True
            continue
        profiles = [p for t in element.get("type", ()) for p in t.get("profile", ())]
        if profiles and not all(p.split("|")[0] in known for p in profiles):
            dropped.append(element_id)
            continue
        kept.append(element)
    if not dropped and not dropped_doc:
        return sd
    out = copy.deepcopy(sd)
    root = str(sd.get("type"))
    out["differential"]["element"] = copy.deepcopy(kept) or [{"id": root, "path": root}]
    return out


def _expression(root: str, loc: tuple[Any, ...], resource: Mapping[str, Any]) -> str:
    """FHIRPath for a pydantic error location (drops the ``.value`` of primitives)."""
    parts = [root]
    current: Any = resource
    for index, segment in enumerate(loc):
        if isinstance(segment, int):
            parts[-1] = f"{parts[-1]}[{segment}]"
            current = current[segment] if isinstance(current, list) and \
                len(current) > segment else None
            continue
        name = str(segment)
        if name == "value" and index == len(loc) - 1 and not isinstance(current, Mapping):
            break
        if isinstance(current, Mapping) and name not in current and name == "value":
            break  # fhircraft's primitive wrapper
        parts.append(name)
        current = current.get(name) if isinstance(current, Mapping) else None
    return ".".join(parts)


class Validator:
    """Validates resources and bundles; build once, reuse (profile models are cached)."""

    def __init__(self, profiles: ProfileSet | None = None, *, by_type: bool = True) -> None:
        from fhircraft import FHIRModelFactory, override_config

        self.profiles = profiles if profiles is not None else default_profiles()
        self.by_type = by_type
        self._factory = FHIRModelFactory("R4")
        self._factory.disable_internet_access()
        self._models: dict[str, type[BaseModel]] = {}
        known = set(self.profiles.structure_definitions)
        # Our StructureDefinitions are checked by the tests; skipping fhircraft's invariant
        # checks of them here saves seconds at start-up.
        with warnings.catch_warnings(), override_config(validation_mode="skip"):
            warnings.simplefilter("ignore")
            known |= set(self._factory.list_registered_definitions())
            for sd in self.profiles.structure_definitions.values():
                self._factory.register(_prune(sd, known))

    # -- models -----------------------------------------------------------------------------

    def _model(self, url: str) -> type[BaseModel]:
        model = self._models.get(url)
        if model is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if url.startswith(R4_BASE):
                    from fhircraft.fhir.resources.datatypes import get_fhir_type

                    model = get_fhir_type(url[len(R4_BASE):], "R4")
                else:
                    model = self._factory.build(canonical_url=url)
            self._models[url] = model
        return model

    def applicable_profiles(self, resource: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """``(profiles to check, claimed profiles not known here)`` for a resource."""
        rtype = str(resource.get("resourceType"))
        claimed = (resource.get("meta") or {}).get("profile") or []
        urls: list[str] = []
        unknown: list[str] = []
        for raw in claimed if isinstance(claimed, list) else []:
            url = str(raw).split("|", 1)[0]
            sd = self.profiles.structure_definition(url)
            if sd is None or sd.get("type") != rtype:
                unknown.append(str(raw))
            elif url not in urls:
                urls.append(url)
        if self.by_type:
            own = self.profiles.project_profiles(rtype)
            if len(own) == 1 and own[0] not in urls:
                urls.append(own[0])
        return urls, unknown

    def warm_up(self, *resource_types: str) -> None:
        """Build the models for these types now (the project's profiles and the R4 bases)."""
        for rtype in resource_types:
            self._model(R4_BASE + rtype)
            for url in self.profiles.project_profiles(rtype):
                self._model(url)

    # -- validation -------------------------------------------------------------------------

    def validate(self, resource: dict[str, Any], *, location: Location | None = None
                 ) -> list[Issue]:
        """Every problem found in one resource (a Bundle: its entries too); [] when valid.

        Issues of severity ``warning`` (unknown profile or Questionnaire) do not make a
        resource invalid; see :func:`has_errors`.
        """
        if isinstance(resource, Mapping) and resource.get("resourceType") == "Bundle":
            return self.validate_bundle(resource, location=location)
        return self._validate(resource, "", location)

    def validate_bundle(self, bundle: dict[str, Any], *, location: Location | None = None
                        ) -> list[Issue]:
        """The Bundle, each ``entry.resource``, and that in-bundle references resolve."""
        if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
            return [self._issue("not a Bundle", "structure", "Bundle", NOT_A_RESOURCE,
                                location)]
        issues = self._validate(bundle, "", location)
        for index, entry in enumerate(bundle.get("entry") or ()):
            if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping):
                issues.extend(self._validate(entry["resource"],
                                             f"Bundle.entry[{index}].resource", location))
        issues.extend(self._locate(_checks.check_references(bundle), location))
        return issues

    def _validate(self, resource: Any, prefix: str, location: Location | None) -> list[Issue]:
        rtype = resource.get("resourceType") if isinstance(resource, Mapping) else None
        if not isinstance(rtype, str) or not defs.is_resource_type(rtype):
            return [self._issue("not an R4 resource: resourceType is missing or unknown",
                                "structure", f"{prefix}.resourceType" if prefix
                                else "resourceType", NOT_A_RESOURCE, location)]
        expr = prefix or rtype
        urls, unknown = self.applicable_profiles(resource)
        issues = [
            self._issue(f"profile {url} is not known here and was not checked",
                        "not-supported", f"{expr}.meta.profile", UNKNOWN_PROFILE, location,
                        severity="warning")
            for url in unknown
        ]
        shell = {k: v for k, v in resource.items() if k != "contained"}
        nested: list[tuple[str, Mapping[str, Any]]] = [
            (f"{expr}.contained[{i}]", c) for i, c in enumerate(resource.get("contained") or ())
            if isinstance(c, Mapping)
        ]
        if rtype == "Bundle":
            shell["entry"] = [
                {k: v for k, v in e.items() if k != "resource"} if isinstance(e, Mapping) else e
                for e in shell.get("entry") or ()
            ] if isinstance(shell.get("entry"), list) else shell.get("entry")
            if shell.get("entry") is None:
                shell.pop("entry", None)
        seen: set[tuple[str | None, str]] = set()
        for url in urls or [R4_BASE + rtype]:
            for issue in self._structural(url, shell, expr, location):
                key = (issue.expression, issue.diagnostics)
                if key not in seen:
                    seen.add(key)
                    issues.append(issue)
        issues.extend(self._locate(_checks.check_instance(self.profiles, shell, urls, expr),
                                   location))
        if rtype == "QuestionnaireResponse":
            issues.extend(self._locate(_checks.check_response(self.profiles, resource, expr),
                                       location))
        for nested_expr, item in nested:
            issues.extend(self._validate(item, nested_expr, location))
        return issues

    def _structural(self, url: str, resource: Mapping[str, Any], expr: str,
                    location: Location | None) -> list[Issue]:
        model = self._model(url)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.model_validate(resource)
        except ValidationError as exc:
            return [self._from_pydantic(err, resource, expr, url, location)
                    for err in exc.errors(include_url=False, include_input=False)]
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            return [self._issue(f"could not be checked against {url}: {type(exc).__name__}",
                                "processing", expr, STRUCTURE, location)]
        return []

    def _from_pydantic(self, err: Any, resource: Mapping[str, Any], expr: str, url: str,
                       location: Location | None) -> Issue:
        kind = str(err.get("type", ""))
        message = str(err.get("msg", "")).replace("\n", " ")
        loc = tuple(err.get("loc", ()))
        expression = _expression(expr, loc, resource)
        where = "" if url.startswith(R4_BASE) else f" (profile {url.rsplit('/', 1)[-1]})"
        code, error_code = "structure", STRUCTURE
        if kind == "missing":
            message, code = "required element is missing", "required"
        elif kind == "extra_forbidden":
            message = "element is not defined in R4 here"
        elif kind == "fhir_pattern_violation":
            message, code = "value does not match the fixed/pattern value", "value"
        elif kind == "fhir_type_choice_violation":
            found = _CHOICE_RE.search(message)
            if found:
                expression = f"{expression}.{found.group(1)}[x]"
            message = "choice element has a missing or wrong type"
        elif kind == "fhir_invariant_violation":
            code, error_code = "invariant", INVARIANT
        elif "type" in kind or "pattern" in kind or kind == "value_error":
            message, code = f"invalid value ({message.split(',')[0]})", "value"
            if "Invalid resourceType" in str(err.get("msg", "")):
                message = "resourceType does not match the profile's type"
        return self._issue(message + where, code, expression, error_code, location)

    @staticmethod
    def _issue(message: str, code: str, expression: str, error_code: str,
               location: Location | None, severity: str = "error") -> Issue:
        return Issue(diagnostics=message, code=code, expression=expression,
                     error_code=error_code, location=location,
                     severity="warning" if severity == "warning" else "error")

    @staticmethod
    def _locate(issues: list[Issue], location: Location | None) -> list[Issue]:
        if location is None:
            return issues
        return [Issue(diagnostics=i.diagnostics, code=i.code, severity=i.severity,
                      location=location, expression=i.expression, error_code=i.error_code)
                for i in issues]


def has_errors(issues: list[Issue]) -> bool:
    """True when any issue is an error (warnings alone leave a resource valid)."""
    return any(issue.severity in ("error", "fatal") for issue in issues)


@cache
def default_validator() -> Validator:
    """One Validator over the shipped ``profiles/``, built on first use and reused."""
    return Validator()


__all__ = ["Validator", "default_validator", "has_errors"]
