"""What a target asks of a mapping: the record it makes and the fields a mapping may fill.

A target is a canonical record kind (``referral``, ``episode``, ``questionnaire-response``). Its
map-stage half is a :class:`MapTarget`: the record type, the target fields a mapping file may fill
(checked when the mapping loads) and how one record is made, in one of two ways:

- ``fill(values, location, source_system) -> record``: from the typed, checked values a mapping's
  ``fields:`` / ``groups:`` / ``screenings:`` produced (clinic exports, episode exports);
- ``read(data, location) -> record``: from the whole source record, for inputs that are already
  structured the way the target needs (a FHIR QuestionnaireResponse). Such a target takes no
  ``fields:``; its mapping names only the input format.

The rest of the contract (the gate deciding whether a record may leave, and the builder) belongs
to later stages and lives in :mod:`fhir_iapt.targets`, which imports this module, never the
reverse. How a target declares its fields is documented in ``mappings/README.md`` ("Targets").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fhir_iapt.errors import Location

R = TypeVar("R")

#: ``(values, location, source_system) -> record``, called once per cleanly mapped record.
Fill = Callable[[dict[str, Any], Location, str], R]
#: ``(data, location) -> record``, for targets read whole from the source record.
Read = Callable[[Any, Location], R]


@dataclass(frozen=True, slots=True)
class TargetFields:
    """The fields a target accepts.

    ``scalars`` are dotted target paths allowed in ``fields:`` and ``constants:``; ``required``
    (a subset of ``scalars``) must be mapped by every mapping and be non-blank in every record;
    ``groups`` maps a repeating group's name to its item fields; ``screenings`` says whether a
    ``screenings:`` block is accepted.
    """

    scalars: frozenset[str]
    required: frozenset[str] = frozenset()
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    screenings: bool = False


#: A target read whole from its source accepts no mapped fields at all.
NO_FIELDS = TargetFields(scalars=frozenset())


@dataclass(frozen=True, slots=True)
class MapTarget(Generic[R]):
    """The map-stage half of a target: its record type and how a mapping makes one.

    Exactly one of ``fill`` and ``read`` is set. ``input_formats`` limits which source formats a
    mapping for this target may read (empty: any).
    """

    name: str
    record_type: type[R]
    fields: TargetFields
    fill: Fill[R] | None = None
    read: Read[R] | None = None
    input_formats: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if (self.fill is None) == (self.read is None):
            raise TypeError(f"target {self.name!r} needs exactly one of fill and read")
        if self.read is not None and self.fields != NO_FIELDS:
            raise TypeError(f"target {self.name!r} is read whole; it declares no fields")


__all__ = ["NO_FIELDS", "Fill", "MapTarget", "Read", "TargetFields"]
