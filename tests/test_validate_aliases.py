"""The validator accepts instruments.yaml's input-only answer aliases where scoring does.

DOMAIN.md: some systems send LA18938-3 "More days than not" for GAD-7 item 2; accept it as 2 on
input. The QuestionnaireResponse answer check (FI403) must take it on the frequency items of our
Questionnaires, and nowhere else, while the emitted Questionnaires never offer it.
"""

from __future__ import annotations

import json
from typing import Any

from validate_helpers import GAD7_ITEMS, PHQ9_ITEMS

from fhir_iapt._data import profiles_dir
from fhir_iapt.errors import Issue
from fhir_iapt.fhir.validate import default_validator, has_errors

BASE = "https://fhir-iapt.github.io/fhir"
LOINC = "http://loinc.org"
ALIAS = "LA18938-3"  # "More days than not" (DOMAIN.md)
SEVERAL_DAYS = "LA6569-3"


def _response(slug: str, answers: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": "55555555-5555-4555-8555-555555555555",
        "meta": {"profile": [f"{BASE}/StructureDefinition/IaptLtcQuestionnaireResponse"]},
        "questionnaire": f"{BASE}/Questionnaire/{slug}",
        "status": "completed",
        "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
        "authored": "2024-03-01",
        "item": [
            {"linkId": link, "answer": [{"valueCoding": coding}]}
            for link, coding in answers.items()
        ],
    }


def _gad7(item2: dict[str, str]) -> dict[str, Any]:
    answers = {link: {"system": LOINC, "code": SEVERAL_DAYS} for link in GAD7_ITEMS}
    answers["68509-9"] = item2
    return _response("gad-7", answers)


def _answer_errors(issues: list[Issue]) -> list[str | None]:
    return [i.expression for i in issues if i.error_code == "FI403"]


def test_gad7_item2_more_days_than_not_validates() -> None:
    """A GAD-7 response answering item 2 with LA18938-3 has no error-severity issue."""
    issues = default_validator().validate(_gad7({"system": LOINC, "code": ALIAS}))
    assert not has_errors(issues), [i.diagnostics for i in issues]


def test_alias_is_accepted_on_every_frequency_item() -> None:
    """The alias is part of the frequency answer set, so PHQ-2 item 1 takes it too."""
    response = _response(
        "phq-2",
        {
            PHQ9_ITEMS[0]: {"system": LOINC, "code": ALIAS},
            PHQ9_ITEMS[1]: {"system": LOINC, "code": SEVERAL_DAYS},
        },
    )
    assert not has_errors(default_validator().validate(response))


def test_unknown_la_code_on_gad7_item2_is_still_rejected() -> None:
    """Another LOINC answer code (LA6575-0, a difficulty answer) on GAD-7 item 2 is FI403."""
    issues = default_validator().validate(_gad7({"system": LOINC, "code": "LA6575-0"}))
    assert _answer_errors(issues) == ["QuestionnaireResponse.item[1].answer[0].valueCoding"]


def test_alias_with_another_system_is_rejected() -> None:
    """The alias is a LOINC answer: the same code under SNOMED CT is not accepted."""
    issues = default_validator().validate(
        _gad7({"system": "http://snomed.info/sct", "code": ALIAS})
    )
    assert _answer_errors(issues) == ["QuestionnaireResponse.item[1].answer[0].valueCoding"]


def test_alias_is_not_accepted_on_the_phq9_difficulty_item() -> None:
    """PHQ-9 item 10 (69722-7) has the difficulty answers, which have no alias: FI403."""
    answers = {link: {"system": LOINC, "code": SEVERAL_DAYS} for link in PHQ9_ITEMS}
    answers["69722-7"] = {"system": LOINC, "code": ALIAS}
    issues = default_validator().validate(_response("phq-9", answers))
    assert _answer_errors(issues) == ["QuestionnaireResponse.item[9].answer[0].valueCoding"]


def test_emitted_gad7_questionnaire_does_not_offer_the_alias() -> None:
    """The shipped GAD-7 Questionnaire's answerOptions never include LA18938-3."""
    questionnaire = json.loads(
        (profiles_dir() / "Questionnaire-gad-7.json").read_text(encoding="utf-8")
    )
    offered = {
        option["valueCoding"]["code"]
        for item in questionnaire["item"]
        for option in item.get("answerOption", ())
    }
    assert offered == {"LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"}
