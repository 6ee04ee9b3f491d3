"""The data-set table (``mappings/tables/dataset.yaml``), loaded once and checked.

Every name, code and range the reader and the derivation use comes from that file, each marked
there V / V2 / U with the source it was read in; this module only types it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from fhir_iapt._data import load_table
from fhir_iapt.errors import MappingError

#: The nine tables, in the order they are loaded (parents before children is not needed: rows
#: are joined in SQL once every table is in).
TABLE_NAMES: tuple[str, ...] = (
    "IDS000Header",
    "IDS001MPI",
    "IDS101Referral",
    "IDS201CareContact",
    "IDS202CareActivity",
    "IDS602LongTermCondition",
    "IDS603PresentingComplaints",
    "IDS606CodedScoreAssessmentRefer",
    "IDS607CodedScoreAssessmentAct",
)
WSAS_ITEMS: tuple[str, ...] = ("work", "home", "social", "private", "relationships")


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One table: its CSV file name, the columns it must have, those read when present."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    key: tuple[str, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.csv"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One CodedAssToolType concept: its PersScore range, and what the episode uses it for."""

    concept: str
    name: str
    low: Decimal
    high: Decimal
    decimals: int
    measure: str | None  # a measures.yaml name (PHQ-9, GAD-7, an ADSM), or None
    wsas_item: str | None  # one of WSAS_ITEMS, or None
    not_available: frozenset[Decimal]  # in-range values that mean "no score" (WSAS work 9)


@dataclass(frozen=True, slots=True)
class DerivedField:
    """One NHS Digital derived IDS101 field and the value of ours it is compared with."""

    name: str
    ours: str
    kind: str  # flag | int | score | text


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    tables: Mapping[str, TableSpec]
    file_types: Mapping[str, int]
    attend_codes: frozenset[str]
    attended_codes: frozenset[str]
    unplanned: str
    treatment_app_types: frozenset[str]
    app_types: frozenset[str]
    ltc_yes: str
    end_codes: frozenset[str]
    scheme_icd10: str
    scheme_snomed: str
    significance: tuple[str, ...]
    not_available: frozenset[str]
    tools: Mapping[str, ToolSpec]
    derived_fields: Mapping[str, DerivedField]
    adsm_tokens: Mapping[str, str]  # token -> measures.yaml name

    def table(self, name: str) -> TableSpec:
        return self.tables[name]

    @property
    def token_of(self) -> Mapping[str, str]:
        """measures.yaml name -> NHS Digital's ADSM token."""
        return {measure: token for token, measure in self.adsm_tokens.items()}


def _strs(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise TypeError(f"expected a list, got {type(raw).__name__}")
    return tuple(str(item) for item in raw)


def _tool(concept: str, raw: Mapping[str, Any]) -> ToolSpec:
    low, high = raw["range"]
    item = raw.get("wsas_item")
    if item is not None and item not in WSAS_ITEMS:
        raise ValueError(f"tool {concept}: unknown wsas_item {item!r}")
    return ToolSpec(
        concept=concept,
        name=str(raw["name"]),
        low=Decimal(str(low)),
        high=Decimal(str(high)),
        decimals=int(raw.get("decimals", 0)),
        measure=str(raw["measure"]) if "measure" in raw else None,
        wsas_item=str(item) if item is not None else None,
        not_available=frozenset(Decimal(str(v)) for v in raw.get("not_available", ())),
    )


def spec_from_table(table: Mapping[str, Any]) -> DatasetSpec:
    """Build and check a :class:`DatasetSpec` from the parsed ``dataset.yaml``."""
    try:
        tables = {
            str(name): TableSpec(
                name=str(name),
                required=_strs(raw["required"]),
                optional=_strs(raw.get("optional", [])),
                key=_strs(raw.get("key", [])),
            )
            for name, raw in table["tables"].items()
        }
        spec = DatasetSpec(
            tables=tables,
            file_types={str(k): int(v) for k, v in table["file_types"].items()},
            attend_codes=frozenset(_strs(table["attend_codes"])),
            attended_codes=frozenset(_strs(table["attended_codes"])),
            unplanned=str(table["unplanned_counts_as_attended"]),
            treatment_app_types=frozenset(_strs(table["treatment_app_types"])),
            app_types=frozenset(_strs(table["app_types"])),
            ltc_yes=str(table["ltc_service_yes"]),
            end_codes=frozenset(_strs(table["end_codes"]) + _strs(table["retired_end_codes"])),
            scheme_icd10=str(table["scheme_icd10"]),
            scheme_snomed=str(table["scheme_snomed"]),
            significance=_strs(table["prescomp_significance"]),
            not_available=frozenset(_strs(table["not_available"])),
            tools={str(c): _tool(str(c), raw) for c, raw in table["tools"].items()},
            derived_fields={
                str(n): DerivedField(name=str(n), ours=str(raw["ours"]), kind=str(raw["kind"]))
                for n, raw in table["derived_fields"].items()
            },
            adsm_tokens={str(k): str(v) for k, v in table["adsm_tokens"].items()},
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise MappingError(f"dataset table is malformed: {exc!r}") from exc
    missing = [name for name in TABLE_NAMES if name not in tables]
    if missing:
        raise MappingError(f"dataset table lacks the table(s): {', '.join(missing)}")
    if not spec.treatment_app_types <= spec.app_types:
        raise MappingError("dataset table: every treatment_app_types code must be in app_types")
    for item in WSAS_ITEMS:
        if sum(1 for tool in spec.tools.values() if tool.wsas_item == item) != 1:
            raise MappingError(f"dataset table needs exactly one tool for WSAS item {item}")
    return spec


@cache
def dataset_spec() -> DatasetSpec:
    """The spec from the bundled ``dataset.yaml`` (loaded once)."""
    return spec_from_table(load_table("dataset"))


__all__ = [
    "TABLE_NAMES",
    "WSAS_ITEMS",
    "DatasetSpec",
    "DerivedField",
    "TableSpec",
    "ToolSpec",
    "dataset_spec",
    "spec_from_table",
]
