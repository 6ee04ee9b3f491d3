"""Compile the parts of a mapping file: field specs, groups and the screenings block.

Every problem is added to the file's :class:`~fhir_iapt.mapping._yaml.Problems` with its line and
key; a part that cannot be compiled is left out (the loader raises once all are checked).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhir_iapt._data import load_table
from fhir_iapt.mapping import _types as types
from fhir_iapt.mapping._fast import fast_table_answers
from fhir_iapt.mapping._model import (
    COMMON_FIELD_OPTIONS,
    FIELD_KEYS,
    GROUP_OPTIONS,
    SCREENING_ITEM_OPTIONS,
    SCREENING_OPTIONS,
    TYPE_OPTIONS,
    AnswerPaths,
    FieldSpec,
    FixedScreening,
    GroupSpec,
    InstrumentShape,
    ScreeningSpec,
)
from fhir_iapt.mapping._paths import SourcePath, compile_path, with_default
from fhir_iapt.mapping._tables import LookupTable, TableProblem, load_lookup
from fhir_iapt.mapping._yaml import Node

_TYPE_OPTIONS: dict[str, frozenset[str]] = {
    name: frozenset(options) for name, options in TYPE_OPTIONS.items()
}
_COMMON = frozenset(COMMON_FIELD_OPTIONS)
#: the option of each type that names a sibling target for the converter's second value
_SECOND_TARGET = {"code": "display_to", "name": "given_to"}


@dataclass
class Context:
    """What compiling a part needs: the input format, the mapping's folder, the columns read,
    and (XML) the namespace prefixes the XPaths may use."""

    fmt: str
    folder: Path | None
    columns: list[str]
    namespaces: Mapping[str, str] = field(default_factory=dict)

    def path(self, node: Node, *, optional_column: bool = False) -> SourcePath | None:
        """The compiled source path; a CSV column joins the header's required columns unless
        ``optional_column`` (then a header without it reads as blank)."""
        text = node.text() if node.is_scalar() else node.fail("expected a source path")
        try:
            compiled = compile_path(
                self.fmt, text, optional_column=optional_column, namespaces=self.namespaces
            )
        except ValueError as exc:
            node.add(str(exc))
            return None
        if self.fmt == "csv" and not optional_column and text not in self.columns:
            self.columns.append(text)
        return compiled


def _context_defaults(target: str) -> dict[str, Any]:
    """Range / allowed values for a ``context.<kind>`` target, from tables/context.yaml."""
    if not target.startswith("context."):
        return {}
    kind = load_table("context")["kinds"].get(target.split(".", 1)[1], {})
    out: dict[str, Any] = {}
    if "range" in kind:
        out["min"], out["max"] = kind["range"]
    if "unit" in kind:
        out["unit"] = str(kind["unit"]["unit"])
    if "values" in kind:
        keys = list(kind["values"])
        out["values"] = [str(k) for k in keys]
        if all(isinstance(k, int) for k in keys):
            out["min"], out["max"] = min(keys), max(keys)
    return out


def _bound(node: Node, kind: str) -> Any:
    raw = node.value() if node.is_scalar() else None
    try:
        value = types.decimal_bound(raw)
    except ValueError as exc:
        node.add(str(exc))
        return None
    if kind == "int":
        if value != value.to_integral_value():
            node.add("a bound of an int field must be a whole number")
            return None
        return int(value)
    return value


def _date_options(entries: dict[str, Node]) -> types.Converter | None:
    formats: list[re.Pattern[str]] = []
    ok = True
    if "formats" in entries:
        texts = [n.text() for n in entries["formats"].sequence()]
        if not texts:
            entries["formats"].add("give at least one date format")
            ok = False
        for text in texts:
            try:
                formats.append(types.compile_date_format(text))
            except ValueError as exc:
                entries["formats"].add(str(exc))
                ok = False
    else:
        formats.append(types.compile_date_format("%Y-%m-%d"))
    allow_future = entries["allow_future"].boolean() if "allow_future" in entries else False
    earliest = None
    if "min" in entries:
        try:
            earliest = date.fromisoformat(entries["min"].text())
        except ValueError:
            entries["min"].add("min of a date field is an ISO date, like 1900-01-01")
            ok = False
    if not ok:
        return None
    return types.date_type(formats=tuple(formats), allow_future=allow_future, earliest=earliest)


def _unit(node: Node) -> str | None:
    unit = node.text()
    if unit[0].isdigit() or unit[0] in "+-.,":
        node.add("a unit starts with a letter or a symbol, like mmol/mol or %")
        return None
    return unit


def _decimal_comma(node: Node) -> bool:
    separator = node.value() if node.is_scalar() else None
    if separator not in (".", ","):
        node.add("decimal_separator is '.' or ','")
    return separator == ","


def _separators(node: Node) -> str | None:
    """``separators:`` of an NHS number: characters, none a digit, that may group the digits."""
    raw = node.value() if node.is_scalar() else None
    if not isinstance(raw, str) or not raw or any(c.isdigit() for c in raw):
        node.add("separators is the characters (not digits) that may group the digits, like '-'")
        return None
    return "".join(dict.fromkeys(raw.replace(" ", "")))


def _converter(type_name: str, entries: dict[str, Node], target: str, ctx: Context) -> Any:
    """The bound converter, or None after recording a problem."""
    defaults = _context_defaults(target)
    if type_name in ("int", "decimal"):
        low = _bound(entries["min"], type_name) if "min" in entries else defaults.get("min")
        high = _bound(entries["max"], type_name) if "max" in entries else defaults.get("max")
        unit = _unit(entries["unit"]) if "unit" in entries else None
        if "unit" in entries and unit is None:
            return None
        if unit is not None and "unit" in defaults and unit != defaults["unit"]:
            entries["unit"].add(
                f"{target} is recorded in {defaults['unit']}: a value in another unit would "
                "need converting, which the mapping does not do"
            )
            return None
        if type_name == "int":
            return types.integer(
                low=None if low is None else int(low),
                high=None if high is None else int(high),
                unit=unit,
            )
        comma = (
            _decimal_comma(entries["decimal_separator"])
            if "decimal_separator" in entries
            else False
        )
        return types.decimal(
            low=None if low is None else Decimal(str(low)),
            high=None if high is None else Decimal(str(high)),
            unit=unit,
            comma=comma,
        )
    if type_name == "string":
        as_list = entries["list"].boolean() if "list" in entries else False
        max_length = None
        if "max_length" in entries:
            raw = entries["max_length"].value()
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
                entries["max_length"].add("max_length is a positive whole number")
                return None
            max_length = raw
        return types.string(as_list=as_list, max_length=max_length)
    if type_name == "date":
        return _date_options(entries)
    if type_name == "nhs_number":
        if "separators" not in entries:
            return types.nhs_number()
        separators = _separators(entries["separators"])
        return None if separators is None else types.nhs_number(separators=separators)
    if type_name == "name":
        return types.person_name()
    if type_name == "ods":
        return types.ods_code()
    if type_name == "enum":
        if "values" in entries:
            values = [n.text() for n in entries["values"].sequence()]
        elif "values" in defaults:
            values = defaults["values"]
        else:
            values = []
        if not values:
            (entries.get("type") or entries["from"]).add("an enum field needs values: [...]")
            return None
        return types.enum(values=frozenset(values))
    # bool and code look terms up in a table
    table_node = entries.get("table")
    if table_node is None and type_name == "code":
        entries["type"].add("a code field needs table: <lookup table name>")
        return None
    table_name = table_node.text() if table_node is not None else "yes-no"
    try:
        table = load_lookup(table_name, ctx.folder)
    except TableProblem as exc:
        (table_node or entries["type"]).add(str(exc))
        return None
    if type_name == "bool":
        if not all(isinstance(v, bool) for v in table.values.values()):
            (table_node or entries["type"]).add("a bool field's table must give true / false")
            return None
        return types.boolean(terms=table.values, casefold=table.casefold)
    displays = table.displays if "display_to" in entries else None
    return types.code(terms=table.values, displays=displays, casefold=table.casefold)


def _default(node: Node, converter: types.Converter) -> tuple[bool, Any]:
    """``default:``: (True, the raw default) when the field's converter accepts it, else a
    located problem and (False, None). Text is read as a cell would be (stripped)."""
    raw = node.value() if node.is_scalar() else None
    if raw is None or not isinstance(raw, str | int | float | bool):
        node.add("a default is a single value (text, number or true/false)")
        return False, None
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw:
            node.add("a default is not blank (a blank default is no default)")
            return False, None
    elif not isinstance(raw, bool):
        raw = str(raw)  # a number, read as its text (as a CSV or XML value would be)
    try:
        converter(raw)
    except types.Invalid as exc:
        node.add(f"the default breaks the field's rule: it {exc.message}")
        return False, None
    return True, raw


def compile_field(
    node: Node, target: str, ctx: Context, *, allowed_targets: Iterable[str], required: bool
) -> FieldSpec | None:
    """One ``target: spec`` entry; a plain string is short for ``{from: <it>, type: string}``."""
    if node.is_scalar():
        path = ctx.path(node)
        if path is None:
            return None
        return FieldSpec(target, path, types.string(), required)
    entries = node.items(FIELD_KEYS)
    if "from" not in entries:
        node.add("a field needs from: <source path>")
        return None
    type_name = entries["type"].text() if "type" in entries else "string"
    if type_name not in types.TYPES:
        known = ", ".join(types.TYPES)
        entries["type"].add(f"unknown type {type_name!r} (expected one of: {known})")
        return None
    allowed = _COMMON | _TYPE_OPTIONS[type_name]
    for key, child in entries.items():
        if key not in allowed:
            child.add(f"{key} does not apply to a {type_name} field")
    is_required = entries["required"].boolean() if "required" in entries else False
    optional_column = False
    if "optional_column" in entries:
        optional_column = entries["optional_column"].boolean()
        if optional_column and ctx.fmt != "csv":
            entries["optional_column"].add("optional_column applies to CSV columns only")
        elif optional_column and (is_required or required):
            entries["optional_column"].add("a required field cannot have an optional column")
    path = ctx.path(entries["from"], optional_column=optional_column)
    converter = _converter(type_name, entries, target, ctx)
    display_to = None
    second = _SECOND_TARGET.get(type_name)
    if second is not None and second in entries:
        display_to = entries[second].text()
        if display_to not in set(allowed_targets) or display_to == target:
            entries[second].add(f"{second} names {display_to!r}, not another field here")
    elif type_name == "name":
        (entries.get("type") or entries["from"]).add(
            "a name field needs given_to: <the field that gets the given names>"
        )
        return None
    default = None
    if "default" in entries and converter is not None:
        if is_required or required:
            entries["default"].add("a required field takes no default (a blank rejects it)")
            return None
        ok, default = _default(entries["default"], converter)
        if not ok:
            return None
    if path is None or converter is None:
        return None
    if default is not None:
        path = with_default(path, default)
    return FieldSpec(target, path, converter, is_required or required, display_to, default)


def _item_fields(
    node: Node, name: str, item_fields: frozenset[str], ctx: Context
) -> tuple[FieldSpec, ...]:
    """One item's ``item field -> field spec`` entries."""
    fields: list[FieldSpec] = []
    for target, child in node.items().items():
        if target not in item_fields and not target.startswith("_"):
            child.add(
                f"{name} items have no field {target!r} "
                f"(expected one of: {', '.join(sorted(item_fields))})"
            )
            continue
        spec = compile_field(child, target, ctx, allowed_targets=item_fields, required=False)
        if spec is not None:
            fields.append(spec)
    return tuple(fields)


def compile_group(node: Node, name: str, item_fields: frozenset[str], ctx: Context) -> GroupSpec:
    entries = node.items(GROUP_OPTIONS)
    if "items" in entries:
        if "each" in entries:
            entries["each"].add("items: are all read from the record itself: leave each: out")
        if "fields" in entries:
            entries["fields"].add(
                "a group has fields: (one item per element) or items: (several items from "
                "the record), not both"
            )
        sets = [
            _item_fields(child, name, item_fields, ctx) for child in entries["items"].sequence()
        ]
        if not sets:
            entries["items"].add("list at least one item")
        return GroupSpec(name, None, (), tuple(sets))
    each = ctx.path(entries["each"]) if "each" in entries else None
    if "each" in entries and ctx.fmt == "csv":
        entries["each"].add(
            "a CSV row has no repeating items: leave each: out (items: lists several items "
            "from one row)"
        )
    fields: tuple[FieldSpec, ...] = ()
    if "fields" not in entries:
        node.add("a group needs fields: (or items:)")
    else:
        fields = _item_fields(entries["fields"], name, item_fields, ctx)
    return GroupSpec(name, each, fields)


def instrument_shapes() -> dict[str, InstrumentShape]:
    """Item counts and score range per instrument, from tables/instruments.yaml."""
    table = load_table("instruments")
    shapes: dict[str, InstrumentShape] = {}
    for name, spec in table["instruments"].items():
        scores = [a["score"] for a in table["answer_sets"][spec["answers"]]]
        scored = len(spec["items"])
        total = scored + len(spec.get("unscored_items", ()))
        low, high = min(scores), max(scores)
        lookup: dict[Any, int] = {str(v): v for v in range(low, high + 1)}
        lookup.update({v: v for v in range(low, high + 1)})
        shapes[name] = InstrumentShape(name, scored, total, low, high, lookup)
    return shapes


def _get_all(fmt: str, paths: tuple[SourcePath, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if fmt == "csv":
        columns = operator.itemgetter(*(p.text for p in paths))
        if len(paths) == 1:
            return lambda row: (columns(row),)
        return columns
    getters = tuple(p.get for p in paths)
    return lambda data: tuple(get(data) for get in getters)


def _split_all(
    path: SourcePath, separator: str, shape: InstrumentShape
) -> Callable[[Any], tuple[Any, ...]]:
    """The fast path's cells of one value holding every answer: its pieces, ``()`` when it is
    empty; anything else (not text, a wrong count) raises Invalid for the slow path to report."""
    get = path.get
    low, high = shape.scored, shape.total

    def cells(data: Any) -> tuple[Any, ...]:
        value = get(data)
        if value.__class__ is not str:
            raise types.Invalid("not text", "structure")
        pieces = value.split(separator)
        if low <= len(pieces) <= high:
            return tuple(pieces)
        if not value:
            return ()
        raise types.Invalid("a wrong count", "structure")

    return cells


def _split(node: Node) -> str | None:
    raw = node.value() if node.is_scalar() else None
    if not isinstance(raw, str) or not raw or any(c.isdigit() for c in raw):
        node.add("split is the text between the answers, like ',' (no digits)")
        return None
    return raw


def _answer_paths(
    node: Node, ctx: Context, shape: InstrumentShape | None, split: str | None = None
) -> AnswerPaths | None:
    if split is not None:
        if not node.is_scalar():
            node.add("with split:, answers: is the one path that holds every answer")
            return None
        column = ctx.path(node)
        if column is None or shape is None:
            return None
        return AnswerPaths(array=column, split=split, get_all=_split_all(column, split, shape))
    if node.is_sequence():
        paths = [ctx.path(child) for child in node.sequence()]
        if shape is not None and not shape.scored <= len(paths) <= shape.total:
            node.add(
                f"{shape.name} has {shape.scored} scored items "
                f"({shape.total} in all): list one source path per item"
            )
        if any(p is None for p in paths):
            return None
        per_item = tuple(p for p in paths if p is not None)
        return AnswerPaths(per_item=per_item, get_all=_get_all(ctx.fmt, per_item))
    if node.is_scalar():
        if ctx.fmt != "json":
            node.add(
                "one path to an array of scores works for JSON only; list one path per item, "
                "or add split: ',' when one value holds every answer"
            )
        array = ctx.path(node)
        return AnswerPaths(array=array) if array is not None else None
    entries = node.items(("each", "item", "value"))
    missing = [k for k in ("each", "item", "value") if k not in entries]
    if missing:
        node.add(f"answers as elements need each:, item: and value: (missing {', '.join(missing)})")
        return None
    each, item, value = (ctx.path(entries[k]) for k in ("each", "item", "value"))
    if each is None or item is None or value is None:
        return None
    return AnswerPaths(each=each, item=item, value=value)


def _answer_table(
    node: Node, ctx: Context, shapes: Iterable[InstrumentShape]
) -> LookupTable | None:
    """An answer table: answer words -> a score every instrument in ``shapes`` can have."""
    try:
        table = load_lookup(node.text(), ctx.folder)
    except TableProblem as exc:
        node.add(str(exc))
        return None
    for shape in shapes:
        if not all(
            value.__class__ is int and shape.low <= value <= shape.high
            for value in table.values.values()
        ):
            node.add(
                f"an answer table gives scores: whole numbers from {shape.low} to "
                f"{shape.high} for {shape.name}"
            )
            return None
    return table


def _with_tables(
    shape: InstrumentShape,
    scored: LookupTable | None,
    unscored: LookupTable | None,
) -> InstrumentShape:
    """``shape`` whose answers are looked up: ``scored`` for the scored items, ``unscored``
    for the rest (PHQ-9 item 10); an item without a table still reads digits."""
    digits = f"a score from {shape.low} to {shape.high}"
    tables: list[Mapping[Any, int]] = []
    rules: list[str] = []
    for index in range(shape.total):
        table = scored if index < shape.scored else unscored
        tables.append(shape.scores if table is None else table.values)
        rules.append(digits if table is None else f"an answer the table {table.name} knows")
    casefold = any(t is not None and t.casefold for t in (scored, unscored))
    return replace(shape, item_scores=tuple(tables), casefold=casefold, item_rules=tuple(rules))


def _tables(
    entries: dict[str, Node], ctx: Context, shapes: list[InstrumentShape]
) -> tuple[bool, LookupTable | None, LookupTable | None]:
    """``answer_table:`` / ``unscored_answer_table:``: (given, scored table, unscored table)."""
    found: dict[str, LookupTable | None] = {}
    for key in ("answer_table", "unscored_answer_table"):
        if key in entries:
            found[key] = _answer_table(entries[key], ctx, shapes)
    scored, unscored = found.get("answer_table"), found.get("unscored_answer_table")
    if "unscored_answer_table" in entries and all(s.total == s.scored for s in shapes):
        entries["unscored_answer_table"].add(
            f"{', '.join(s.name for s in shapes)} has no unscored items"
        )
    if scored is not None and unscored is not None and scored.casefold != unscored.casefold:
        entries["unscored_answer_table"].add(
            "the two answer tables match alike: both case-insensitive or both exact"
        )
    return bool(found), scored, unscored


def compile_screenings(node: Node, ctx: Context) -> ScreeningSpec:
    entries = node.items(SCREENING_OPTIONS)
    shapes = instrument_shapes()
    date_spec = None
    if "date" in entries:
        date_spec = compile_field(entries["date"], "date", ctx, allowed_targets=(), required=False)
    if ("items" in entries) == ("each" in entries):
        node.add("screenings need either items: (fixed instruments) or each: (repeated elements)")
        return ScreeningSpec(date=date_spec, shapes=shapes)
    if "items" in entries:
        for key in ("instrument", "answers", "answer_table", "unscored_answer_table"):
            if key in entries:
                entries[key].add(f"{key}: goes inside each entry of items:")
        fixed: list[FixedScreening] = []
        seen: set[str] = set()
        for child in entries["items"].sequence():
            item = child.items(SCREENING_ITEM_OPTIONS)
            if "instrument" not in item or "answers" not in item:
                child.add("each screening item needs instrument: and answers:")
                continue
            name = item["instrument"].text()
            shape = shapes.get(name)
            if shape is None:
                item["instrument"].add(f"unknown instrument (expected one of: {', '.join(shapes)})")
            elif name in seen:
                item["instrument"].add("the instrument is listed twice")
            seen.add(name)
            split = _split(item["split"]) if "split" in item else None
            if "split" in item and split is None:
                continue
            answers = _answer_paths(item["answers"], ctx, shape, split)
            item_date = None
            if "date" in item:
                item_date = compile_field(
                    item["date"], "date", ctx, allowed_targets=(), required=False
                )
            if shape is None or answers is None:
                continue
            given, scored, unscored = _tables(item, ctx, [shape])
            if not given:
                fixed.append(FixedScreening(shape, answers, item_date))
            elif scored is not None or unscored is not None:
                looked_up = _with_tables(shape, scored, unscored)
                fixed.append(FixedScreening(looked_up, answers, item_date, fast_table_answers))
        return ScreeningSpec(date=date_spec, fixed=tuple(fixed), shapes=shapes)
    each = ctx.path(entries["each"])
    instrument = None
    answers = None
    given, scored, unscored = _tables(entries, ctx, list(shapes.values()))
    if given:
        shapes = {name: _with_tables(shape, scored, unscored) for name, shape in shapes.items()}
    if "instrument" not in entries or "answers" not in entries:
        node.add("screenings with each: need instrument: and answers:")
    else:
        instrument = compile_field(
            entries["instrument"], "instrument", ctx, allowed_targets=(), required=True
        )
        answers = _answer_paths(entries["answers"], ctx, None)
        if answers is not None and answers.each is None:
            entries["answers"].add("with each:, answers are elements: {each:, item:, value:}")
    return ScreeningSpec(
        date=date_spec, each=each, instrument=instrument, answers=answers, shapes=shapes
    )


def check_constant(node: Node) -> Any:
    value = node.value() if node.is_scalar() else None
    if value is None or not isinstance(value, str | int | bool):
        node.add("a constant is a single value (text, number or true/false)")
        return None
    return value.strip() if isinstance(value, str) else value


def scalar_fields(
    node: Node, ctx: Context, scalars: frozenset[str], required: frozenset[str]
) -> tuple[list[FieldSpec], set[str]]:
    """The compiled fields, and every target named (compiled or not: no second complaint)."""
    out: list[FieldSpec] = []
    named: set[str] = set()
    for target, child in node.items().items():
        if target not in scalars and not target.startswith("_"):
            child.add(f"the target has no field {target!r}")
            continue
        named.add(target)
        spec = compile_field(
            child, target, ctx, allowed_targets=scalars, required=target in required
        )
        if spec is not None:
            out.append(spec)
    return out, named


def groups(node: Node, ctx: Context, declared: Mapping[str, frozenset[str]]) -> list[GroupSpec]:
    out: list[GroupSpec] = []
    for name, child in node.items().items():
        if name not in declared:
            child.add(
                f"the target has no group {name!r}"
                f" (expected one of: {', '.join(sorted(declared)) or 'none'})"
            )
            continue
        out.append(compile_group(child, name, declared[name], ctx))
    return out


__all__ = [
    "Context",
    "check_constant",
    "compile_field",
    "compile_screenings",
    "groups",
    "instrument_shapes",
    "scalar_fields",
]
