"""The mapping format's vocabulary, and the compiled form of a mapping file the engine runs.

The vocabulary (``INPUT_OPTIONS``, ``COMMON_FIELD_OPTIONS``, ``TYPE_OPTIONS``, ...) names every
key a mapping file may hold, where it applies and what it means: the loader checks files against
it. The compiled form is built once by :func:`fhir_iapt.mapping.load_mapping`; immutable, and
holds no YAML: every path is compiled, every lookup table loaded, every converter bound (the
options a mapping does not use cost nothing per record).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from fhir_iapt.mapping._fast import fast_answers
from fhir_iapt.mapping._paths import SourcePath
from fhir_iapt.mapping._types import Converter
from fhir_iapt.mapping.contract import MapTarget
from fhir_iapt.sources import SourceFormat

TargetName = Literal["referral", "episode", "questionnaire-response"]
JsonLayout = Literal["auto", "array", "ndjson"]
R = TypeVar("R")

# The vocabulary of a mapping file: every key the loader accepts, where it applies and what it
# means. The loader checks a file against these (an unknown key is a located MappingError),
# mappings/README.md documents them, and a schema of the format can be generated from them.

#: ``input:`` keys per input format -> what each means.
INPUT_OPTIONS: dict[str, dict[str, str]] = {
    "csv": {
        "format": "csv",
        "delimiter": "the one character between cells (default ',')",
        "quotechar": "the one character that quotes a cell (default '\"')",
        "encoding": "the export's encoding: utf-8 (default) or a single-byte one such as cp1252",
        "skip_lines": "how many lines before the header row to skip (a preamble; default 0)",
    },
    "json": {
        "format": "json",
        "layout": "auto | array | ndjson (default auto: '[' starts an array, else NDJSON)",
    },
    "xml": {
        "format": "xml",
        "record": "absolute path of the record elements, like /Root/Record (prefixes allowed)",
        "namespaces": "prefix -> namespace URI, for the record path and every XPath",
        "encoding": "read the bytes in this encoding whatever the XML declaration says",
    },
    "fhir": {"format": "fhir"},
}

#: Field spec keys every type takes -> what each means.
COMMON_FIELD_OPTIONS: dict[str, str] = {
    "from": "the source path (CSV column, XPath, dotted JSON path)",
    "type": "the field type (default string)",
    "required": "a blank value rejects the record (default false)",
    "optional_column": "CSV: the column may be missing from the header (read as blank)",
    "default": "the value a blank cell takes, checked by the field's rules when the mapping loads",
}

#: Field type -> its own options -> what each means.
TYPE_OPTIONS: dict[str, dict[str, str]] = {
    "string": {
        "list": "a JSON array of strings (or one string) gives a tuple",
        "max_length": "the most characters allowed",
    },
    "int": {
        "min": "the smallest value allowed",
        "max": "the largest value allowed",
        "unit": "the unit the value may be followed by (e.g. '%'); no other unit is accepted",
    },
    "decimal": {
        "min": "the smallest value allowed",
        "max": "the largest value allowed",
        "unit": "the unit the value may be followed by (e.g. mmol/mol); no other is accepted",
        "decimal_separator": "'.' (default) or ',' (7,5): the only separator then accepted",
    },
    "date": {
        "formats": "accepted formats: %Y %m %d, optionally %H %M %S (time checked, not kept)",
        "allow_future": "accept a date after today (default false)",
        "min": "the earliest date allowed (ISO date)",
    },
    "bool": {"table": "the lookup table of yes/no terms (default yes-no)"},
    "nhs_number": {
        "separators": "characters besides spaces that may group the 10 digits, e.g. '-'",
    },
    "ods": {},
    "code": {
        "table": "the lookup table (required)",
        "display_to": "a sibling target field that gets the table entry's display",
    },
    "enum": {"values": "the allowed values (required)"},
    "name": {
        "given_to": "the sibling target field that gets the given names (required)",
    },
}

#: Every key a field spec may have.
FIELD_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys([*COMMON_FIELD_OPTIONS, *(k for o in TYPE_OPTIONS.values() for k in o)])
)

#: ``groups.<name>:`` keys -> what each means.
GROUP_OPTIONS: dict[str, str] = {
    "each": "xml / json: the path of the item elements / array (absent: the record is one item)",
    "fields": "item field -> field spec",
    "items": "several items from one record, each its own item field -> field spec (no each:)",
}

#: ``screenings:`` keys -> what each means.
SCREENING_OPTIONS: dict[str, str] = {
    "date": "the date field of every instrument (optional)",
    "items": "fixed instruments: a list of screening items",
    "each": "xml: the path of the repeated screening elements",
    "instrument": "with each: the field naming the instrument",
    "answers": "with each: {each:, item:, value:} per answer element",
    "answer_table": "with each: a lookup table from answer words to scores, scored items",
    "unscored_answer_table": "with each: the same for the unscored items (PHQ-9 item 10)",
}

#: ``screenings.items[]`` keys -> what each means.
SCREENING_ITEM_OPTIONS: dict[str, str] = {
    "instrument": "a name from tables/instruments.yaml",
    "answers": "one source path per item (a list), or one path (a JSON array, or with split:)",
    "split": "the separator between the answers when one column holds them all ('1,2,0,...')",
    "date": "this instrument's own date field (optional)",
    "answer_table": "a lookup table from answer words ('Several days') to scores, scored items",
    "unscored_answer_table": "the same for the unscored items (PHQ-9 item 10)",
}


@dataclass(frozen=True, slots=True)
class InputSpec:
    """The checked ``input:`` section: how the reader reads the export (see INPUT_OPTIONS)."""

    format: SourceFormat
    delimiter: str = ","
    quotechar: str = '"'
    layout: JsonLayout = "auto"
    record: str | None = None
    #: None: CSV reads UTF-8, XML follows its declaration (else UTF-8)
    encoding: str | None = None
    skip_lines: int = 0
    namespaces: AbcMapping[str, str] = field(default_factory=dict)
    #: CSV: the columns the mapping reads (filled by the loader, not written in the file)
    required_columns: tuple[str, ...] = ()

    def reader_options(self) -> dict[str, Any]:
        """The options the format's reader takes (:func:`fhir_iapt.sources.read_records`)."""
        if self.format == "csv":
            return {
                "delimiter": self.delimiter,
                "quotechar": self.quotechar,
                "encoding": self.encoding or "utf-8",
                "skip_lines": self.skip_lines,
                "required_columns": self.required_columns,
            }
        if self.format == "json":
            return {"layout": self.layout}
        if self.format == "xml":
            options: dict[str, Any] = {"record": self.record}
            if self.namespaces:
                options["namespaces"] = dict(self.namespaces)
            if self.encoding is not None:
                options["encoding"] = self.encoding
            return options
        return {}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One target field filled from one source path, converted and checked."""

    target: str
    path: SourcePath
    convert: Converter
    required: bool = False
    #: sibling target that receives the converter's second value: a ``code`` field's display
    #: (``display_to``) or a ``name`` field's given names (``given_to``); the converter then
    #: returns a pair
    display_to: str | None = None
    #: the ``default:`` a blank value takes (as written); already part of ``path.get``
    default: Any = None
    #: ``path.get``, bound once (the hot loop reads it per record)
    get: Callable[[Any], Any] = field(init=False)
    #: False for ``_``-prefixed check-only targets
    keep: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "get", self.path.get)
        object.__setattr__(self, "keep", not self.target.startswith("_"))

    @property
    def source(self) -> str:
        return self.path.text


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A repeating group: one item per element / array entry (or the record itself), or
    several items from the one record, each from its own paths (``items:``)."""

    name: str
    each: SourcePath | None
    fields: tuple[FieldSpec, ...]
    #: ``items:``: the field specs of each item the record gives (``fields`` is then empty)
    items: tuple[tuple[FieldSpec, ...], ...] = ()
    #: the field specs of every item a record gives (``items``, or ``(fields,)``)
    field_sets: tuple[tuple[FieldSpec, ...], ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_sets", self.items or (self.fields,))


@dataclass(frozen=True, slots=True)
class AnswerPaths:
    """Where an instrument's item scores are: per-item paths, one array path, or elements."""

    per_item: tuple[SourcePath, ...] = ()
    #: one path: a JSON array of the scores, or (with ``split``) text holding them all
    array: SourcePath | None = None
    #: the separator between the answers in one value (``split:``)
    split: str | None = None
    each: SourcePath | None = None
    item: SourcePath | None = None
    value: SourcePath | None = None
    #: all ``per_item`` values at once (one ``itemgetter`` call for CSV columns)
    get_all: Callable[[Any], tuple[Any, ...]] | None = None


@dataclass(frozen=True, slots=True)
class InstrumentShape:
    """From ``tables/instruments.yaml``: how many items are scored, how many there are."""

    name: str
    scored: int
    total: int
    low: int
    high: int
    #: item score text -> score ("0".."3"), for the per-record fast path
    scores: AbcMapping[Any, int] = field(default_factory=dict)
    #: answer words -> score per item position (``answer_table:``; empty: digits as ``scores``)
    item_scores: tuple[AbcMapping[Any, int], ...] = ()
    #: the ``item_scores`` keys are case-folded (the tables match case-insensitively)
    casefold: bool = False
    #: per item position, the rule an answer must meet, for messages ("a score from 0 to 3")
    item_rules: tuple[str, ...] = ()


FastAnswers = Callable[[InstrumentShape, tuple[Any, ...]], Any]


@dataclass(frozen=True, slots=True)
class FixedScreening:
    """One instrument at a fixed place in the record (CSV columns, a JSON array)."""

    shape: InstrumentShape
    answers: AnswerPaths
    date: FieldSpec | None = None
    #: the fast path for these cells, chosen when the mapping loads: ``_fast.fast_answers``
    #: (the default), or ``_fast.fast_table_answers`` for answers looked up in tables
    fast: FastAnswers = fast_answers


@dataclass(frozen=True, slots=True)
class ScreeningSpec:
    """The screenings block: fixed instruments, or repeated elements naming their instrument."""

    date: FieldSpec | None = None
    fixed: tuple[FixedScreening, ...] = ()
    each: SourcePath | None = None
    instrument: FieldSpec | None = None
    answers: AnswerPaths | None = None
    shapes: AbcMapping[str, InstrumentShape] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)
class Mapping(Generic[R]):
    """A loaded, checked, compiled mapping file that makes records of type ``R``.

    ``contract`` is the map-stage half of its target (:mod:`fhir_iapt.mapping.contract`).
    """

    name: str
    path: Path | None
    target: TargetName
    input_format: SourceFormat
    #: the reader's options (``input.reader_options()``)
    input_options: AbcMapping[str, Any]
    source_system: str
    constants: AbcMapping[str, Any]
    fields: tuple[FieldSpec, ...]
    groups: tuple[GroupSpec, ...]
    screenings: ScreeningSpec | None
    contract: MapTarget[R]
    version: int = 1
    #: the checked ``input:`` section
    input: InputSpec | None = None

    def __repr__(self) -> str:
        return f"Mapping(name={self.name!r}, target={self.target!r}, format={self.input_format!r})"


__all__ = [
    "COMMON_FIELD_OPTIONS",
    "FIELD_KEYS",
    "GROUP_OPTIONS",
    "INPUT_OPTIONS",
    "SCREENING_ITEM_OPTIONS",
    "SCREENING_OPTIONS",
    "TYPE_OPTIONS",
    "AnswerPaths",
    "FastAnswers",
    "FieldSpec",
    "FixedScreening",
    "GroupSpec",
    "InputSpec",
    "InstrumentShape",
    "JsonLayout",
    "Mapping",
    "ScreeningSpec",
    "TargetName",
]
