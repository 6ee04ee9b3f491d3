"""The outcome-measure table (``mappings/tables/measures.yaml``), loaded once and checked.

One place for every threshold the episode rules use: measure ranges, caseness cut-offs,
reliable change indices, which anxiety measure fits a problem descriptor, the finished-treatment
contact count, and the UNVERIFIED switches. Values the table marks ``U`` are exposed as such
(:attr:`MeasureSpec.unverified`) so docs and outputs can say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from fhir_iapt._data import load_table
from fhir_iapt.errors import MappingError
from fhir_iapt.scoring.instruments import IAPT_MEASURE_SYSTEM, Coding


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    """One outcome measure: range, cut-off, reliable change index, codes, status of each."""

    name: str
    title: str
    low: Decimal
    high: Decimal
    decimals: int
    caseness_at: Decimal | None
    reliable_change: Decimal | None
    codes: tuple[Coding, ...]
    status: Mapping[str, str]

    @property
    def unverified(self) -> tuple[str, ...]:
        """Which parts of this measure the table marks U (e.g. ``("caseness", "codes")``)."""
        return tuple(sorted(part for part, mark in self.status.items() if mark == "U"))


@dataclass(frozen=True, slots=True)
class OutcomeRules:
    """The rule switches and the measure table, as one value."""

    measures: Mapping[str, MeasureSpec]
    finished_treatment_min_contacts: int
    excludes_opposite_on_other: bool
    flags_require_finished_treatment: bool
    problem_descriptors: Mapping[str, tuple[str, ...]]  # normalised ICD-10 prefix -> measures
    default_anxiety_measure: str
    depression_measure: str
    status: Mapping[str, str]

    def measure(self, name: str) -> MeasureSpec:
        return self.measures[name]

    @property
    def adsm_names(self) -> tuple[str, ...]:
        """The anxiety disorder-specific measures (every measure named by a descriptor)."""
        seen: dict[str, None] = {}
        for names in self.problem_descriptors.values():
            for name in names:
                seen[name] = None
        return tuple(seen)

    def anxiety_measures_for(self, problem_descriptor: str | None) -> tuple[str, ...]:
        """The ADSMs that fit ``problem_descriptor`` (longest ICD-10 prefix), () if none does."""
        if not problem_descriptor:
            return ()
        code = normalise_icd10(problem_descriptor)
        best = ""
        for prefix in self.problem_descriptors:
            if code.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.problem_descriptors.get(best, ()) if best else ()


def normalise_icd10(code: str) -> str:
    """``"f41.1 "`` -> ``"F411"`` (upper case, no dot or spaces) for prefix matching."""
    return code.strip().upper().replace(".", "")


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _coding(raw: Mapping[str, Any]) -> Coding:
    system = IAPT_MEASURE_SYSTEM if raw.get("own") else str(raw["system"])
    return Coding(system=system, code=str(raw["code"]), display=raw.get("display"))


def _measure(name: str, raw: Mapping[str, Any]) -> MeasureSpec:
    low, high = raw["range"]
    return MeasureSpec(
        name=name,
        title=str(raw["title"]),
        low=_decimal(low),
        high=_decimal(high),
        decimals=int(raw.get("decimals", 0)),
        caseness_at=_decimal(raw["caseness_at"]) if "caseness_at" in raw else None,
        reliable_change=_decimal(raw["reliable_change"]) if "reliable_change" in raw else None,
        codes=tuple(_coding(c) for c in raw["codes"]),
        status={str(k): str(v) for k, v in raw.get("status", {}).items()},
    )


def rules_from_table(table: Mapping[str, Any]) -> OutcomeRules:
    """Build and check :class:`OutcomeRules` from a parsed measures table."""
    try:
        measures = {str(n): _measure(str(n), raw) for n, raw in table["measures"].items()}
        rules = table["rules"]
        descriptors = {
            normalise_icd10(str(code)): tuple(str(n) for n in names)
            for code, names in table["problem_descriptors"].items()
        }
        out = OutcomeRules(
            measures=measures,
            finished_treatment_min_contacts=int(rules["finished_treatment_min_contacts"]),
            excludes_opposite_on_other=bool(rules["reliable_change_excludes_opposite_on_other"]),
            flags_require_finished_treatment=bool(
                rules["outcome_flags_require_finished_treatment"]
            ),
            problem_descriptors=descriptors,
            default_anxiety_measure=str(table["default_anxiety_measure"]),
            depression_measure=str(table["depression_measure"]),
            status={str(k): str(v) for k, v in rules.items() if str(k).endswith("_status")},
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise MappingError(f"measures table is malformed: {exc!r}") from exc
    named = {out.default_anxiety_measure, out.depression_measure, *out.adsm_names}
    missing = sorted(named - set(measures))
    if missing:
        raise MappingError(f"measures table names measures it does not define: {missing}")
    for name in (out.default_anxiety_measure, out.depression_measure, *out.adsm_names):
        spec = measures[name]
        if spec.caseness_at is None or spec.reliable_change is None:
            raise MappingError(f"measure {name} needs caseness_at and reliable_change")
    return out


@cache
def outcome_rules() -> OutcomeRules:
    """The rules from the bundled ``measures.yaml`` (loaded once)."""
    return rules_from_table(load_table("measures"))


__all__ = [
    "IAPT_MEASURE_SYSTEM",
    "MeasureSpec",
    "OutcomeRules",
    "normalise_icd10",
    "outcome_rules",
    "rules_from_table",
]
