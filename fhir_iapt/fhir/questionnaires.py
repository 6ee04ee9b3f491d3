"""The project's LOINC-coded Questionnaires (PHQ-9, GAD-7, PHQ-2, GAD-2), built from the table.

``mappings/tables/instruments.yaml`` is the single source: item codes and texts, answer codes,
displays and scores. :func:`build_questionnaire` turns one instrument into an R4 Questionnaire;
``scripts/build_profiles.py`` writes them to ``profiles/Questionnaire-<slug>.json`` and a test
checks the shipped files still equal what the table gives, so the two cannot drift.

Shape (the same rules the QuestionnaireResponse builders and the validator rely on):

- ``url`` = ``{CANONICAL_BASE}/Questionnaire/<slug>``, ``code`` = the LOINC panel code;
- one ``choice`` item per question, ``linkId`` = the item's LOINC code, ``code`` the LOINC
  coding, ``answerOption.valueCoding`` the LOINC answers (``LA…``) with the score in the R4
  ``ordinalValue`` extension;
- unscored items (PHQ-9 item 10, 69722-7, difficulty) carry their answers without scores and
  are not required.
"""

from __future__ import annotations

from typing import Any

from fhir_iapt._data import load_table
from fhir_iapt.scoring.instruments import instrument_specs
from fhir_iapt.systems import LOINC, Coding, project_url, ukcore_profile

#: R4 core extension holding an answer's numeric score (context Coding / answerOption).
ORDINAL_VALUE_EXT = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
#: Version of the Questionnaires; bump when their content changes.
QUESTIONNAIRE_VERSION = "1.1.0"


def instrument_names() -> list[str]:
    """Instrument names in table order (``PHQ-9``, ``GAD-7``, ``PHQ-2``, ``GAD-2``)."""
    return list(load_table("instruments")["instruments"])


def _answer_options(answer_set: list[dict[str, Any]], *, scored: bool) -> list[dict[str, Any]]:
    options = []
    for answer in answer_set:
        option: dict[str, Any] = {}
        if scored:
            option["extension"] = [{"url": ORDINAL_VALUE_EXT, "valueDecimal": answer["score"]}]
        option["valueCoding"] = {
            "system": LOINC,
            "code": str(answer["code"]),
            "display": str(answer["display"]),
        }
        options.append(option)
    return options


def _item(
    spec: dict[str, Any], answer_set: list[dict[str, Any]], *, scored: bool
) -> dict[str, Any]:
    return {
        "linkId": str(spec["code"]),
        "code": [{"system": LOINC, "code": str(spec["code"]), "display": str(spec["text"])}],
        "text": str(spec["text"]),
        "type": "choice",
        "required": scored,
        "answerOption": _answer_options(answer_set, scored=scored),
    }


def _panel_words(panel: Coding) -> str:
    if panel.system == LOINC:
        return f"LOINC-coded (panel {panel.code})"
    return (
        f"coded {panel.code} of {panel.system} (a project code, UNVERIFIED: no LOINC code "
        "for it could be verified)"
    )


def build_questionnaire(name: str) -> dict[str, Any]:
    """The R4 Questionnaire for one instrument of ``instruments.yaml`` (KeyError if unknown)."""
    table = load_table("instruments")
    spec = table["instruments"][name]
    answer_sets = table["answer_sets"]
    slug = str(spec["slug"])
    panel = instrument_specs()[name].panel  # LOINC, or our own code (``own: true``, GAD-2)
    items = [_item(item, answer_sets[spec["answers"]], scored=True) for item in spec["items"]]
    for item in spec.get("unscored_items", ()):
        items.append(_item(item, answer_sets[item.get("answers", spec["answers"])], scored=False))
    return {
        "resourceType": "Questionnaire",
        "id": slug,
        "meta": {"profile": [ukcore_profile("Questionnaire")]},
        "url": project_url("Questionnaire", slug),
        "version": QUESTIONNAIRE_VERSION,
        "name": slug.replace("-", "").upper(),
        "title": str(spec["title"]),
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": "fhir-iapt",
        "description": (
            f"{spec['title']}, {_panel_words(panel)}; items are linked by their "
            "LOINC codes and answers carry their scores in the ordinalValue extension. "
            "Generated from mappings/tables/instruments.yaml."
        ),
        "copyright": (
            "LOINC codes and answer lists are copyright Regenstrief Institute, Inc. and the "
            "LOINC Committee, used under the LOINC license (https://loinc.org/license/)."
        ),
        "code": [panel.to_fhir()],
        "item": items,
    }


def build_all() -> dict[str, dict[str, Any]]:
    """Every instrument's Questionnaire, keyed by file name ``Questionnaire-<slug>.json``."""
    out: dict[str, dict[str, Any]] = {}
    for name in instrument_names():
        questionnaire = build_questionnaire(name)
        out[f"Questionnaire-{questionnaire['id']}.json"] = questionnaire
    return out


__all__ = [
    "ORDINAL_VALUE_EXT",
    "QUESTIONNAIRE_VERSION",
    "build_all",
    "build_questionnaire",
    "instrument_names",
]
