"""Propose a mapping for a sample export (``fhir-iapt mapping init``).

The sample is read as a conversion would read it (:mod:`fhir_iapt.mapping._sample`); each of its
fields is matched to a target field by name (``tables/field-names.yaml``: names and synonyms,
compared without case, spaces or punctuation), and the values decide the options: date formats
(with a time part), NHS-number separators, a decimal comma, the unit, which lookup table knows
the terms, which columns hold a questionnaire's answers (one per item, or all in one) and how
they are written. A match the values refuse (a column named like a date whose values are not
dates) is dropped. The proposal is text: every guess has a comment saying why, what could not
be placed is listed at the end, and the fields that need a decision (a required field nothing
matched) are said at the top and written as commented lines to fill in.

No value of the sample is ever written: comments give counts, formats, units and table names,
and a unit is written only when it is the target's own (``tables/context.yaml``).

The proposal is loaded with the engine's own check (:func:`fhir_iapt.mapping.load_mapping`) and,
when it loads, tried on the sample (:func:`fhir_iapt.mapping._dry_run.dry_run`); both results are
part of the :class:`Proposal` (and its header comment).
"""

from __future__ import annotations

import json
import re
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from fhir_iapt._data import load_table
from fhir_iapt.errors import MappingError
from fhir_iapt.mapping import _types as types
from fhir_iapt.mapping._compile import instrument_shapes
from fhir_iapt.mapping._dry_run import DryRun, dry_run
from fhir_iapt.mapping._loader import FORMAT_VERSION, load_mapping
from fhir_iapt.mapping._model import InstrumentShape, Mapping
from fhir_iapt.mapping._sample import MAX_RECORDS, Column, Sample, read_sample
from fhir_iapt.mapping._tables import LookupTable, TableProblem, load_lookup
from fhir_iapt.mapping.targets import MAP_TARGETS

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[^\W_]+")
_UNIT_TAIL = re.compile(r"(?P<name>.*?)\s*[(\[](?P<unit>[^()\[\]]+)[)\]]\s*")
_NUMBER = re.compile(r"(?P<number>[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+))\s*(?P<unit>\S.*)?")
_CENSORED = re.compile(r"\s*(?:[<>]=?|[\u2264\u2265])")
_DIGITS = re.compile(r"[0-9]+")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_ ./()-]*")
_SLUG = re.compile(r"[^a-z0-9]+")
#: characters besides spaces an NHS number may be grouped by, as a proposal offers them
_NHS_SEPARATORS = "-./"
_DATES = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d", "%m/%d/%Y", "%Y.%m.%d")
_TIMES = ("", " %H:%M", " %H:%M:%S", "T%H:%M", "T%H:%M:%S")
_TWO_DIGIT_YEAR = re.compile(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2}(?:[ T].*)?")
_ZONED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})")
_WIDTH = 96


# --- the names table -------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return _WORD.findall(_CAMEL.sub(" ", text.replace("%", " percent ")).casefold())


def _key(text: str) -> str:
    return "".join(_words(text))


@dataclass(frozen=True)
class Rule:
    """How a target field is found: its names (as keys), type, options and tables to try."""

    target: str
    type: str
    names: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    display_to: str | None = None
    given_to: str | None = None
    systems: tuple[dict[str, str], ...] = ()
    constant: bool = False


def _rule(target: str, raw: dict[str, Any]) -> Rule:
    return Rule(
        target=target,
        type=str(raw.get("type", "string")),
        names=tuple(_key(str(n)) for n in raw.get("names", ())),
        options=dict(raw.get("options") or {}),
        tables=tuple(str(t) for t in raw.get("tables", ())),
        display_to=raw.get("display_to"),
        given_to=raw.get("given_to"),
        systems=tuple(raw.get("systems", ())),
        constant=bool(raw.get("constant", False)),
    )


@dataclass(frozen=True)
class Names:
    """``tables/field-names.yaml`` for one target."""

    fields: tuple[Rule, ...]
    combined: Rule | None
    groups: dict[str, tuple[tuple[str, ...], tuple[Rule, ...]]]
    screenings: dict[str, Any]


def target_names(target: str) -> Names:
    """The names table's entries for ``target``; ValueError (saying why) for a target no
    proposal can be made for: one read whole, or one the table has no names for."""
    table = load_table("field-names")
    contract = MAP_TARGETS.get(target)
    if contract is None or contract.read is not None or target not in table:
        known = ", ".join(t for t in table if t in MAP_TARGETS)
        if contract is not None and contract.read is not None:
            raise ValueError(
                f"the {target} target is read whole (input: format: fhir) and maps no fields: "
                "its bundled mapping is all it needs"
            )
        raise ValueError(f"no names to propose a {target!r} mapping with (targets: {known})")
    raw = table[target]
    combined = None
    if raw.get("combined_name"):
        entry = raw["combined_name"]
        combined = _rule(str(entry["target"]), {**entry, "type": "name"})
    groups = {
        name: (
            tuple(_key(str(n)) for n in spec.get("names", ())),
            tuple(_rule(item, rule) for item, rule in spec["fields"].items()),
        )
        for name, spec in (raw.get("groups") or {}).items()
    }
    return Names(
        fields=tuple(_rule(t, r) for t, r in raw["fields"].items()),
        combined=combined,
        groups=groups,
        screenings=dict(raw.get("screenings") or {}),
    )


# --- matching names --------------------------------------------------------------------------


def _header_unit(parts: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """``("HbA1c (mmol/mol)",)`` -> ``(("HbA1c",), "mmol/mol")``; a bracketed tail with a
    letter or ``%`` in it is a unit."""
    match = _UNIT_TAIL.fullmatch(parts[-1])
    if match is None or not re.search(r"[^\W\d_]|%", match["unit"]) or not match["name"]:
        return parts, None
    return (*parts[:-1], match["name"]), match["unit"].strip()


def _keys(parts: tuple[str, ...]) -> list[tuple[str, tuple[int, int, int, int]]]:
    """The keys a source name is matched on, each with its strength: its last part, its last
    parts together (longer is stronger, all of them strongest), then the last words of its
    last part (weakest: ``encounterRef`` -> ``ref``)."""
    base, unit = _header_unit(parts)
    variants = [base]
    if unit == "%":
        variants.insert(0, (*base[:-1], base[-1] + " percent"))
    out: list[tuple[str, tuple[int, int, int, int]]] = []
    for index, variant in enumerate(variants):
        count = len(variant)
        for k in range(count, 0, -1):
            out.append((_key(" ".join(variant[-k:])), (2, k, int(k == count), -index)))
        words = _words(variant[-1])
        for j in range(len(words) - 1, 0, -1):
            out.append(("".join(words[-j:]), (1, j, 0, -index)))
    return out


@dataclass(frozen=True)
class _Candidate:
    strength: tuple[int, int, int, int]
    rank: int
    rule: Rule
    column: Column
    key: str

    @property
    def order(self) -> tuple[Any, ...]:
        return (*self.strength, -self.rank)


def _candidates(rules: Iterable[Rule], columns: Iterable[Column]) -> list[_Candidate]:
    by_key: dict[str, list[tuple[Rule, int]]] = {}
    for rule in rules:
        for rank, name in enumerate(rule.names):
            by_key.setdefault(name, []).append((rule, rank))
    found: list[_Candidate] = []
    for column in columns:
        best: dict[str, _Candidate] = {}
        for key, strength in _keys(column.parts):
            for rule, rank in by_key.get(key, ()):
                candidate = _Candidate(strength, rank, rule, column, key)
                held = best.get(rule.target + rule.type)
                if held is None or candidate.order > held.order:
                    best[rule.target + rule.type] = candidate
        found.extend(best.values())
    found.sort(key=lambda c: c.order, reverse=True)
    return found


# --- what the values say ---------------------------------------------------------------------


@dataclass
class Entry:
    """One proposed field: target -> spec, the comment saying why, and whether it is written
    as a live line (False: commented out, with the reason)."""

    target: str
    spec: dict[str, Any]
    why: list[str]
    active: bool = True
    #: extra lines the entry brings (a constant, e.g. the referrer id's system)
    constants: dict[str, tuple[Any, str]] = field(default_factory=dict)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _failures(convert: types.Converter, values: Iterable[Any]) -> tuple[int, Counter[str]]:
    bad = 0
    messages: Counter[str] = Counter()
    for value in values:
        try:
            convert(value)
        except types.Invalid as exc:
            bad += 1
            messages[exc.message] += 1
    return bad, messages


def _broken(bad: int, total: int, messages: Counter[str]) -> str:
    rule = messages.most_common(1)[0][0]
    return (
        f"{bad} of {total} values break the field's rule (the first kind: it {rule}): those "
        "records are rejected"
    )


def _text_values(values: list[Any]) -> list[Any]:
    return [v.strip() if isinstance(v, str) else v for v in values if not isinstance(v, list)]


def _date_formats(values: list[Any]) -> tuple[list[str], list[str]] | None:
    """The fewest formats that read every value (a greedy cover, UK day-first before US
    month-first), and notes; None when no format reads any value."""
    texts = [v for v in values if isinstance(v, str)]
    candidates = [d + t for t in _TIMES for d in _DATES]
    reads: dict[str, set[int]] = {}
    for fmt in candidates:
        convert = types.date_type(
            formats=(types.compile_date_format(fmt),), allow_future=True, earliest=None
        )
        ok = set()
        for index, text in enumerate(texts):
            try:
                convert(text)
            except types.Invalid:
                continue
            ok.add(index)
        if ok:
            reads[fmt] = ok
    if not reads:
        return None
    left = set(range(len(texts)))
    chosen: list[str] = []
    while left:
        best = max(reads, key=lambda f: (len(reads[f] & left), -candidates.index(f)))
        if not reads[best] & left:
            break
        chosen.append(best)
        left -= reads[best]
    notes: list[str] = []
    first = chosen[0]
    if "%d/%m" in first and reads.get(first.replace("%d/%m", "%m/%d")) == reads[first]:
        notes.append("day first (UK) assumed: every value also reads month first")
    if any("%H" in f for f in chosen):
        notes.append("the time is checked and not kept (the targets take dates)")
    if left:
        leftover = [texts[i] for i in left]
        short = sum(1 for t in leftover if _TWO_DIGIT_YEAR.fullmatch(t))
        zoned = sum(1 for t in leftover if _ZONED.fullmatch(t))
        if short:
            notes.append(
                f"{_count(short, 'value')} with a two-digit year: refused (the century is not "
                "guessed), those records are rejected"
            )
        if zoned:
            notes.append(
                f"{_count(zoned, 'value')} with a time zone or fractions of a second, which no "
                "date format reads: those records are rejected"
            )
        other = len(leftover) - short - zoned
        if other:
            notes.append(f"{_count(other, 'value')} in no format tried: rejected")
    return chosen, notes


def _context(target: str) -> dict[str, Any]:
    if not target.startswith("context."):
        return {}
    kind = load_table("context")["kinds"].get(target.split(".", 1)[1], {})
    return dict(kind)


def _tables(names: tuple[str, ...]) -> list[LookupTable]:
    out = []
    for name in names:
        try:
            out.append(load_lookup(name, None))
        except TableProblem:
            continue
    return out


def _known(table: LookupTable, values: list[Any]) -> int:
    return sum(
        1
        for v in values
        if isinstance(v, str) and (v.casefold() if table.casefold else v) in table.values
    )


@dataclass
class _Field:
    """What checking one column for one rule found."""

    entry: Entry | None = None
    #: why the column is not this field (the match is dropped)
    refused: str | None = None


def _check(rule: Rule, column: Column, records: int, required: bool) -> _Field:
    """The entry ``rule`` gets from ``column`` (its options from the values), or why not."""
    values = _text_values(column.values)
    spec: dict[str, Any] = {"from": column.path, "type": rule.type}
    why: list[str] = []
    arrays = [v for v in column.values if isinstance(v, list)]
    if arrays and not (rule.type == "string" and rule.target == "patient.given"):
        return _Field(refused=f"its values are JSON arrays, and {rule.target} takes one value")
    if not column.values:
        if rule.type == "name":
            return _Field(
                refused="it is blank in the sample: whether it is 'FAMILY, Given' is unknown"
            )
        if rule.tables and (rule.type == "code" or rule.tables[0] != "yes-no"):
            spec["table"] = rule.tables[0]
        if rule.display_to:
            spec["display_to"] = rule.display_to
        why.append("blank in every record of the sample: its options are the defaults, unchecked")
    else:
        result = _HANDLERS[rule.type](rule, column, values, spec, why)
        if result is not None:
            return result
    if rule.type == "string" and arrays:
        spec["list"] = True
        why.append("a JSON array of names (list: true)")
    spec.update({k: v for k, v in rule.options.items() if k not in spec})
    if required:
        spec["required"] = True
    filled = len(column.values)
    if records and 0 < filled < records:
        blank = records - filled
        why.append(
            f"blank in {blank} of {records} records"
            + (": those are rejected (required)" if required else "")
        )
    return _Field(Entry(rule.target, spec, why))


Handler = Callable[[Rule, Column, list[Any], dict[str, Any], list[str]], _Field | None]


def _check_string(
    rule: Rule, column: Column, values: list[Any], spec: dict[str, Any], why: list[str]
) -> _Field | None:
    if rule.target == "record_id" and any(not isinstance(v, str) for v in values):
        return _Field(refused="its values are JSON numbers: an identifier must be text")
    limit = rule.options.get("max_length")
    if limit is not None:
        bad, messages = _failures(types.string(max_length=int(limit)), values)
        if bad:
            why.append(_broken(bad, len(values), messages))
    return None


def _check_date(
    rule: Rule, column: Column, values: list[Any], spec: dict[str, Any], why: list[str]
) -> _Field | None:
    found = _date_formats(values)
    if found is None:
        return _Field(refused=f"none of its values is a date in a format tried ({_DATES[0]}...)")
    formats, notes = found
    spec["formats"] = formats
    why.append("dates written " + " or ".join(formats))
    why.extend(notes)
    earliest = rule.options.get("min")
    convert = types.date_type(
        formats=tuple(types.compile_date_format(f) for f in formats),
        allow_future=False,
        earliest=None if earliest is None else date.fromisoformat(earliest),
    )
    readable = [v for v in values if isinstance(v, str)]
    _bad, messages = _failures(convert, readable)
    later = messages.get("is in the future", 0) + messages.get(
        f"is before {earliest}" if earliest else "", 0
    )
    if later:
        why.append(
            f"{_count(later, 'value')} in the future or before {earliest or 'the minimum'}: "
            "those records are rejected"
        )
    return None


def _check_nhs(
    rule: Rule, column: Column, values: list[Any], spec: dict[str, Any], why: list[str]
) -> _Field | None:
    texts = [v for v in values if isinstance(v, str)]
    if not texts:
        return _Field(
            refused="its values are JSON numbers: an NHS number must be text (a number loses "
            "leading zeros)"
        )
    used = "".join(sorted({c for t in texts for c in t if c in _NHS_SEPARATORS}))
    convert = types.nhs_number(separators=used) if used else types.nhs_number()
    bad, messages = _failures(convert, values)
    shape = [m for m in messages if m.startswith("is not 10 digits")]
    if shape and sum(messages[m] for m in shape) == len(values):
        return _Field(refused="none of its values is 10 digits")
    if used:
        spec["separators"] = used
        why.append(f"10 digits grouped by {' or '.join(repr(c) for c in used)} (separators)")
    else:
        why.append("10 digits (spaces are always allowed)")
    if bad:
        why.append(_broken(bad, len(values), messages))
    return None


def _check_ods(
    rule: Rule, column: Column, values: list[Any], spec: dict[str, Any], why: list[str]
) -> _Field | None:
    bad, messages = _failures(types.ods_code(), values)
    if values and bad == len(values):
        return _Field(refused="none of its values is an ODS code (3-10 letters or digits)")
    if bad:
        why.append(_broken(bad, len(values), messages))
    return None


def _check_terms(
    rule: Rule, column: Column, values: list[Any], spec: dict[str, Any], why: list[str]
) -> _Field | None:
    texts = [v for v in values if not isinstance(v, bool)]
    if rule.type == "bool" and not texts:
        why.append("JSON true / false")
        return None
    if rule.type == "bool" and len(texts) < len(values):
        why.append("JSON true / false, and text the table reads")
    tables = _tables(rule.tables)
    scored = [(table, _known(table, texts)) for table in tables]
    best = max(scored, key=lambda pair: pair[1], default=None)
    if best is None or best[1] == 0:
        tried = ", ".join(f"tables/{name}.yaml" for name in rule.tables) or "no table"
        return _Field(
            Entry(
                rule.target,
                {**spec, **({"table": rule.tables[0]} if rule.tables else {})},
                [
                    f"NOT MAPPED: its terms are in none of {tried}: add a site table "
                    "(tables/<name>.yaml beside this mapping) and name it in table:"
                ],
                active=False,
            )
        )
    table, known = best
    if not (rule.type == "bool" and table.name == "yes-no"):
        spec["table"] = table.name
    if rule.display_to:
        spec["display_to"] = rule.display_to
    if known == len(texts):
        why.append(f"every term is in tables/{table.name}.yaml")
    else:
        why.append(
            f"{len(texts) - known} of {len(texts)} terms are not in tables/{table.name}.yaml: "
            "those records are rejected (a site table beside this mapping can add them)"
        )
    return None


def _check_enum(
    rule: Rule, column: Column, values: list[Any], spec: dict[str, Any], why: list[str]
) -> _Field | None:
    allowed = [str(v) for v in _context(rule.target).get("values", {})]
    if not allowed:
        return _Field(refused="the target field has no list of values")
    bad, messages = _failures(types.enum(values=frozenset(allowed)), values)
    if values and bad == len(values):
        return _Field(refused="none of its values is in the list tables/context.yaml gives it")
    why.append(f"its values are in the list tables/context.yaml gives {rule.target}")
    if bad:
        why.append(_broken(bad, len(values), messages))
    return None


def _check_number(
    rule: Rule, column: Column, values: list[Any], spec: dict[str, Any], why: list[str]
) -> _Field | None:
    kind = _context(rule.target)
    unit = str(kind["unit"]["unit"]) if "unit" in kind else None
    _parts, header_unit = _header_unit(column.parts)
    if header_unit is not None and unit is not None and header_unit != unit:
        return _Field(
            refused=f"its name gives the unit {header_unit}; {rule.target} is recorded in {unit} "
            "(a value in another unit would need converting)"
        )
    comma = point = censored = with_unit = other_unit = 0
    for value in values:
        if not isinstance(value, str):
            continue
        if _CENSORED.match(value):
            censored += 1
            continue
        match = _NUMBER.fullmatch(value)
        if match is None:
            continue
        number = match["number"]
        comma += "," in number
        point += "." in number
        if match["unit"]:
            if match["unit"] == unit:
                with_unit += 1
            else:
                other_unit += 1
    numeric = [v for v in values if isinstance(v, int | Decimal) and not isinstance(v, bool)]
    if (
        not numeric
        and not comma + point
        and not any(isinstance(v, str) and _NUMBER.fullmatch(v) for v in values)
    ):
        return _Field(refused="none of its values is a number")
    if unit is not None and other_unit and not with_unit:
        return _Field(
            refused=f"its values carry a unit other than {unit}, the unit of {rule.target}"
        )
    if comma and not point:
        spec["decimal_separator"] = ","
        why.append("a decimal comma (decimal_separator)")
    elif comma and point:
        why.append(
            "some values have a decimal comma and some a point: a point is read; the others "
            "are rejected"
        )
    if with_unit and unit is not None:
        spec["unit"] = unit
        why.append(f"values followed by their unit {unit} (unit)")
    elif header_unit is not None:
        why.append(f"in {header_unit}, as its name says")
    if other_unit and with_unit:
        why.append(f"{_count(other_unit, 'value')} in another unit: refused, never converted")
    if censored:
        why.append(
            f"{_count(censored, 'censored value')} (<, >): refused (the target takes exact values)"
        )
    low, high = (kind.get("range") or (None, None))[:2] if "range" in kind else (None, None)
    if "values" in kind and all(isinstance(k, int) for k in kind["values"]):
        low, high = min(kind["values"]), max(kind["values"])
    if rule.type == "int":
        convert = types.integer(
            low=None if low is None else int(low),
            high=None if high is None else int(high),
            unit=spec.get("unit"),
        )
    else:
        convert = types.decimal(
            low=None if low is None else Decimal(str(low)),
            high=None if high is None else Decimal(str(high)),
            unit=spec.get("unit"),
            comma="decimal_separator" in spec,
        )
    bad, messages = _failures(convert, values)
    if bad and bad != censored:
        why.append(_broken(bad, len(values), messages))
    if low is not None:
        why.append(f"range {low}-{high} from tables/context.yaml")
    return None


def _check_name(
    rule: Rule, column: Column, values: list[Any], spec: dict[str, Any], why: list[str]
) -> _Field | None:
    bad, messages = _failures(types.person_name(), values)
    if not values or bad == len(values):
        return _Field(refused="its values are not written 'FAMILY, Given names'")
    spec["given_to"] = rule.given_to
    why.append(f"'FAMILY, Given names' in one value: the given names go to {rule.given_to}")
    if bad:
        why.append(_broken(bad, len(values), messages))
    return None


_HANDLERS: dict[str, Handler] = {
    "string": _check_string,
    "date": _check_date,
    "nhs_number": _check_nhs,
    "ods": _check_ods,
    "bool": _check_terms,
    "code": _check_terms,
    "enum": _check_enum,
    "int": _check_number,
    "decimal": _check_number,
    "name": _check_name,
}


# --- screenings ------------------------------------------------------------------------------


@dataclass
class _Screening:
    instrument: str
    answers: list[str] | str
    why: list[str]
    split: str | None = None
    answer_table: str | None = None
    unscored_answer_table: str | None = None
    active: bool = True


def _instrument_tokens(shapes: dict[str, InstrumentShape]) -> dict[str, str]:
    tokens = {_key(name): name for name in shapes}
    try:
        aliases = load_lookup("instrument-names", None)
    except TableProblem:
        return tokens
    for term, value in aliases.values.items():
        if value in shapes:
            tokens.setdefault(_key(term), str(value))
    return tokens


def _is_score(value: Any, shape: InstrumentShape) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return shape.low <= value <= shape.high
    return (
        isinstance(value, str)
        and _DIGITS.fullmatch(value) is not None
        and shape.low <= int(value) <= shape.high
    )


def _answer_words(
    scored: list[Any], unscored: list[Any], shape: InstrumentShape, names: dict[str, Any]
) -> tuple[str | None, str | None, list[str]] | None:
    """(answer_table, unscored_answer_table, notes) for these answers; None when neither
    scores nor a table's words."""
    notes: list[str] = []
    scored_table = unscored_table = None
    if all(_is_score(v, shape) for v in scored):
        notes.append(f"scores {shape.low}-{shape.high}")
    else:
        for table in _tables(tuple(names.get("answer_tables", ()))):
            if _known(table, scored) == len(scored):
                scored_table = table.name
                notes.append(f"answers written as words of tables/{table.name}.yaml")
                break
        else:
            return None
    if unscored and not all(_is_score(v, shape) for v in unscored):
        for table in _tables(tuple(names.get("unscored_answer_tables", ()))):
            if _known(table, unscored) == len(unscored):
                unscored_table = table.name
                notes.append(f"item {shape.scored + 1} as words of tables/{table.name}.yaml")
                break
        else:
            return None
    return scored_table, unscored_table, notes


def _split_answers(values: list[Any], shape: InstrumentShape, separators: list[str]) -> str | None:
    texts = [v for v in values if isinstance(v, str)]
    if not texts or len(texts) < len(values):
        return None
    for separator in separators:
        if all(
            separator in t and shape.scored <= len(t.split(separator)) <= shape.total for t in texts
        ):
            return separator
    return None


def _find_screenings(
    columns: list[Column], sample: Sample, names: dict[str, Any]
) -> tuple[list[_Screening], set[str], list[tuple[str, str]]]:
    """The instruments whose answers the columns hold, the columns used, and what was found
    but not placed (with why)."""
    shapes = instrument_shapes()
    tokens = _instrument_tokens(shapes)
    alternation = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
    item_words = "|".join(re.escape(_key(w)) for w in names.get("item_words", ()))
    per_item = re.compile(rf"(?P<inst>{alternation})(?:{item_words})?(?P<n>[0-9]{{1,2}})")
    whole = re.compile(rf"(?P<inst>{alternation})[a-z]*")  # PHQ9, phq9_answers, PHQ9 total
    items: dict[str, dict[int, list[Column]]] = {}
    singles: list[tuple[str, Column]] = []
    for column in columns:
        labels = [column.parts[-1], " ".join(column.parts[-2:])]
        for label in dict.fromkeys(labels):
            key = _key(label)
            match = per_item.fullmatch(key)
            if match is not None:
                items.setdefault(tokens[match["inst"]], {}).setdefault(int(match["n"]), []).append(
                    column
                )
                break
            match = whole.fullmatch(key)
            if match is not None:
                singles.append((tokens[match["inst"]], column))
                break
    found: list[_Screening] = []
    used: set[str] = set()
    unplaced: list[tuple[str, str]] = []
    separators = [str(s) for s in names.get("separators", [","])]
    for instrument, numbered in items.items():
        shape = shapes[instrument]
        paths = [c.path for group in numbered.values() for c in group]
        repeated = sorted(n for n, group in numbered.items() if len(group) > 1)
        top = max(numbered)
        missing = [n for n in range(1, max(top, shape.scored) + 1) if n not in numbered]
        if repeated or missing or top > shape.total:
            reason = (
                f"two columns for item {repeated[0]}"
                if repeated
                else f"items {', '.join(map(str, missing))} have no column"
                if missing
                else f"{instrument} has {shape.total} items"
            )
            unplaced.extend((p, f"{instrument} answers, not placed: {reason}") for p in paths)
            used.update(paths)
            continue
        ordered = [numbered[n][0] for n in range(1, top + 1)]
        scored_values = [v for c in ordered[: shape.scored] for v in c.values]
        unscored_values = [v for c in ordered[shape.scored :] for v in c.values]
        words = _answer_words(scored_values, unscored_values, shape, names)
        why = [f"one column per item, {_count(len(ordered), 'item')}"]
        used.update(c.path for c in ordered)
        if words is None:
            found.append(
                _Screening(
                    instrument,
                    [c.path for c in ordered],
                    [
                        *why,
                        "NOT MAPPED: its answers are neither scores nor the words of an "
                        "answer table",
                    ],
                    active=False,
                )
            )
            continue
        table, unscored_table, notes = words
        found.append(
            _Screening(
                instrument, [c.path for c in ordered], why + notes, None, table, unscored_table
            )
        )
    for instrument, column in singles:
        used.add(column.path)
        if column.values and all(
            isinstance(v, int) or (isinstance(v, str) and _DIGITS.fullmatch(v))
            for v in column.values
        ):
            unplaced.append(
                (
                    column.path,
                    f"one number a record: a {instrument} total score? The target "
                    "takes the item answers, and scores the total itself",
                )
            )
            continue
        if any(s.instrument == instrument for s in found):
            unplaced.append((column.path, f"another {instrument} answer column is placed"))
            continue
        shape = shapes[instrument]
        arrays = [v for v in column.values if isinstance(v, list)]
        if arrays and sample.format == "json" and len(arrays) == len(column.values):
            if all(shape.scored <= len(a) <= shape.total for a in arrays):
                flat = [x for a in arrays for x in a if x is not None]
                words = _answer_words(
                    flat,
                    [],
                    InstrumentShape(shape.name, shape.total, shape.total, shape.low, shape.high),
                    names,
                )
                if words is not None:
                    found.append(
                        _Screening(
                            instrument,
                            column.path,
                            ["a JSON array of the item answers", *words[2]],
                            None,
                            words[0],
                            words[1],
                        )
                    )
                    continue
            unplaced.append((column.path, f"arrays that are not {instrument}'s item answers"))
            continue
        separator = _split_answers(column.values, shape, separators)
        if separator is not None:
            pieces = [p.strip() for v in column.values for p in str(v).split(separator)]
            scored = [p for p in pieces if p]
            words = _answer_words(
                scored,
                [],
                InstrumentShape(shape.name, shape.total, shape.total, shape.low, shape.high),
                names,
            )
            if words is not None:
                shown = "a space" if separator == " " else f"'{separator}'"
                found.append(
                    _Screening(
                        instrument,
                        column.path,
                        [f"every answer in one value, split at {shown}", *words[2]],
                        separator,
                        words[0],
                        None,
                    )
                )
                continue
        unplaced.append(
            (column.path, f"named like {instrument}, but its values are not its answers")
        )
    return found, used, unplaced


# --- the proposal ----------------------------------------------------------------------------


@dataclass
class _Group:
    name: str
    each: str | None
    items: list[list[Entry]]
    why: list[str]


@dataclass(frozen=True)
class Proposal:
    """A proposed mapping: its text, and what the proposal found."""

    text: str
    sample: Sample
    placed: tuple[str, ...]
    #: (source field, why it is not placed)
    unplaced: tuple[tuple[str, str], ...]
    #: (target field, what to decide): required fields nothing matched
    decisions: tuple[tuple[str, str], ...]
    #: the load-time check of the proposal: None when it loads
    check: MappingError | None
    #: the proposal tried on the sample (None when it does not load)
    tried: DryRun | None


def propose_mapping(
    sample_path: Path, target: str, *, name: str | None = None, fmt: str | None = None
) -> Proposal:
    """Read the sample at ``sample_path`` and propose a ``target`` mapping for its layout;
    ``name`` is the mapping's name (its file's stem). Raises ValueError for a target no
    proposal can be made for (:func:`target_names`), ReadError for a sample that cannot be
    read."""
    names = target_names(target)
    sample = read_sample(sample_path, fmt)
    title = name or f"{_SLUG.sub('-', sample_path.stem.casefold()).strip('-') or 'export'}"
    return _Proposer(sample, target, names, title).run(sample_path)


class _Proposer:
    def __init__(self, sample: Sample, target: str, names: Names, title: str) -> None:
        self.sample = sample
        self.target = target
        self.names = names
        self.title = title
        self.contract = MAP_TARGETS[target]
        self.required = self.contract.fields.required
        self.entries: dict[str, Entry] = {}
        self.used: set[str] = set()
        self.refusals: dict[str, list[str]] = {}
        self.unplaced: list[tuple[str, str]] = []
        self.screenings: list[_Screening] = []
        self.screening_date: Entry | None = None
        self.groups: list[_Group] = []
        self.constants: dict[str, tuple[Any, str]] = {}
        #: every source path the proposal reads, in the order written
        self.reads: list[str] = []

    # the steps

    def run(self, sample_path: Path) -> Proposal:
        columns = list(self.sample.columns)
        if self.contract.fields.screenings:
            found, used, unplaced = _find_screenings(columns, self.sample, self.names.screenings)
            self.screenings, self.unplaced = found, unplaced
            self.used |= used
        self._scalars()
        self._groups()
        self._screening_date()
        self._by_values()
        self._systems()
        body, decisions = self._body()
        check, tried = self._try(body, sample_path)
        unplaced = self._unplaced()
        text = self._header(tried, decisions, check) + body + self._footer(unplaced)
        if check is not None:  # the same problems, at the written file's lines
            check = self._check(text)
        return Proposal(
            text=text,
            sample=self.sample,
            placed=tuple(t for t, e in self.entries.items() if e.active),
            unplaced=tuple(unplaced),
            decisions=tuple(decisions),
            check=check,
            tried=tried,
        )

    def _free(self) -> list[Column]:
        return [c for c in self.sample.columns if c.path not in self.used]

    def _place(self, entry: Entry, column: Column) -> None:
        self.entries[entry.target] = entry
        self.used.add(column.path)

    def _scalars(self) -> None:
        rules = list(self.names.fields)
        combined = self.names.combined
        candidates = _candidates(rules, self._free())
        if combined is not None:
            candidates += [
                _Candidate(c.strength, c.rank + 1000, c.rule, c.column, c.key)
                for c in _candidates([combined], self._free())
            ]
            candidates.sort(key=lambda c: c.order, reverse=True)
        for candidate in candidates:
            rule, column = candidate.rule, candidate.column
            if column.path in self.used or rule.target in self.entries:
                continue
            if rule.type == "name" and rule.given_to in self.entries:
                continue
            if rule.target == "patient.given" and self._combined_placed():
                continue
            checked = _check(rule, column, self.sample.records, rule.target in self.required)
            if checked.entry is None:
                self.refusals.setdefault(column.path, []).append(
                    f"named like {rule.target}, but {checked.refused}"
                )
                continue
            checked.entry.why.insert(0, _named(column, rule.target, candidate))
            self._place(checked.entry, column)

    def _combined_placed(self) -> bool:
        family = self.entries.get("patient.family")
        return family is not None and family.spec.get("type") == "name"

    def _groups(self) -> None:
        for group, (list_names, rules) in self.names.groups.items():
            if group not in self.contract.fields.groups:
                continue
            placed = self._group_from_repeats(group, list_names, rules)
            if placed is None:
                placed = self._group_from_columns(group, rules)
            if placed is not None:
                self.groups.append(placed)

    def _item_entries(
        self,
        rules: tuple[Rule, ...],
        columns: list[Column],
        items: int,
        used: set[str],
        required: bool,
    ) -> list[Entry]:
        entries: dict[str, Entry] = {}
        for candidate in _candidates(rules, columns):
            rule, column = candidate.rule, candidate.column
            if column.path in used or rule.target in entries:
                continue
            checked = _check(rule, column, items, False)
            if checked.entry is None or not checked.entry.active:
                continue
            checked.entry.why.insert(0, _named(column, rule.target, candidate))
            if required and rule.display_to and len(column.values) == items:
                checked.entry.spec["required"] = True
                checked.entry.why.append(
                    "every item has one (required: an item without one is rejected)"
                )
            entries[rule.target] = checked.entry
            used.add(column.path)
        return [entries[r.target] for r in rules if r.target in entries]

    def _group_from_repeats(
        self, group: str, list_names: tuple[str, ...], rules: tuple[Rule, ...]
    ) -> _Group | None:
        code = rules[0].target
        for repeat in self.sample.repeats:
            keys = {key for key, _ in _keys(repeat.parts)}
            if not keys & set(list_names):
                continue
            used: set[str] = set()
            entries = self._item_entries(rules, repeat.columns, repeat.items, used, True)
            if not any(e.target == code for e in entries):
                continue
            self.used.add(repeat.path)
            return _Group(
                group,
                repeat.path,
                [entries],
                [
                    f"{repeat.path} is named like {group}; {_count(repeat.items, 'item')} in "
                    f"{repeat.records} of {self.sample.records} records"
                ],
            )
        return None

    def _group_from_columns(self, group: str, rules: tuple[Rule, ...]) -> _Group | None:
        code_rule = rules[0]
        items: list[list[Entry]] = []
        for candidate in _candidates([code_rule], self._free()):
            if candidate.column.path in self.used:
                continue
            checked = _check(code_rule, candidate.column, self.sample.records, False)
            if checked.entry is None:
                continue
            checked.entry.why.insert(0, _named(candidate.column, code_rule.target, candidate))
            if checked.entry.active:
                items.append([checked.entry])
                self.used.add(candidate.column.path)
            else:
                self.unplaced.append((candidate.column.path, checked.entry.why[-1]))
                self.used.add(candidate.column.path)
        if not items:
            return None
        extra = self._item_entries(
            tuple(rules[1:]), self._free(), self.sample.records, self.used, False
        )
        items[0].extend(extra)
        why = [
            "the record itself is the one item"
            if len(items) == 1
            else f"{len(items)} condition columns: one item each (items:)",
            "a blank cell gives no condition",
        ]
        return _Group(group, None, items, why)

    def _screening_date(self) -> None:
        spec = self.names.screenings.get("date") if self.contract.fields.screenings else None
        if not spec or not any(s.active for s in self.screenings):
            return
        rule = _rule("date", {"type": "date", "names": spec.get("names", ())})
        for candidate in _candidates([rule], self._free()):
            checked = _check(rule, candidate.column, self.sample.records, False)
            if checked.entry is None:
                continue
            checked.entry.why.insert(0, _named(candidate.column, "the screening date", candidate))
            self.screening_date = checked.entry
            self.used.add(candidate.column.path)
            return

    def _by_values(self) -> None:
        """Required fields no name matched, placed by their values: the only column of valid
        NHS numbers, the only column of dates left."""
        rules = {r.target: r for r in self.names.fields}
        for target in sorted(self.required - set(self.entries)):
            rule = rules.get(target)
            if rule is None or rule.type not in ("nhs_number", "date"):
                continue
            fits = []
            for column in self._free():
                if not column.values or len(column.values) < self.sample.records:
                    continue
                checked = _check(rule, column, self.sample.records, True)
                if checked.entry is None:
                    continue
                if rule.type == "nhs_number" and any("break" in w for w in checked.entry.why):
                    continue
                fits.append((column, checked.entry))
            if len(fits) == 1:
                column, entry = fits[0]
                entry.why.insert(
                    0,
                    f"{column.path} by its values, not its name: the only column left whose "
                    f"every value fits {target}",
                )
                self._place(entry, column)

    def _systems(self) -> None:
        """An identifier field whose values all have a known shape brings its system as a
        constant (the referrer's SDS user id); one whose shape is unknown is left commented
        out, since an identifier without its system cannot be sent."""
        rules = {r.target: r for r in self.names.fields}
        for target, entry in list(self.entries.items()):
            rule = rules.get(target)
            if rule is None or not rule.systems or not entry.active:
                continue
            values = next(c.values for c in self.sample.columns if c.path == entry.spec["from"])
            fitting = [
                system
                for system in rule.systems
                if values
                and all(isinstance(v, str) and re.fullmatch(system["pattern"], v) for v in values)
            ]
            if fitting:
                system = fitting[0]
                self.constants[system["target"]] = (
                    system["value"],
                    f"every {target} value looks like {system['what']}",
                )
                continue
            needed = rule.systems[0]["target"]
            if needed not in self.entries:
                entry.active = False
                entry.why.append(
                    f"NOT MAPPED: {target} needs {needed} (the identifier's namespace), and "
                    "the values do not say which: set it under constants: and make this line "
                    "live"
                )

    # the text

    def _body(self) -> tuple[str, list[tuple[str, str]]]:
        out: list[str] = []
        decisions: list[tuple[str, str]] = []
        out.append(f"format: {FORMAT_VERSION}")
        out.append(f"target: {self.target}")
        out.append("input:")
        out.extend(_comment(f"{self.sample.format}: {self.sample.why_format}", "  "))
        out.append(f"  format: {self.sample.format}")
        for note in self.sample.notes:
            out.extend(_comment(note, "  "))
        for guess in self.sample.options:
            out.extend(_comment(f"guess: {guess.why}", "  "))
            if isinstance(guess.value, dict):
                out.append(f"  {guess.key}: {_flow(guess.value)}")
            else:
                out.append(f"  {guess.key}: {_scalar(guess.value)}")
        out.extend(
            _comment(
                "SET: the identifier system of the clinic's record ids (a URI the clinic "
                "owns): this placeholder keeps the mapping loadable until then",
                "",
            )
        )
        out.append(f"source_system: https://example.org/Id/{self.title}")
        rules = {r.target: r for r in self.names.fields}
        live = {t for t, e in self.entries.items() if e.active}
        missing = [t for t in sorted(self.required) if t not in live]
        constant_needed = [
            t for t in missing if t not in self.entries and rules.get(t) and rules[t].constant
        ]
        if self.constants:
            out.append("constants:")
            for key, (value, why) in self.constants.items():
                out.extend(_comment(f"guess: {why}", "  "))
                out.append(f"  {key}: {_scalar(value)}")
        for target in constant_needed:
            decisions.append(
                (
                    target,
                    f"no column is named like {target}: give its value under constants:, or "
                    "map a column under fields:",
                )
            )
            out.extend(
                _comment(
                    f"DECIDE {target} (required): no column is named like it. Map a column "
                    "under fields:, or make the next line live with the value:",
                    "",
                )
            )
            if self.constants:
                out.append(f"#   {target}: <value>")
            else:
                out.append(f"# constants: {{{target}: <value>}}")
        out.append("fields:")
        ordered = [r.target for r in self.names.fields]
        if self.names.combined is not None:
            ordered.append(self.names.combined.target)
        for target in dict.fromkeys(ordered):
            entry = self.entries.get(target)
            if entry is not None and not entry.active and target in missing:
                decisions.append((target, entry.why[-1]))
            if entry is None:
                if target in missing and target not in constant_needed:
                    rule = rules[target]
                    decisions.append(
                        (target, f"no column is named like {target} or has values that fit it")
                    )
                    out.extend(
                        _comment(
                            f"DECIDE {target} (required): no column is named like it or has "
                            "values that fit it; name its column here and make the line live:",
                            "  ",
                        )
                    )
                    placeholder = {"from": "<column>", "type": rule.type, "required": True}
                    out.append(f"  # {target}: {_flow(placeholder)}")
                continue
            out.extend(_entry_lines(entry, "  "))
            if entry.active:
                self.reads.append(str(entry.spec["from"]))
        if self.groups:
            out.append("groups:")
            for group in self.groups:
                out.append(f"  {group.name}:")
                out.extend(_comment("guess: " + "; ".join(group.why), "    "))
                sources = ", ".join(str(e.spec["from"]) for item in group.items for e in item)
                if group.each is not None:
                    out.append(f"    each: {_scalar(group.each)}")
                    self.reads.append(f"{group.each} ({sources})")
                else:
                    self.reads.append(sources)
                if len(group.items) == 1:
                    out.append("    fields:")
                    for entry in group.items[0]:
                        out.extend(_entry_lines(entry, "      "))
                else:
                    out.append("    items:")
                    for item in group.items:
                        for index, entry in enumerate(item):
                            out.extend(_comment("guess: " + "; ".join(entry.why), "        "))
                            lead = "      - " if index == 0 else "        "
                            out.append(f"{lead}{entry.target}: {_flow(entry.spec)}")
        active = [s for s in self.screenings if s.active]
        if active or self.screenings:
            out.append("screenings:" if active else "# screenings:")
            if self.screening_date is not None and active:
                entry = self.screening_date
                self.reads.append(str(entry.spec["from"]))
                out.extend(_comment("guess: " + "; ".join(entry.why), "  "))
                out.append(f"  date: {_flow(entry.spec)}")
            elif active:
                out.extend(
                    _comment(
                        "no column is named like a screening date: each screening is dated "
                        "at the visit (event_date)",
                        "  ",
                    )
                )
            out.append("  items:" if active else "#   items:")
            for screening in self.screenings:
                spec: dict[str, Any] = {
                    "instrument": screening.instrument,
                    "answers": screening.answers,
                }
                if screening.split is not None:
                    spec["split"] = screening.split
                if screening.answer_table:
                    spec["answer_table"] = screening.answer_table
                if screening.unscored_answer_table:
                    spec["unscored_answer_table"] = screening.unscored_answer_table
                lead = "    - " if screening.active else "    # - "
                if screening.active:
                    answers = screening.answers
                    self.reads.extend(answers if isinstance(answers, list) else [answers])
                kind = "guess" if screening.active else "not placed"
                out.extend(
                    _comment(f"{kind}: {screening.instrument}: " + "; ".join(screening.why), "    ")
                )
                out.append(lead + _flow(spec))
        return "\n".join(out) + "\n", decisions

    def _unplaced(self) -> list[tuple[str, str]]:
        out = list(self.unplaced)
        for target, entry in self.entries.items():
            if not entry.active:
                out.append((str(entry.spec["from"]), f"for {target}: " + entry.why[-1]))
        for screening in self.screenings:
            if not screening.active:
                first = (
                    screening.answers[0]
                    if isinstance(screening.answers, list)
                    else screening.answers
                )
                out.append((str(first), f"{screening.instrument}: {screening.why[-1]}"))
        placed = {p for p, _ in out}
        for column in self.sample.columns:
            if column.path in self.used or column.path in placed:
                continue
            refusals = self.refusals.get(column.path)
            if refusals:
                out.append((column.path, refusals[0]))
            elif not column.values:
                out.append((column.path, "blank in every record of the sample"))
            else:
                out.append((column.path, "no target field is named like it"))
        for repeat in self.sample.repeats:
            if repeat.path not in self.used:
                out.append(
                    (
                        repeat.path,
                        "repeats in a record, and no group is named like it (a group with "
                        "each:, or screenings with each:, is written by hand: "
                        "mappings/README.md)",
                    )
                )
        out.extend(self.sample.skipped)
        return out

    def _load(self, text: str, folder: Path) -> Mapping[Any]:
        path = folder / f"{self.title}.yaml"
        path.write_text(text, "utf-8")
        return load_mapping(path)

    def _try(self, body: str, sample_path: Path) -> tuple[MappingError | None, DryRun | None]:
        """The engine's check of the proposal and, when it loads, a dry run on the sample."""
        with tempfile.TemporaryDirectory(prefix="fhir-iapt-init-") as folder:
            try:
                mapping = self._load(f"# {self.title}: a proposal.\n{body}", Path(folder))
            except MappingError as exc:
                return exc, None
            return None, dry_run([sample_path], mapping, limit=MAX_RECORDS)

    def _check(self, text: str) -> MappingError | None:
        with tempfile.TemporaryDirectory(prefix="fhir-iapt-init-") as folder:
            try:
                self._load(text, Path(folder))
            except MappingError as exc:
                return exc
            return None

    def _header(
        self,
        tried: DryRun | None,
        decisions: list[tuple[str, str]],
        check: MappingError | None,
    ) -> str:
        sample = self.sample
        lines = _comment(
            f"{self.title}: {'an' if sample.format == 'xml' else 'a'} {sample.format.upper()} "
            "export, proposed by fhir-iapt mapping init "
            f"from {sample.file} ({_count(sample.records, 'record')} read"
            + (", the first only" if sample.truncated else "")
            + "). Every guess has a comment: check each one, then try the mapping: "
            f"fhir-iapt convert {sample.file} --mapping <this file> --dry-run",
            "",
        )
        reads = self.reads
        lines += _comment("Reads: " + ", ".join(dict.fromkeys(reads)) + ".", "")
        if tried is not None:
            summary = (
                f"Tried on the sample: {tried.mapped} of {tried.records} records map"
                f"{'' if not tried.rejected_total else f', {tried.rejected_total} rejected'}"
            )
            by_field = tried.rejects_by_field()
            if by_field:
                summary += (
                    " ("
                    + ", ".join(f"{name}: {count}" for name, count in by_field.most_common())
                    + ")"
                )
            lines += _comment(summary + ".", "")
        if decisions:
            lines.append("#")
            lines.append("# Needs a decision before this mapping loads:")
            for target, what in decisions:
                lines += _listed(f"{target}: {what}")
        if check is not None:
            lines.append("# fhir-iapt mapping check says of it now:")
            for issue in check.issues:
                where = issue.location.field if issue.location and issue.location.field else ""
                lines += _listed(f"{where + ': ' if where else ''}{issue.diagnostics}")
        return "\n".join(lines) + "\n"

    def _footer(self, unplaced: list[tuple[str, str]]) -> str:
        if not unplaced:
            return ""
        lines = ["", "# Not placed (map by hand, or leave out):"]
        for source, why in unplaced:
            lines += _listed(f"{source}: {why}")
        return "\n".join(lines) + "\n"


def _named(column: Column, target: str, candidate: _Candidate) -> str:
    if candidate.strength[0] == 2:
        return f"{column.path} is named like {target}"
    return f"{column.path} ends in a name for {target}"


def _entry_lines(entry: Entry, indent: str) -> list[str]:
    if entry.active:
        return [
            *_comment("guess: " + "; ".join(entry.why), indent),
            f"{indent}{entry.target}: {_flow(entry.spec)}",
        ]
    return [
        *_comment("; ".join(entry.why), indent),
        f"{indent}# {entry.target}: {_flow(entry.spec)}",
    ]


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


def _comment(text: str, indent: str, lead: str = "# ", follow: str = "#   ") -> list[str]:
    """``text`` as comment lines at ``indent``, wrapped (a value never reaches here)."""
    return textwrap.wrap(
        _clean(text),
        width=max(40, _WIDTH - len(indent)),
        initial_indent=indent + lead,
        subsequent_indent=indent + follow,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [(indent + lead).rstrip()]


def _listed(text: str) -> list[str]:
    """One entry of a comment list (``#   source: why``)."""
    return _comment(text, "", "#   ", "#     ")


def _scalar(value: Any) -> str:
    """``value`` as a YAML scalar: plain when that reads back as the same text, else quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text == text.strip():
        try:
            if yaml.safe_load(f"[{text}]") == [text]:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


__all__ = ["Proposal", "propose_mapping", "target_names"]
