"""The map-stage target registry: every record kind a mapping file can name in ``target:``.

Each entry is a :class:`~fhir_iapt.mapping.contract.MapTarget`, imported directly: its record
type, the fields a mapping may fill and how one record is made. The gate and builder of each
target (later stages) are joined to these in :mod:`fhir_iapt.targets`.
"""

from __future__ import annotations

from typing import Any

from fhir_iapt.mapping.contract import MapTarget, TargetFields
from fhir_iapt.mapping.episode import EPISODE
from fhir_iapt.mapping.referral import REFERRAL
from fhir_iapt.mapping.response import RESPONSE

#: target name (as a mapping's ``target:`` says it) -> its map-stage contract
MAP_TARGETS: dict[str, MapTarget[Any]] = {t.name: t for t in (REFERRAL, EPISODE, RESPONSE)}


def target_fields(name: str) -> TargetFields:
    """The fields target ``name`` accepts (KeyError for an unknown target)."""
    return MAP_TARGETS[name].fields


__all__ = ["MAP_TARGETS", "MapTarget", "TargetFields", "target_fields"]
