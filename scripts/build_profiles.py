"""Write the generated conformance resources into profiles/: the instrument Questionnaires.

Usage: python scripts/build_profiles.py

The Questionnaires come from mappings/tables/instruments.yaml through
fhir_iapt.fhir.questionnaires; tests/test_profiles_questionnaires.py fails when the shipped
files and the table disagree, so run this after editing the table.
"""

from __future__ import annotations

import json

from fhir_iapt._data import profiles_dir
from fhir_iapt.fhir.questionnaires import build_all


def main() -> None:
    for name, questionnaire in build_all().items():
        target = profiles_dir() / name
        target.write_text(
            json.dumps(questionnaire, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(target.name)


if __name__ == "__main__":
    main()
