"""Instance checks fhircraft does not make: required code bindings, real calendar dates,
QuestionnaireResponse answers against the shipped Questionnaire, and in-bundle references.

A choice question whose answerOptions are a scored answer set of ``instruments.yaml`` also
accepts that set's input-only aliases (``frequency_input_aliases``: LA18938-3 "More days than
not", DOMAIN.md), which the scoring reads too; the emitted Questionnaires never offer them.

Each check walks a resource's JSON along the R4 element model (:mod:`fhir_iapt.fhir._r4defs`),
with the bindings of the profiles that apply laid over the R4 ones, and returns
:class:`~fhir_iapt.errors.Issue` objects whose ``expression`` is the FHIRPath of the element.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from functools import cache
from typing import Any

from fhir_iapt.errors import Issue
from fhir_iapt.fhir import _r4defs as defs
from fhir_iapt.fhir.profiles import ProfileSet
from fhir_iapt.scoring.instruments import instrument_specs

BAD_CODE = "FI402"
BAD_ANSWER = "FI403"
UNRESOLVED = "FI404"
UNKNOWN_QUESTIONNAIRE = "FI408"
BAD_PRIMITIVE = "FI401"

_DATE_RE = re.compile(r"^(\d{4})(-(\d{2})(-(\d{2}))?)?$")
_DATETIME_RE = re.compile(
    r"^(\d{4})(-(\d{2})(-(\d{2})(T(\d{2}):(\d{2})(:(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_ANSWER_KEY = {
    "choice": "valueCoding", "open-choice": "valueCoding", "integer": "valueInteger",
    "decimal": "valueDecimal", "string": "valueString", "text": "valueString",
    "boolean": "valueBoolean", "date": "valueDate", "dateTime": "valueDateTime",
    "time": "valueTime", "url": "valueUri", "attachment": "valueAttachment",
    "reference": "valueReference", "quantity": "valueQuantity",
}


def profile_bindings(profiles: ProfileSet, urls: list[str]) -> dict[str, str]:
    """Required bindings the profiles add: element path -> ValueSet URL (slices ignored)."""
    out: dict[str, str] = {}
    for url in urls:
        for sd in profiles.profile_chain(url):
            for element in (sd.get("differential") or {}).get("element", ()):
                binding = element.get("binding") or {}
                element_id = str(element.get("id", element.get("path", "")))
                if binding.get("strength") == "required" and binding.get("valueSet") \
                        and ":" not in element_id:
                    out[str(element["path"])] = str(binding["valueSet"]).split("|", 1)[0]
    return out


def _valid_calendar(text: str, kind: str) -> bool:
    match = (_DATE_RE if kind == "date" else _DATETIME_RE).match(text)
    if match is None:
        return False
    year, month, day = match.group(1), match.group(3), match.group(5)
    try:
        if day is not None:
            date(int(year), int(month), int(day))
        elif month is not None and not 1 <= int(month) <= 12:
            return False
        if kind != "date" and match.group(7) is not None:
            datetime(2000, 1, 1, int(match.group(7)), int(match.group(8)),
                     int(match.group(10) or 0))
            if kind == "instant" and (match.group(10) is None or match.group(12) is None):
                return False
        elif kind == "instant":
            return False
    except ValueError:
        return False
    return True


class _Walker:
    def __init__(self, profiles: ProfileSet, overlay: Mapping[str, str]) -> None:
        self.profiles = profiles
        self.overlay = overlay
        self.issues: list[Issue] = []

    def resource(self, resource: Mapping[str, Any], expr: str) -> None:
        rtype = str(resource.get("resourceType"))
        if not defs.is_resource_type(rtype):
            return
        self.children(rtype, rtype, rtype, resource, expr or rtype, root=True)

    def children(self, type_name: str, tpath: str, rpath: str, obj: Mapping[str, Any],
                 expr: str, *, root: bool = False) -> None:
        elements = defs.children_of(type_name, tpath)
        for key, value in obj.items():
            if key.startswith("_") or (root and key == "resourceType"):
                continue
            match = defs.match_key(elements, key)
            if match is None:
                continue  # unknown elements are fhircraft's to report
            element, type_code = match
            element_rpath = f"{rpath}.{element.path.rsplit('.', 1)[-1]}"
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                item_expr = f"{expr}.{key}[{index}]" if element.repeats else f"{expr}.{key}"
                self.element(type_name, element, type_code, element_rpath, item, item_expr)

    def element(self, type_name: str, element: defs.ElementDef, type_code: str, rpath: str,
                value: Any, expr: str) -> None:
        value_set = self.overlay.get(rpath)
        if value_set is None and element.binding_strength == "required":
            value_set = element.binding_value_set
        if value_set is not None and type_code in ("code", "Coding", "CodeableConcept"):
            self.binding(value_set, type_code, value, expr)
        if type_code in ("date", "dateTime", "instant") and isinstance(value, str) \
                and not _valid_calendar(value, type_code):
            self.issues.append(Issue(
                diagnostics=f"not a valid FHIR {type_code} (format or calendar date)",
                code="value", expression=expr, error_code=BAD_PRIMITIVE))
        if type_code == "Resource" and isinstance(value, Mapping):
            self.resource(value, expr)
        elif type_code == "Extension" and isinstance(value, Mapping) \
                and self.profiles.structure_definition(str(value.get("url"))) is not None:
            # A known extension: its own definition's bindings apply to its value.
            inner = _Walker(self.profiles,
                            profile_bindings(self.profiles, [str(value.get("url"))]))
            inner.children("Extension", "Extension", "Extension", value, expr)
            self.issues.extend(inner.issues)
        elif isinstance(value, Mapping) and not defs.is_primitive(type_code):
            sub_type, sub_path = defs.type_for_children(element, type_code)
            self.children(sub_type or type_name, sub_path, rpath, value, expr)

    def binding(self, value_set: str, type_code: str, value: Any, expr: str) -> None:
        allowed = self.profiles.value_set_codes(value_set)
        if allowed is None:
            return  # not expandable here (external terminology): not checked
        if type_code == "code":
            if isinstance(value, str) and not any(code == value for _, code in allowed):
                self.issues.append(Issue(
                    diagnostics=f"code is not in the required value set {value_set}",
                    code="code-invalid", expression=expr, error_code=BAD_CODE))
            return
        codings = [value] if type_code == "Coding" else (
            value.get("coding", []) if isinstance(value, Mapping) else [])
        if not isinstance(codings, list):
            return
        good = [c for c in codings if isinstance(c, Mapping)
                and (str(c.get("system")), str(c.get("code"))) in allowed]
        if not good:
            self.issues.append(Issue(
                diagnostics=f"no coding from the required value set {value_set}",
                code="code-invalid", expression=expr, error_code=BAD_CODE))


def check_instance(profiles: ProfileSet, resource: Mapping[str, Any], profile_urls: list[str],
                   expr: str) -> list[Issue]:
    """Required bindings (R4 + the profiles') and calendar validity of dates."""
    walker = _Walker(profiles, profile_bindings(profiles, profile_urls))
    walker.resource(resource, expr)
    return walker.issues


# --------------------------------------------------------------------------- questionnaires


def _questionnaire_items(items: Any) -> Iterator[Mapping[str, Any]]:
    for item in items or ():
        if isinstance(item, Mapping):
            yield item
            yield from _questionnaire_items(item.get("item"))


@cache
def _input_aliases() -> Mapping[frozenset[str], frozenset[str]]:
    """A scored item's answer codes -> the codes ``instruments.yaml`` accepts on input only."""
    out: dict[frozenset[str], frozenset[str]] = {}
    for spec in instrument_specs().values():
        aliases = frozenset(a.code for a in spec.input_aliases)
        for item in spec.items if aliases else ():
            key = frozenset(a.code for a in item.answers)
            out[key] = out.get(key, frozenset()) | aliases
    return out


def _with_input_aliases(options: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``options`` plus the input aliases of the answer set they are (same system), if any."""
    codings = [c for c in (o.get("valueCoding") for o in options) if isinstance(c, Mapping)]
    if not codings or len(codings) != len(options):
        return options
    aliases = _input_aliases().get(frozenset(str(c.get("code")) for c in codings))
    systems = {c.get("system") for c in codings}
    if not aliases or len(systems) != 1:
        return options
    system = systems.pop()
    extra: list[Mapping[str, Any]] = [
        {"valueCoding": {"code": code} if system is None else {"system": system, "code": code}}
        for code in sorted(aliases)]
    return [*options, *extra]


def _option_allows(options: list[Mapping[str, Any]], coding: Mapping[str, Any]) -> bool:
    for option in options:
        allowed = option.get("valueCoding")
        if not isinstance(allowed, Mapping) or allowed.get("code") != coding.get("code"):
            continue
        if allowed.get("system") is None or allowed.get("system") == coding.get("system"):
            return True
    return False


def check_response(profiles: ProfileSet, response: Mapping[str, Any], expr: str
                   ) -> list[Issue]:
    """Check a QuestionnaireResponse's items and answers against its Questionnaire."""
    canonical = response.get("questionnaire")
    if not isinstance(canonical, str):
        return []
    questionnaire = profiles.questionnaire(canonical)
    if questionnaire is None:
        return [Issue(diagnostics="the Questionnaire is not known here; answers not checked",
                      code="not-found", severity="warning",
                      expression=f"{expr}.questionnaire", error_code=UNKNOWN_QUESTIONNAIRE)]
    by_link = {str(i.get("linkId")): i for i in _questionnaire_items(questionnaire.get("item"))}
    issues: list[Issue] = []
    answered: set[str] = set()
    _check_items(response.get("item"), by_link, expr, issues, answered)
    if response.get("status") == "completed":
        for link_id, item in by_link.items():
            if item.get("required") and link_id not in answered and item.get("type") != "group":
                issues.append(Issue(
                    diagnostics=f"required question {link_id} is not answered",
                    code="required", expression=f"{expr}.item",
                    error_code=BAD_ANSWER))
    return issues


def _check_items(items: Any, by_link: Mapping[str, Mapping[str, Any]], expr: str,
                 issues: list[Issue], answered: set[str]) -> None:
    for index, item in enumerate(items or ()):
        if not isinstance(item, Mapping):
            continue
        item_expr = f"{expr}.item[{index}]"
        link_id = str(item.get("linkId"))
        question = by_link.get(link_id)
        if question is None:
            issues.append(Issue(diagnostics="linkId is not an item of the Questionnaire",
                                code="value", expression=f"{item_expr}.linkId",
                                error_code=BAD_ANSWER))
            continue
        answers = [a for a in item.get("answer") or () if isinstance(a, Mapping)]
        if answers:
            answered.add(link_id)
        if len(answers) > 1 and not question.get("repeats", False):
            issues.append(Issue(diagnostics="the question does not repeat: one answer only",
                                code="value", expression=f"{item_expr}.answer",
                                error_code=BAD_ANSWER))
        key = _ANSWER_KEY.get(str(question.get("type")))
        options = _with_input_aliases(
            [o for o in question.get("answerOption") or () if isinstance(o, Mapping)])
        for a_index, answer in enumerate(answers):
            a_expr = f"{item_expr}.answer[{a_index}]"
            value_keys = [k for k in answer if k.startswith("value")]
            if key is not None and value_keys and value_keys != [key] and not (
                    question.get("type") == "open-choice" and value_keys == ["valueString"]):
                issues.append(Issue(
                    diagnostics=f"answer type {value_keys[0]} does not fit a "
                                f"{question.get('type')} question", code="value",
                    expression=f"{a_expr}.{value_keys[0]}", error_code=BAD_ANSWER))
                continue
            coding = answer.get("valueCoding")
            if options and isinstance(coding, Mapping) and not _option_allows(options, coding):
                issues.append(Issue(
                    diagnostics="answer is not one of the question's answerOptions",
                    code="code-invalid", expression=f"{a_expr}.valueCoding",
                    error_code=BAD_ANSWER))
            _check_items(answer.get("item"), by_link, a_expr, issues, answered)
        _check_items(item.get("item"), by_link, item_expr, issues, answered)


# --------------------------------------------------------------------------- references


def _references(value: Any, expr: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item, f"{expr}.reference"
            elif key not in ("resourceType",) and not key.startswith("_"):
                yield from _references(item, f"{expr}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _references(item, f"{expr}[{index}]")


def check_references(bundle: Mapping[str, Any]) -> list[Issue]:
    """Every ``urn:uuid:``/``urn:oid:`` reference and ``#id`` names something in the bundle."""
    entries = [e for e in bundle.get("entry") or () if isinstance(e, Mapping)]
    full_urls = {str(e["fullUrl"]) for e in entries if isinstance(e.get("fullUrl"), str)}
    issues: list[Issue] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            if full_url in seen:
                issues.append(Issue(diagnostics="fullUrl is used by more than one entry",
                                    code="invalid", expression=f"Bundle.entry[{index}].fullUrl",
                                    error_code=UNRESOLVED))
            seen.add(full_url)
        resource = entry.get("resource")
        if not isinstance(resource, Mapping):
            continue
        contained = {f"#{c.get('id')}" for c in resource.get("contained") or ()
                     if isinstance(c, Mapping)}
        expr = f"Bundle.entry[{index}].resource"
        for ref, ref_expr in _references(resource, expr):
            if ref.startswith(("urn:uuid:", "urn:oid:")) and ref not in full_urls:
                issues.append(Issue(diagnostics="reference does not resolve to a bundle entry",
                                    code="not-found", expression=ref_expr,
                                    error_code=UNRESOLVED))
            elif ref.startswith("#") and ref != "#" and ref not in contained:
                issues.append(Issue(diagnostics="reference to a contained resource that is "
                                    "not there", code="not-found", expression=ref_expr,
                                    error_code=UNRESOLVED))
    return issues


__all__ = ["check_instance", "check_references", "check_response", "profile_bindings"]
