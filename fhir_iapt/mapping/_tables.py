"""Lookup tables (``tables/<name>.yaml``): local term -> value, with an optional display.

A table next to a mapping file (``<mapping folder>/tables/<name>.yaml``) wins over a bundled one
of the same name, so a site can ship its own mapping and terms together without touching ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from fhir_iapt._data import mappings_dir


@dataclass(frozen=True, slots=True)
class LookupTable:
    """Terms keyed as matched (case-folded when ``casefold``), their values and displays."""

    name: str
    casefold: bool
    values: dict[str, Any]
    displays: dict[str, str]


class TableProblem(Exception):
    """A lookup table is missing or malformed (reported at the mapping line that names it)."""


def table_path(name: str, mapping_folder: Path | None) -> Path | None:
    """The file that holds table ``name``, or None when there is none."""
    if not name.replace("-", "").replace("_", "").isalnum():
        return None
    candidates = []
    if mapping_folder is not None:
        candidates.append(mapping_folder / "tables" / f"{name}.yaml")
    candidates.append(mappings_dir() / "tables" / f"{name}.yaml")
    return next((path for path in candidates if path.is_file()), None)


@lru_cache(maxsize=64)
def _load(path: Path, mtime_ns: int) -> LookupTable:
    try:
        raw = yaml.safe_load(path.read_bytes())
    except yaml.YAMLError:
        raise TableProblem(f"the lookup table {path.name} is not valid YAML") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("terms"), dict) or not raw["terms"]:
        raise TableProblem(f"the lookup table {path.name} has no 'terms:' mapping")
    match = raw.get("match", "exact")
    if match not in ("exact", "case-insensitive"):
        raise TableProblem(f"the lookup table {path.name}: match is exact or case-insensitive")
    casefold = match == "case-insensitive"
    values: dict[str, Any] = {}
    displays: dict[str, str] = {}
    for term, entry in raw["terms"].items():
        key = str(term).strip()
        key = key.casefold() if casefold else key
        if key in values:
            raise TableProblem(f"the lookup table {path.name} repeats a term")
        if isinstance(entry, dict):
            if "value" not in entry:
                raise TableProblem(f"the lookup table {path.name}: an entry lacks 'value'")
            values[key] = entry["value"]
            if entry.get("display") is not None:
                displays[key] = str(entry["display"])
        else:
            values[key] = entry
    return LookupTable(path.stem, casefold, values, displays)


def load_lookup(name: str, mapping_folder: Path | None) -> LookupTable:
    """Load table ``name``; raises :class:`TableProblem` when missing or malformed."""
    path = table_path(name, mapping_folder)
    if path is None:
        raise TableProblem(f"there is no lookup table {name!r} (tables/{name}.yaml)")
    return _load(path, path.stat().st_mtime_ns)


__all__ = ["LookupTable", "TableProblem", "load_lookup", "table_path"]
