"""The shipped profiles/: Questionnaires match the table, UK Core copies match their source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from validate_helpers import GAD7_ITEMS, PHQ9_ITEMS

from fhir_iapt._data import profiles_dir
from fhir_iapt.fhir.profiles import ProfileSet, default_profiles
from fhir_iapt.fhir.questionnaires import ORDINAL_VALUE_EXT, build_all
from fhir_iapt.fhir.validate import default_validator
from fhir_iapt.fhir.xml import xml_to_resource

BASE = "https://fhir-iapt.github.io/fhir"
# The published UK Core XML, copied into the repository (tests read only what the repo holds).
UKCORE_SOURCE = Path(__file__).resolve().parent / "data" / "ukcore"


def _shipped(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((profiles_dir() / name).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("name", sorted(build_all()))
def test_shipped_questionnaire_equals_the_table(name: str) -> None:
    """profiles/Questionnaire-*.json is exactly what instruments.yaml generates (no drift)."""
    assert _shipped(name) == build_all()[name]


def test_phq9_questionnaire_follows_domain_facts() -> None:
    """PHQ-9: panel 44249-1, LOINC linkIds, LA answers scored 0-3, item 10 unscored."""
    q = _shipped("Questionnaire-phq-9.json")
    assert q["url"] == f"{BASE}/Questionnaire/phq-9"
    assert q["status"] == "active"
    assert q["code"] == [
        {
            "system": "http://loinc.org",
            "code": "44249-1",
            "display": "PHQ-9 quick depression assessment panel",
        }
    ]
    items = q["item"]
    assert isinstance(items, list)
    assert [i["linkId"] for i in items] == [*PHQ9_ITEMS, "69722-7"]
    first = items[0]
    assert first["code"][0]["code"] == "44250-9"
    scores = {
        o["valueCoding"]["code"]: o["extension"][0]["valueDecimal"] for o in first["answerOption"]
    }
    assert scores == {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
    assert all(o["extension"][0]["url"] == ORDINAL_VALUE_EXT for o in first["answerOption"])
    difficulty = items[-1]
    assert difficulty["required"] is False
    assert all("extension" not in o for o in difficulty["answerOption"])
    assert {o["valueCoding"]["system"] for o in difficulty["answerOption"]} == {"http://loinc.org"}
    # DOMAIN.md (V, the LHC-Forms PHQ-9): LA6575-0 is "Very difficult", LA6574-3 "Extremely".
    assert [
        (o["valueCoding"]["code"], o["valueCoding"]["display"]) for o in difficulty["answerOption"]
    ] == [
        ("LA6572-7", "Not difficult at all"),
        ("LA6573-5", "Somewhat difficult"),
        ("LA6575-0", "Very difficult"),
        ("LA6574-3", "Extremely difficult"),
    ]


def test_gad7_and_short_forms_use_domain_codes() -> None:
    """GAD-7 items and panel, PHQ-2 = PHQ-9 items 1-2, GAD-2 = GAD-7 items 1-2."""
    gad7 = _shipped("Questionnaire-gad-7.json")
    assert gad7["code"][0]["code"] == "69737-5"  # type: ignore[index]
    assert [i["linkId"] for i in gad7["item"]] == GAD7_ITEMS  # type: ignore[attr-defined]
    phq2 = _shipped("Questionnaire-phq-2.json")
    assert phq2["code"][0]["code"] == "55757-9"  # type: ignore[index]
    assert [i["linkId"] for i in phq2["item"]] == PHQ9_ITEMS[:2]  # type: ignore[attr-defined]
    gad2 = _shipped("Questionnaire-gad-2.json")
    assert [i["linkId"] for i in gad2["item"]] == GAD7_ITEMS[:2]  # type: ignore[attr-defined]


def test_gad2_questionnaire_is_coded_with_our_own_code() -> None:
    """GAD-2 has no verified LOINC code (70272-0 is the PHQ-4 total, DOMAIN.md): the
    Questionnaire carries our own, UNVERIFIED gad2-total and no 70272-0 anywhere."""
    gad2 = _shipped("Questionnaire-gad-2.json")
    assert [(c["system"], c["code"]) for c in gad2["code"]] == [  # type: ignore[attr-defined]
        (f"{BASE}/CodeSystem/iapt-measure", "gad2-total")
    ]
    assert "70272-0" not in json.dumps(gad2)


@pytest.mark.parametrize("name", ["phq-9", "gad-7", "phq-2", "gad-2"])
def test_questionnaire_is_valid_r4(name: str) -> None:
    """Each shipped Questionnaire passes the validator (R4 + UK Core Questionnaire)."""
    assert default_validator().validate(_shipped(f"Questionnaire-{name}.json")) == []


@pytest.mark.parametrize("name", ["CodeSystem-iapt-service.json", "CodeSystem-error-code.json"])
def test_code_systems_are_valid_r4(name: str) -> None:
    """The project's CodeSystems pass the validator."""
    assert default_validator().validate(_shipped(name)) == []


def test_project_profiles_are_derived_from_uk_core() -> None:
    """Each project StructureDefinition has our canonical URL and a UK Core base."""
    profiles = default_profiles()
    for name in ("IaptLtcServiceRequest", "IaptLtcQuestionnaireResponse", "IaptScoreObservation"):
        url = f"{BASE}/StructureDefinition/{name}"
        sd = profiles.structure_definition(url)
        assert sd is not None, name
        assert sd["baseDefinition"] == (
            "https://fhir.hl7.org.uk/StructureDefinition/UKCore-" + sd["type"]
        )
        assert sd["fhirVersion"] == "4.0.1"


def test_default_service_code_is_in_the_iapt_service_code_system() -> None:
    """iapt-ltc-referral is defined, with the display DOMAIN.md's decision documents."""
    codes = default_profiles().code_systems[f"{BASE}/CodeSystem/iapt-service"]["concept"]
    assert [(c["code"], c["display"]) for c in codes] == [
        (
            "iapt-ltc-referral",
            "Referral to NHS Talking Therapies integrated long-term conditions pathway",
        )
    ]


def test_error_code_system_has_the_validator_codes() -> None:
    """Every FI4xx code the validator emits is defined in the error-code CodeSystem."""
    cs = default_profiles().code_systems[f"{BASE}/CodeSystem/error-code"]
    codes = {c["code"] for c in cs["concept"]}
    assert {
        "FI400",
        "FI401",
        "FI402",
        "FI403",
        "FI404",
        "FI405",
        "FI406",
        "FI407",
        "FI408",
    } <= codes


UKCORE_FILES = sorted(p.name for p in UKCORE_SOURCE.glob("*.xml"))


def test_uk_core_sources_are_beside_the_repository() -> None:
    """The UK Core XML the next test compares against is in the repository (never a silent skip)."""
    assert len(UKCORE_FILES) >= 10, f"no UK Core XML found in {UKCORE_SOURCE}"


@pytest.mark.parametrize("source", UKCORE_FILES)
def test_uk_core_json_equals_its_xml_source(source: str) -> None:
    """Each UK Core resource in profiles/ is the unchanged JSON form of its published XML file."""
    resource = xml_to_resource((UKCORE_SOURCE / source).read_bytes())
    assert _shipped(f"{resource['resourceType']}-{resource['id']}.json") == resource


def test_value_set_expansion_from_compose_and_code_system() -> None:
    """A compose include of a whole shipped CodeSystem expands to its codes."""
    profiles = ProfileSet()
    profiles.add(
        {
            "resourceType": "CodeSystem",
            "url": "http://x/cs",
            "content": "complete",
            "concept": [{"code": "a", "concept": [{"code": "b"}]}],
        }
    )
    profiles.add(
        {
            "resourceType": "ValueSet",
            "url": "http://x/vs",
            "compose": {"include": [{"system": "http://x/cs"}]},
        }
    )
    assert profiles.value_set_codes("http://x/vs|1") == {("http://x/cs", "a"), ("http://x/cs", "b")}
    assert profiles.value_set_codes("http://x/none") is None


def test_nhs_number_verification_value_set_expands() -> None:
    """The UK Core verification-status ValueSet holds England's codes 01-08 (DOMAIN.md)."""
    codes = default_profiles().value_set_codes(
        "https://fhir.hl7.org.uk/ValueSet/UKCore-NHSNumberVerificationStatus"
    )
    assert codes is not None
    england = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
    assert sorted(code for system, code in codes if system == england) == [
        f"0{n}" for n in range(1, 9)
    ]
