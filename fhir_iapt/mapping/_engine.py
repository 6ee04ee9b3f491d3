"""Apply a compiled mapping to one source record: the per-record hot path.

Collects *every* problem in the record (never stops at the first) and raises one
:class:`~fhir_iapt.errors.RecordError` carrying them all, each located by file, row, line,
element and source field. Only a record with no problems reaches the target's factory. Error
codes::

    FI301  a value breaks its field's rule (type, format, range, check digit, unknown term)
    FI302  a required field is blank
    FI303  a screening instrument is partly answered or has an impossible item
    FI304  the record's structure is not what the mapping expects (wrong JSON type, repeats)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from itertools import repeat
from typing import Any, TypeVar

from fhir_iapt.errors import Issue, Location, RecordError
from fhir_iapt.mapping._fast import DEFER, Verdict, fast_answers, fast_table_answers
from fhir_iapt.mapping._model import (
    AnswerPaths,
    FieldSpec,
    FixedScreening,
    GroupSpec,
    InstrumentShape,
    Mapping,
    ScreeningSpec,
)
from fhir_iapt.mapping._paths import SourcePath
from fhir_iapt.mapping._types import Invalid
from fhir_iapt.sources import SourceRecord

R = TypeVar("R")
_SCORE = re.compile(r"[0-9]+")  # ASCII digits only: int() also reads "\u0663"
_ABSENT = object()


def _issue(
    message: str, at: Location, path: SourcePath | None, data: Any, *, code: str, error_code: str
) -> Issue:
    if path is not None:
        line = path.line(data)
        at = replace(at, field=path.text, line=line if line is not None else at.line)
    return Issue(message, code=code, location=at, error_code=error_code)


def _raw(path: SourcePath, data: Any, at: Location, issues: list[Issue]) -> Any:
    """The source value, ``None`` when blank, ``_ABSENT`` after recording a structure issue."""
    try:
        raw = path.get(data)
    except Invalid as exc:
        issues.append(_issue(exc.message, at, path, data, code=exc.code, error_code="FI304"))
        return _ABSENT
    if raw.__class__ is str:
        raw = raw.strip()
        return raw or None
    if raw.__class__ is list and not raw:
        return None
    return raw


def _convert(spec: FieldSpec, raw: Any, data: Any, at: Location, issues: list[Issue]) -> Any:
    try:
        return spec.convert(raw)
    except Invalid as exc:
        issues.append(_issue(exc.message, at, spec.path, data, code=exc.code, error_code="FI301"))
        return _ABSENT


def _store(spec: FieldSpec, value: Any, out: dict[str, Any]) -> None:
    if spec.display_to is not None:
        value, display = value
        if display is not None:
            out[spec.display_to] = display
    if spec.target[0] != "_":
        out[spec.target] = value


def _fields(
    specs: tuple[FieldSpec, ...],
    data: Any,
    at: Location,
    out: dict[str, Any],
    issues: list[Issue],
) -> None:
    """Fill ``out`` from ``specs`` (the hot loop: helpers inlined on purpose)."""
    for spec in specs:
        try:
            raw = spec.get(data)
        except Invalid as exc:
            issues.append(
                _issue(exc.message, at, spec.path, data, code=exc.code, error_code="FI304")
            )
            continue
        if raw.__class__ is str:
            raw = raw.strip()
            blank = not raw
        else:
            blank = raw is None or (raw.__class__ is list and not raw)
        if blank:
            if spec.required:
                issues.append(
                    _issue(
                        "is required but blank",
                        at,
                        spec.path,
                        data,
                        code="required",
                        error_code="FI302",
                    )
                )
            continue
        try:
            value = spec.convert(raw)
        except Invalid as exc:
            issues.append(
                _issue(exc.message, at, spec.path, data, code=exc.code, error_code="FI301")
            )
            continue
        if spec.display_to is not None:
            value, display = value
            if display is not None:
                out[spec.display_to] = display
        if spec.keep:
            out[spec.target] = value


def _item_at(at: Location, each: SourcePath, item: Any, index: int) -> Location:
    sourceline = getattr(item, "sourceline", None)
    if sourceline is not None:  # an XML element
        return replace(at, element=f"{at.element or ''}/{each.text}[{index + 1}]", line=sourceline)
    return replace(at, element=f"{at.element or '$'}.{each.text}[{index}]")


def _group(group: GroupSpec, data: Any, at: Location, issues: list[Issue]) -> list[dict[str, Any]]:
    todo: Iterable[tuple[Any, Location, tuple[FieldSpec, ...]]]
    if group.each is None:  # the record itself: one item per field set (``items:``)
        todo = zip(repeat(data), repeat(at), group.field_sets)
    else:
        try:
            items = group.each.items(data)
        except Invalid as exc:
            issues.append(
                _issue(exc.message, at, group.each, data, code=exc.code, error_code="FI304")
            )
            return []
        fields = group.fields
        todo = [(item, _item_at(at, group.each, item, i), fields) for i, item in enumerate(items)]
    out: list[dict[str, Any]] = []
    for item, where, specs in todo:
        raws = [_raw(spec.path, item, where, issues) for spec in specs]
        if all(raw is None for raw in raws) and not any(spec.required for spec in specs):
            continue
        values: dict[str, Any] = {}
        for spec, raw in zip(specs, raws, strict=True):
            if raw is None:
                if spec.required:
                    issues.append(
                        _issue(
                            "is required but blank",
                            where,
                            spec.path,
                            item,
                            code="required",
                            error_code="FI302",
                        )
                    )
            elif raw is not _ABSENT:
                value = _convert(spec, raw, item, where, issues)
                if value is not _ABSENT:
                    _store(spec, value, values)
        out.append(values)
    return out


def _score(raw: Any, shape: InstrumentShape, index: int) -> int | None:
    if shape.item_scores:  # answers looked up in tables (digits where an item has none)
        if raw.__class__ is str:
            return shape.item_scores[index].get(raw.casefold() if shape.casefold else raw)
        return shape.item_scores[index].get(raw) if raw.__class__ is int else None
    if not (raw.__class__ is int or (raw.__class__ is str and _SCORE.fullmatch(raw))):
        return None
    value = int(raw)
    return value if shape.low <= value <= shape.high else None


def _instrument(
    shape: InstrumentShape,
    raws: list[Any],
    labels: list[tuple[SourcePath | None, Any, Location]],
    at: Location,
    issues: list[Issue],
) -> tuple[int | None, ...] | None:
    """Check one instrument's item values; None when not done or rejected."""
    if all(raw is None for raw in raws):
        return None
    answers: list[int | None] = []
    ok = True
    for index, raw in enumerate(raws):
        path, data, where = labels[index]
        if raw is None:
            answers.append(None)
            if index < shape.scored:
                ok = False
                issues.append(
                    _issue(
                        f"{shape.name} item {index + 1} is blank while other items are answered"
                        " (a partly answered instrument is rejected)",
                        where,
                        path,
                        data,
                        code="required",
                        error_code="FI303",
                    )
                )
            continue
        score = _score(raw, shape, index)
        if score is None:
            ok = False
            rule = (
                shape.item_rules[index]
                if shape.item_rules
                else f"a score from {shape.low} to {shape.high}"
            )
            issues.append(
                _issue(
                    f"{shape.name} item {index + 1} is not {rule}",
                    where,
                    path,
                    data,
                    code="value",
                    error_code="FI303",
                )
            )
        answers.append(score)
    if not ok:
        return None
    if len(answers) > shape.scored and all(a is None for a in answers[shape.scored :]):
        answers = answers[: shape.scored]
    return tuple(answers)


def slow_answers(
    fixed: FixedScreening, data: Any, at: Location, issues: list[Issue]
) -> tuple[int | None, ...] | None:
    """One fixed instrument's answers, every problem reported; None when not done or rejected."""
    found = _fixed_answers(fixed.answers, fixed.shape, data, at, issues)
    if found is None:
        return None
    return _instrument(fixed.shape, found[0], found[1], at, issues)


def fixed_answers(
    fixed: FixedScreening, data: Any, at: Location, issues: list[Issue]
) -> tuple[int | None, ...] | None:
    """:func:`fast_answers` when it is sure, else :func:`slow_answers`: the same result."""
    get_all = fixed.answers.get_all
    if get_all is not None:
        try:
            cells = get_all(data)
        except Invalid:
            pass  # a structure problem: the slow path reports it
        else:
            fast: Verdict = fixed.fast(fixed.shape, cells)
            if fast is not DEFER:
                return fast
    return slow_answers(fixed, data, at, issues)


def _screening_date(spec: FieldSpec | None, data: Any, at: Location, issues: list[Issue]) -> Any:
    if spec is None:
        return None
    out: dict[str, Any] = {}
    _fields((spec,), data, at, out, issues)
    return out.get("date")


def _fixed_answers(
    answers: AnswerPaths, shape: InstrumentShape, data: Any, at: Location, issues: list[Issue]
) -> tuple[list[Any], list[tuple[SourcePath | None, Any, Location]]] | None:
    if answers.array is None:
        raws = [_raw(p, data, at, issues) for p in answers.per_item]
        if any(raw is _ABSENT for raw in raws):
            return None
        return raws, [(p, data, at) for p in answers.per_item]
    array = answers.array
    value = _raw(array, data, at, issues)
    if value is None or value is _ABSENT:
        return None
    if answers.split is not None:
        return _split_answers(answers.split, array, shape, value, data, at, issues)
    if value.__class__ is not list:
        issues.append(
            _issue(
                f"expected an array of {shape.name} item scores",
                at,
                array,
                data,
                code="structure",
                error_code="FI304",
            )
        )
        return None
    if not shape.scored <= len(value) <= shape.total:
        count = (
            f"{shape.scored}" if shape.scored == shape.total else f"{shape.scored} or {shape.total}"
        )
        issues.append(
            _issue(
                f"{shape.name} needs {count} item scores",
                at,
                array,
                data,
                code="structure",
                error_code="FI303",
            )
        )
        return None
    raws = [None if v is None or (v.__class__ is str and not v.strip()) else v for v in value]
    where = replace(at, field=array.text)
    return raws, [(None, data, where)] * len(raws)


def _split_answers(
    separator: str,
    path: SourcePath,
    shape: InstrumentShape,
    value: Any,
    data: Any,
    at: Location,
    issues: list[Issue],
) -> tuple[list[Any], list[tuple[SourcePath | None, Any, Location]]] | None:
    """The item answers of one value holding them all (``split:``), or None after an issue."""
    if value.__class__ is not str:
        issues.append(
            _issue(
                f"expected text holding the {shape.name} answers separated by {separator!r}",
                at,
                path,
                data,
                code="structure",
                error_code="FI304",
            )
        )
        return None
    pieces = value.split(separator)
    if not shape.scored <= len(pieces) <= shape.total:
        count = (
            f"{shape.scored}" if shape.scored == shape.total else f"{shape.scored} or {shape.total}"
        )
        issues.append(
            _issue(
                f"{shape.name} needs {count} answers separated by {separator!r}",
                at,
                path,
                data,
                code="structure",
                error_code="FI303",
            )
        )
        return None
    raws = [piece.strip() or None for piece in pieces]
    return raws, [(path, data, at)] * len(raws)


def _each_answers(
    answers: AnswerPaths,
    shape: InstrumentShape,
    element: Any,
    at: Location,
    issues: list[Issue],
) -> tuple[list[Any], list[tuple[SourcePath | None, Any, Location]]] | None:
    if answers.each is None or answers.item is None or answers.value is None:
        return None
    raws: list[Any] = [None] * shape.total
    labels: list[tuple[SourcePath | None, Any, Location]] = [(None, element, at)] * shape.total
    ok = True
    for answer in answers.each.items(element):
        where = replace(at, line=answer.sourceline or at.line)
        number = _raw(answers.item, answer, where, issues)
        index = int(number) - 1 if number.__class__ is str and _SCORE.fullmatch(number) else -1
        if not 0 <= index < shape.total:
            issues.append(
                _issue(
                    f"{shape.name} has no such item number",
                    where,
                    answers.item,
                    answer,
                    code="value",
                    error_code="FI303",
                )
            )
            ok = False
            continue
        if raws[index] is not None:
            issues.append(
                _issue(
                    f"{shape.name} item {index + 1} is answered twice",
                    where,
                    answers.item,
                    answer,
                    code="structure",
                    error_code="FI303",
                )
            )
            ok = False
            continue
        raws[index] = _raw(answers.value, answer, where, issues)
        labels[index] = (answers.value, answer, where)
    for index in range(shape.total):
        if labels[index][0] is None:
            labels[index] = (None, element, replace(at, field=f"item {index + 1}"))
    return (raws, labels) if ok else None


def _screenings(
    spec: ScreeningSpec, data: Any, at: Location, issues: list[Issue]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    shared_date: Any = _ABSENT
    for fixed in spec.fixed:
        answers = fixed_answers(fixed, data, at, issues)
        if answers is None:
            continue
        if fixed.date is not None:
            when = _screening_date(fixed.date, data, at, issues)
        else:
            if shared_date is _ABSENT:
                shared_date = _screening_date(spec.date, data, at, issues)
            when = shared_date
        out.append({"instrument": fixed.shape.name, "date": when, "answers": answers})
    if spec.each is None or spec.instrument is None or spec.answers is None:
        return out
    try:
        elements = spec.each.items(data)
    except Invalid as exc:
        issues.append(_issue(exc.message, at, spec.each, data, code=exc.code, error_code="FI304"))
        return out
    seen: set[str] = set()
    for index, element in enumerate(elements):
        where = _item_at(at, spec.each, element, index)
        named: dict[str, Any] = {}
        _fields((spec.instrument,), element, where, named, issues)
        name = named.get("instrument")
        if name is None:
            continue
        shape = spec.shapes.get(str(name))
        if shape is None or name in seen:
            problem = "is listed twice" if name in seen else "is not a known instrument"
            issues.append(
                _issue(
                    f"the instrument {problem}",
                    where,
                    spec.instrument.path,
                    element,
                    code="value",
                    error_code="FI303",
                )
            )
            continue
        seen.add(str(name))
        found = _each_answers(spec.answers, shape, element, where, issues)
        if found is None:
            continue
        answers = _instrument(shape, found[0], found[1], where, issues)
        if answers is not None:
            when = _screening_date(spec.date, element, where, issues)
            out.append({"instrument": shape.name, "date": when, "answers": answers})
    return out


def map_values(record: SourceRecord, mapping: Mapping[Any]) -> tuple[dict[str, Any], list[Issue]]:
    """The target values of ``record`` and every issue found (the factory is not called)."""
    data = record.data
    at = record.location
    issues: list[Issue] = []
    values: dict[str, Any] = dict(mapping.constants)
    _fields(mapping.fields, data, at, values, issues)
    for group in mapping.groups:
        values[group.name] = _group(group, data, at, issues)
    if mapping.screenings is not None:
        values["screenings"] = _screenings(mapping.screenings, data, at, issues)
    return values, issues


def map_record(record: SourceRecord, mapping: Mapping[R]) -> R:
    """Map one source record to the mapping's target record; raises RecordError (all issues).

    A target read whole (``contract.read``: FHIR resources) gets the record's data as it is;
    any other gets the mapped, checked values (``contract.fill``).
    """
    try:
        return _map_record(record, mapping)
    except RecursionError:  # hostile nesting: one record rejected, never the run
        raise RecordError(
            "the record nests arrays or objects too deeply to read",
            location=record.location,
            error_code="FI304",
        ) from None


def _map_record(record: SourceRecord, mapping: Mapping[R]) -> R:
    contract = mapping.contract
    if contract.read is not None:
        return contract.read(record.data, record.location)
    values, found = map_values(record, mapping)
    if found:
        # one column can feed several targets (a review date is also the screening date):
        # report each problem once
        issues = list(dict.fromkeys(found))
        count = len(issues)
        first = issues[0]
        field = first.location.field if first.location and first.location.field else "record"
        more = f" (and {count - 1} more)" if count > 1 else ""
        raise RecordError(
            f"{field} {first.diagnostics}{more}",
            issues=issues,
            location=record.location,
            error_code=first.error_code,
        )
    fill = contract.fill
    if fill is None:  # pragma: no cover - MapTarget guarantees one of read / fill
        raise TypeError(f"target {contract.name!r} has neither read nor fill")
    return fill(values, record.location, mapping.source_system)


__all__ = [
    "DEFER",
    "fast_answers",
    "fast_table_answers",
    "fixed_answers",
    "map_record",
    "map_values",
    "slow_answers",
]
