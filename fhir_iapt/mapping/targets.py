"""The target registry: what a mapping can produce, and which fields each target accepts.

A target is a canonical record kind (``referral``, ``episode``). Each is named here by two
``module:attribute`` strings, imported only when a mapping for that target loads, so a missing or
broken target module never stops another target from working:

- ``factory``: ``(values, location, mapping) -> record``, called once per cleanly mapped record;
- ``fields``: a :class:`TargetFields` naming the target fields a mapping may fill.

How a target module declares its fields is documented in ``mappings/README.md`` ("Targets").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from fhir_iapt.errors import Location

if TYPE_CHECKING:
    from fhir_iapt.mapping._model import Mapping as MappingFile

#: ``(values, location, mapping) -> record``.
Factory = Callable[[dict[str, Any], Location, "MappingFile"], Any]


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


@dataclass(frozen=True, slots=True)
class Target:
    """A registry entry: where a target's factory and field declaration live."""

    factory: str
    fields: str


TARGETS: dict[str, Target] = {
    "referral": Target(
        factory="fhir_iapt.mapping.referral:build_referral_record",
        fields="fhir_iapt.mapping.referral:FIELDS",
    ),
    "episode": Target(
        factory="fhir_iapt.mapping.episode:build_episode_record",
        fields="fhir_iapt.mapping.episode:FIELDS",
    ),
}


def _resolve(ref: str) -> Any:
    module_name, attr = ref.split(":")
    return getattr(importlib.import_module(module_name), attr)


@cache
def target_fields(name: str) -> TargetFields:
    """The field declaration of target ``name`` (imports its module on first use)."""
    declared = _resolve(TARGETS[name].fields)
    if not isinstance(declared, TargetFields):
        raise TypeError(f"{TARGETS[name].fields} is not a TargetFields")
    return declared


@cache
def target_factory(name: str) -> Factory:
    """The record factory of target ``name`` (imports its module on first use)."""
    factory = _resolve(TARGETS[name].factory)
    if not callable(factory):
        raise TypeError(f"{TARGETS[name].factory} is not callable")
    return factory  # type: ignore[no-any-return]


__all__ = ["TARGETS", "Factory", "Target", "TargetFields", "target_factory", "target_fields"]
