"""Checks beyond one resource's structure: QuestionnaireResponse answers against the shipped
Questionnaire, a MeasureReport against the shipped Measure it reports, and references inside a
Bundle.

A choice question whose answerOptions are a scored answer set of ``instruments.yaml`` also
accepts that set's input-only aliases (``frequency_input_aliases``: LA18938-3 "More days than
not", DOMAIN.md), which the scoring reads too; the emitted Questionnaires never offer them.

Each check returns :class:`~fhir_iapt.errors.Issue` objects whose ``expression`` is the
FHIRPath of the element. The structure, bindings, dates and invariants of a resource are
:mod:`fhir_iapt.fhir.validate`'s walk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from fhir_iapt.errors import Issue
from fhir_iapt.fhir.profiles import ProfileSet
from fhir_iapt.scoring.instruments import instrument_specs

BAD_ANSWER = "FI403"
UNRESOLVED = "FI404"
UNKNOWN_QUESTIONNAIRE = "FI408"
UNKNOWN_MEASURE = "FI410"
NOT_THE_MEASURE = "FI411"
_ANSWER_KEY = {
    "choice": "valueCoding",
    "open-choice": "valueCoding",
    "integer": "valueInteger",
    "decimal": "valueDecimal",
    "string": "valueString",
    "text": "valueString",
    "boolean": "valueBoolean",
    "date": "valueDate",
    "dateTime": "valueDateTime",
    "time": "valueTime",
    "url": "valueUri",
    "attachment": "valueAttachment",
    "reference": "valueReference",
    "quantity": "valueQuantity",
}


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
        for code in sorted(aliases)
    ]
    return [*options, *extra]


def _option_allows(options: list[Mapping[str, Any]], coding: Mapping[str, Any]) -> bool:
    for option in options:
        allowed = option.get("valueCoding")
        if not isinstance(allowed, Mapping) or allowed.get("code") != coding.get("code"):
            continue
        if allowed.get("system") is None or allowed.get("system") == coding.get("system"):
            return True
    return False


def check_response(profiles: ProfileSet, response: Mapping[str, Any], expr: str) -> list[Issue]:
    """Check a QuestionnaireResponse's items and answers against its Questionnaire."""
    canonical = response.get("questionnaire")
    if not isinstance(canonical, str):
        return []
    questionnaire = profiles.questionnaire(canonical)
    if questionnaire is None:
        return [
            Issue(
                diagnostics="the Questionnaire is not known here; answers not checked",
                code="not-found",
                severity="warning",
                expression=f"{expr}.questionnaire",
                error_code=UNKNOWN_QUESTIONNAIRE,
            )
        ]
    by_link = {str(i.get("linkId")): i for i in _questionnaire_items(questionnaire.get("item"))}
    issues: list[Issue] = []
    answered: set[str] = set()
    _check_items(response.get("item"), by_link, expr, issues, answered)
    if response.get("status") == "completed":
        for link_id, item in by_link.items():
            if item.get("required") and link_id not in answered and item.get("type") != "group":
                issues.append(
                    Issue(
                        diagnostics=f"required question {link_id} is not answered",
                        code="required",
                        expression=f"{expr}.item",
                        error_code=BAD_ANSWER,
                    )
                )
    return issues


def _check_items(
    items: Any,
    by_link: Mapping[str, Mapping[str, Any]],
    expr: str,
    issues: list[Issue],
    answered: set[str],
) -> None:
    for index, item in enumerate(items or ()):
        if not isinstance(item, Mapping):
            continue
        item_expr = f"{expr}.item[{index}]"
        link_id = str(item.get("linkId"))
        question = by_link.get(link_id)
        if question is None:
            issues.append(
                Issue(
                    diagnostics="linkId is not an item of the Questionnaire",
                    code="value",
                    expression=f"{item_expr}.linkId",
                    error_code=BAD_ANSWER,
                )
            )
            continue
        answers = [a for a in item.get("answer") or () if isinstance(a, Mapping)]
        if answers:
            answered.add(link_id)
        if len(answers) > 1 and not question.get("repeats", False):
            issues.append(
                Issue(
                    diagnostics="the question does not repeat: one answer only",
                    code="value",
                    expression=f"{item_expr}.answer",
                    error_code=BAD_ANSWER,
                )
            )
        key = _ANSWER_KEY.get(str(question.get("type")))
        options = _with_input_aliases(
            [o for o in question.get("answerOption") or () if isinstance(o, Mapping)]
        )
        for a_index, answer in enumerate(answers):
            a_expr = f"{item_expr}.answer[{a_index}]"
            value_keys = [k for k in answer if k.startswith("value")]
            if (
                key is not None
                and value_keys
                and value_keys != [key]
                and not (question.get("type") == "open-choice" and value_keys == ["valueString"])
            ):
                issues.append(
                    Issue(
                        diagnostics=f"answer type {value_keys[0]} does not fit a "
                        f"{question.get('type')} question",
                        code="value",
                        expression=f"{a_expr}.{value_keys[0]}",
                        error_code=BAD_ANSWER,
                    )
                )
                continue
            coding = answer.get("valueCoding")
            if options and isinstance(coding, Mapping) and not _option_allows(options, coding):
                issues.append(
                    Issue(
                        diagnostics="answer is not one of the question's answerOptions",
                        code="code-invalid",
                        expression=f"{a_expr}.valueCoding",
                        error_code=BAD_ANSWER,
                    )
                )
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
    """Every ``urn:uuid:``/``urn:oid:`` reference names an entry; no fullUrl is used twice.

    ``#id`` references (ref-1) are checked by the validator's walk, in and out of Bundles.
    """
    entries = [e for e in bundle.get("entry") or () if isinstance(e, Mapping)]
    full_urls = {str(e["fullUrl"]) for e in entries if isinstance(e.get("fullUrl"), str)}
    issues: list[Issue] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            if full_url in seen:
                issues.append(
                    Issue(
                        diagnostics="fullUrl is used by more than one entry",
                        code="invalid",
                        expression=f"Bundle.entry[{index}].fullUrl",
                        error_code=UNRESOLVED,
                    )
                )
            seen.add(full_url)
        resource = entry.get("resource")
        if not isinstance(resource, Mapping):
            continue
        expr = f"Bundle.entry[{index}].resource"
        for ref, ref_expr in _references(resource, expr):
            if ref.startswith(("urn:uuid:", "urn:oid:")) and ref not in full_urls:
                issues.append(
                    Issue(
                        diagnostics="reference does not resolve to a bundle entry",
                        code="not-found",
                        expression=ref_expr,
                        error_code=UNRESOLVED,
                    )
                )
    return issues


# --------------------------------------------------------------------------- measure reports


def _codes(concept: Any) -> set[tuple[str, str]]:
    """The (system, code) pairs of a CodeableConcept."""
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return {
        (str(c.get("system")), str(c.get("code")))
        for c in (codings if isinstance(codings, list) else ())
        if isinstance(c, Mapping) and c.get("code") is not None
    }


def _measure_group(groups: list[Mapping[str, Any]], code: Any) -> Mapping[str, Any] | None:
    """The Measure group a report group is about: the one sharing its code (a Measure with a
    single uncoded group: that one)."""
    wanted = _codes(code)
    if not wanted:
        return groups[0] if len(groups) == 1 and not _codes(groups[0].get("code")) else None
    return next((g for g in groups if _codes(g.get("code")) & wanted), None)


def _measure_issue(diagnostics: str, expression: str) -> Issue:
    return Issue(
        diagnostics=diagnostics, code="value", expression=expression, error_code=NOT_THE_MEASURE
    )


def check_measure_report(profiles: ProfileSet, report: Mapping[str, Any], expr: str) -> list[Issue]:
    """Check a MeasureReport against the shipped Measure it names: each group is one of the
    Measure's (by code), reports exactly that group's populations, and carries a score only
    when the Measure scores (a proportion's between 0 and 1)."""
    canonical = report.get("measure")
    if not isinstance(canonical, str):
        return []
    measure = profiles.measure(canonical)
    if measure is None:
        return [
            Issue(
                diagnostics="the Measure is not known here (or not in that version); groups "
                "not checked",
                code="not-found",
                severity="warning",
                expression=f"{expr}.measure",
                error_code=UNKNOWN_MEASURE,
            )
        ]
    groups = [g for g in measure.get("group") or () if isinstance(g, Mapping)]
    scoring = {code for _, code in _codes(measure.get("scoring"))}
    issues: list[Issue] = []
    for index, group in enumerate(report.get("group") or ()):
        if not isinstance(group, Mapping):
            continue
        at = f"{expr}.group[{index}]"
        defined = _measure_group(groups, group.get("code"))
        if defined is None:
            issues.append(_measure_issue("the group's code is not a group of the Measure", at))
            continue
        allowed = {
            pair
            for p in defined.get("population") or ()
            if isinstance(p, Mapping)
            for pair in _codes(p.get("code"))
        }
        seen: set[tuple[str, str]] = set()
        for p_index, population in enumerate(group.get("population") or ()):
            codes = _codes(population.get("code")) if isinstance(population, Mapping) else set()
            if not codes & allowed:
                issues.append(
                    _measure_issue(
                        "the population is not one of the Measure group's",
                        f"{at}.population[{p_index}].code",
                    )
                )
            elif codes & seen:
                issues.append(
                    _measure_issue(
                        "the population is reported twice", f"{at}.population[{p_index}].code"
                    )
                )
            seen |= codes & allowed
        missing = sorted(code for _, code in allowed - seen)
        if missing:
            issues.append(
                _measure_issue(
                    f"the Measure group's population(s) {', '.join(missing)} are not reported",
                    f"{at}.population",
                )
            )
        score = group.get("measureScore")
        if score is not None and scoring & {"cohort"}:
            issues.append(_measure_issue("a cohort Measure has no score", f"{at}.measureScore"))
        value = score.get("value") if isinstance(score, Mapping) else None
        if "proportion" in scoring and isinstance(value, int | float) and not 0 <= value <= 1:
            issues.append(
                _measure_issue(
                    "a proportion's score must be between 0 and 1", f"{at}.measureScore.value"
                )
            )
    return issues


__all__ = ["check_measure_report", "check_references", "check_response"]
