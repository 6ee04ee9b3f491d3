"""The compiled form of a mapping file: what the engine runs per record.

Built once by :func:`fhir_iapt.mapping.load_mapping`; immutable, and holds no YAML: every path is
compiled, every lookup table loaded, every converter bound.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from fhir_iapt.mapping._paths import SourcePath
from fhir_iapt.mapping._types import Converter
from fhir_iapt.mapping.contract import MapTarget
from fhir_iapt.sources import SourceFormat

TargetName = Literal["referral", "episode", "questionnaire-response"]
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One target field filled from one source path, converted and checked."""

    target: str
    path: SourcePath
    convert: Converter
    required: bool = False
    #: sibling target that receives the lookup table's display (``code`` fields only)
    display_to: str | None = None
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
    """A repeating group: one item per element / array entry (or the record itself)."""

    name: str
    each: SourcePath | None
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True, slots=True)
class AnswerPaths:
    """Where an instrument's item scores are: per-item paths, one array path, or elements."""

    per_item: tuple[SourcePath, ...] = ()
    array: SourcePath | None = None
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


@dataclass(frozen=True, slots=True)
class FixedScreening:
    """One instrument at a fixed place in the record (CSV columns, a JSON array)."""

    shape: InstrumentShape
    answers: AnswerPaths
    date: FieldSpec | None = None


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
    input_options: AbcMapping[str, Any]
    source_system: str
    constants: AbcMapping[str, Any]
    fields: tuple[FieldSpec, ...]
    groups: tuple[GroupSpec, ...]
    screenings: ScreeningSpec | None
    contract: MapTarget[R]
    version: int = 1

    def __repr__(self) -> str:
        return f"Mapping(name={self.name!r}, target={self.target!r}, format={self.input_format!r})"


__all__ = [
    "AnswerPaths",
    "FieldSpec",
    "FixedScreening",
    "GroupSpec",
    "InstrumentShape",
    "Mapping",
    "ScreeningSpec",
    "TargetName",
]
