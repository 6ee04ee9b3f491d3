"""Write the report's KPI Measures into ``profiles/``: one ``Measure-<kpi>.json`` per KPI of
``fhir_iapt.report._kpis.DEFINITIONS``, made by ``fhir_iapt.report._measures.measure``.

Usage: python scripts/build_measures.py

``tests/test_report_fhir.py`` fails if a shipped Measure differs from what this writes, so
change a KPI's definition in ``_kpis.py`` and run this, never edit the JSON by hand.
"""

from __future__ import annotations

import json

from fhir_iapt._data import profiles_dir
from fhir_iapt.report._kpis import DEFINITIONS
from fhir_iapt.report._measures import measure


def main() -> None:
    folder = profiles_dir()
    for definition in DEFINITIONS:
        path = folder / f"Measure-{definition.id}.json"
        text = json.dumps(measure(definition), indent=2, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")
        print(path.name)


if __name__ == "__main__":
    main()
