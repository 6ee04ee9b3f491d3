"""Compile the parts of a mapping file: field specs, groups and the screenings block.

Every problem is added to the file's :class:`~fhir_iapt.mapping._yaml.Problems` with its line and
key; a part that cannot be compiled is left out (the loader raises once all are checked).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhir_iapt._data import load_table
from fhir_iapt.mapping import _types as types
from fhir_iapt.mapping._model import (
    AnswerPaths,
    FieldSpec,
    FixedScreening,
    GroupSpec,
    InstrumentShape,
    ScreeningSpec,
)
from fhir_iapt.mapping._paths import SourcePath, compile_path
from fhir_iapt.mapping._tables import TableProblem, load_lookup
from fhir_iapt.mapping._yaml import Node

FIELD_KEYS = (
    "from",
    "type",
    "required",
    "optional_column",
    "formats",
    "allow_future",
    "min",
    "max",
    "table",
    "display_to",
    "values",
    "list",
    "max_length",
)
_TYPE_OPTIONS: dict[str, frozenset[str]] = {
    "string": frozenset({"list", "max_length"}),
    "int": frozenset({"min", "max"}),
    "decimal": frozenset({"min", "max"}),
    "date": frozenset({"formats", "allow_future", "min"}),
    "bool": frozenset({"table"}),
    "nhs_number": frozenset(),
    "ods": frozenset(),
    "code": frozenset({"table", "display_to"}),
    "enum": frozenset({"values"}),
}
_COMMON = frozenset({"from", "type", "required", "optional_column"})


@dataclass
class Context:
    """What compiling a part needs: the input format, the mapping's folder, the columns read."""

    fmt: str
    folder: Path | None
    columns: list[str]

    def path(self, node: Node, *, optional_column: bool = False) -> SourcePath | None:
        """The compiled source path; a CSV column joins the header's required columns unless
        ``optional_column`` (then a header without it reads as blank)."""
        text = node.text() if node.is_scalar() else node.fail("expected a source path")
        try:
            compiled = compile_path(self.fmt, text, optional_column=optional_column)
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


def _converter(type_name: str, entries: dict[str, Node], target: str, ctx: Context) -> Any:
    """The bound converter, or None after recording a problem."""
    defaults = _context_defaults(target)
    if type_name in ("int", "decimal"):
        low = _bound(entries["min"], type_name) if "min" in entries else defaults.get("min")
        high = _bound(entries["max"], type_name) if "max" in entries else defaults.get("max")
        if type_name == "int":
            return types.integer(
                low=None if low is None else int(low), high=None if high is None else int(high)
            )
        return types.decimal(
            low=None if low is None else Decimal(str(low)),
            high=None if high is None else Decimal(str(high)),
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
        return types.nhs_number()
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
    if "display_to" in entries:
        display_to = entries["display_to"].text()
        if display_to not in set(allowed_targets):
            entries["display_to"].add(f"display_to names {display_to!r}, not a field here")
    if path is None or converter is None:
        return None
    return FieldSpec(target, path, converter, is_required or required, display_to)


def compile_group(node: Node, name: str, item_fields: frozenset[str], ctx: Context) -> GroupSpec:
    entries = node.items(("each", "fields"))
    each = ctx.path(entries["each"]) if "each" in entries else None
    if "each" in entries and ctx.fmt == "csv":
        entries["each"].add("a CSV row has no repeating items: leave each: out")
    fields: list[FieldSpec] = []
    if "fields" not in entries:
        node.add("a group needs fields:")
    else:
        for target, child in entries["fields"].items().items():
            if target not in item_fields and not target.startswith("_"):
                child.add(
                    f"{name} items have no field {target!r} "
                    f"(expected one of: {', '.join(sorted(item_fields))})"
                )
                continue
            spec = compile_field(child, target, ctx, allowed_targets=item_fields, required=False)
            if spec is not None:
                fields.append(spec)
    return GroupSpec(name, each, tuple(fields))


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


def _answer_paths(node: Node, ctx: Context, shape: InstrumentShape | None) -> AnswerPaths | None:
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
            node.add("one path to an array of scores works for JSON only; list one path per item")
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


def compile_screenings(node: Node, ctx: Context) -> ScreeningSpec:
    entries = node.items(("date", "items", "each", "instrument", "answers"))
    shapes = instrument_shapes()
    date_spec = None
    if "date" in entries:
        date_spec = compile_field(entries["date"], "date", ctx, allowed_targets=(), required=False)
    if ("items" in entries) == ("each" in entries):
        node.add("screenings need either items: (fixed instruments) or each: (repeated elements)")
        return ScreeningSpec(date=date_spec, shapes=shapes)
    if "items" in entries:
        for key in ("instrument", "answers"):
            if key in entries:
                entries[key].add(f"{key}: goes inside each entry of items:")
        fixed: list[FixedScreening] = []
        seen: set[str] = set()
        for child in entries["items"].sequence():
            item = child.items(("instrument", "answers", "date"))
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
            answers = _answer_paths(item["answers"], ctx, shape)
            item_date = None
            if "date" in item:
                item_date = compile_field(
                    item["date"], "date", ctx, allowed_targets=(), required=False
                )
            if shape is not None and answers is not None:
                fixed.append(FixedScreening(shape, answers, item_date))
        return ScreeningSpec(date=date_spec, fixed=tuple(fixed), shapes=shapes)
    each = ctx.path(entries["each"])
    instrument = None
    answers = None
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
