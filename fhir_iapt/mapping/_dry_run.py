"""A dry run of a mapping on sample exports (``fhir-iapt convert --dry-run``): read and map
only, nothing built, validated, written or recorded.

For each mapped field it counts the records where the field got a value (its fill rate), and
it keeps the first few rejects (read errors and rejected records, located; their messages name
the field and the rule, never a value), so whoever writes a mapping sees what it does before
converting a whole export.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from fhir_iapt.errors import FhirIaptError, RecordError
from fhir_iapt.mapping._engine import map_record, map_values
from fhir_iapt.mapping._model import FieldSpec, Mapping
from fhir_iapt.mapping._types import Invalid
from fhir_iapt.sources import read_records

#: Rejects kept for showing, by default.
SHOWN = 5


@dataclass(frozen=True, slots=True)
class Fill:
    """One mapped field: its name as the mapping says it, where it comes from, and how many
    records gave it a value."""

    name: str
    source: str
    filled: int


@dataclass
class DryRun:
    """What a dry run found."""

    #: source records read (unreadable rows are rejects, not records)
    records: int = 0
    #: records that map cleanly (the gate and the build come after)
    mapped: int = 0
    #: read errors and rejected records
    rejected_total: int = 0
    #: the first rejects, in input order
    rejects: list[FhirIaptError] = field(default_factory=list)
    #: every field the mapping fills, in mapping order
    fills: list[Fill] = field(default_factory=list)
    #: (field, error code) of every issue of every reject
    issues: Counter[str] = field(default_factory=Counter)

    def rejects_by_field(self) -> Counter[str]:
        """Rejected records per source field named in their issues (the record's own, or a
        read error's code, when an issue names no field)."""
        return self.issues


def _filled(spec: FieldSpec, data: Any) -> bool:
    """A check-only field (``_scheme``) keeps no value: it counts when its source converts."""
    try:
        raw = spec.get(data)
    except Invalid:
        return False
    if isinstance(raw, str):
        raw = raw.strip()
    if raw is None or raw == "" or raw == []:
        return False
    try:
        spec.convert(raw)
    except Invalid:
        return False
    return True


class _Counts:
    """Per-field counts over the records, keyed as :func:`_names` lists them."""

    def __init__(self, mapping: Mapping[Any]) -> None:
        self.mapping = mapping
        self.counts: Counter[str] = Counter()

    def add(self, data: Any, values: dict[str, Any]) -> None:
        counts = self.counts
        for spec in self.mapping.fields:
            if spec.keep:
                if spec.target in values:
                    counts[spec.target] += 1
            elif _filled(spec, data):
                counts[spec.target] += 1
            if spec.display_to is not None and spec.display_to in values:
                counts[spec.display_to] += 1
        for group in self.mapping.groups:
            items = values.get(group.name) or []
            if items:
                counts[group.name] += 1
            for name in {key for item in items for key in item}:
                counts[f"{group.name}.{name}"] += 1
        for screening in values.get("screenings") or []:
            counts[f"screenings {screening['instrument']}"] += 1

    def fills(self, records: int) -> list[Fill]:
        """Every field the mapping fills, in mapping order (a constant fills every record)."""
        mapping, counts = self.mapping, self.counts
        out = [Fill(key, "constant", records) for key in mapping.constants]
        for spec in mapping.fields:
            out.append(Fill(spec.target, spec.source, counts[spec.target]))
            if spec.display_to is not None:
                out.append(Fill(spec.display_to, spec.source, counts[spec.display_to]))
        for group in mapping.groups:
            each = group.each.text if group.each is not None else "the record"
            out.append(Fill(group.name, each, counts[group.name]))
            sources: dict[str, str] = {}
            for specs in group.field_sets:
                for spec in specs:
                    if spec.keep:
                        sources.setdefault(spec.target, spec.source)
                    if spec.display_to is not None:
                        sources.setdefault(spec.display_to, spec.source)
            for name, source in sources.items():
                key = f"{group.name}.{name}"
                out.append(Fill(key, source, counts[key]))
        screenings = mapping.screenings
        if screenings is None:
            return out
        for fixed in screenings.fixed:
            answers = fixed.answers
            if answers.array is not None:
                source = answers.array.text
            else:
                source = f"{answers.per_item[0].text} ... {answers.per_item[-1].text}"
            key = f"screenings {fixed.shape.name}"
            out.append(Fill(key, source, counts[key]))
        if screenings.each is not None:
            for key in sorted(k for k in counts if k.startswith("screenings ")):
                out.append(Fill(key, screenings.each.text, counts[key]))
        return out


def dry_run(
    paths: Iterable[Path], mapping: Mapping[Any], *, shown: int = SHOWN, limit: int | None = None
) -> DryRun:
    """Read ``paths`` with ``mapping`` and map every record (the first ``limit`` records and
    read errors of each file, when given); build, validate and write nothing. Read errors are
    counted among the rejects (the first ``shown`` rejects are kept)."""
    result = DryRun()
    counts = _Counts(mapping)
    whole = mapping.contract.read is not None
    for path in paths:
        with path.open("rb") as stream:
            items = read_records(
                stream, name=path.name, fmt=mapping.input_format, options=mapping.input_options
            )
            for item in items if limit is None else islice(items, limit):
                if isinstance(item, FhirIaptError):
                    result.rejected_total += 1
                    result.issues[f"({item.error_code})"] += 1
                    if len(result.rejects) < shown:
                        result.rejects.append(item)
                    continue
                result.records += 1
                if not whole:
                    values, _issues = map_values(item, mapping)
                    counts.add(item.data, values)
                try:
                    map_record(item, mapping)
                except RecordError as exc:
                    result.rejected_total += 1
                    for issue_field in dict.fromkeys(
                        issue.location.field
                        if issue.location and issue.location.field
                        else f"({issue.error_code})"
                        for issue in exc.issues
                    ):
                        result.issues[issue_field] += 1
                    if len(result.rejects) < shown:
                        result.rejects.append(exc)
                    continue
                result.mapped += 1
    result.fills = counts.fills(result.records)
    return result


__all__ = ["SHOWN", "DryRun", "Fill", "dry_run"]
