"""Golden files: each bundled layout's example export, converted end to end.

``tests/data/golden/<mapping>/`` holds what converting ``examples/<file>`` must give: every
bundle (``bundles.ndjson``), every rejection and skip (``results.json``: kind, key, reason or
error code per record, in order). The goldens were generated once and read line by line
against issue 2's output spec before being committed; a change to them is a reviewed change.

To regenerate after an intended change, run
``FHIR_IAPT_UPDATE_GOLDEN=1 pytest tests/test_golden_referrals.py``
and review the diff.

A second pass runs the real validator (R4 + profiles) over every bundle, whatever the golden says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_iapt.fhir.validate import default_validator
from fhir_iapt.pipeline import convert_file
from fhir_iapt.results import Converted, Rejected, Result, Skipped

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
UPDATE = os.environ.get("FHIR_IAPT_UPDATE_GOLDEN") == "1"

LAYOUTS = [
    ("diabetes.csv", "diabetes-csv"),
    ("respiratory.xml", "respiratory-xml"),
    ("cardiac.json", "cardiac-json"),
    ("cardiac.ndjson", "cardiac-json"),
]


def _summary(result: Result) -> dict[str, Any]:
    if isinstance(result, Converted):
        return {"kind": "converted", "key": result.key, "bundle": result.bundle["id"]}
    if isinstance(result, Skipped):
        return {"kind": "skipped", "key": result.key, "reason": result.reason}
    assert isinstance(result, Rejected)
    return {"kind": "rejected", "error": result.error.error_code, "at": result.location.render()}


def _convert(example: str, mapping: str) -> list[Result]:
    return list(convert_file(ROOT / "examples" / example, mapping=mapping, validation="full"))


@pytest.mark.parametrize(("example", "mapping"), LAYOUTS)
def test_example_export_converts_to_the_golden_bundles(example: str, mapping: str) -> None:
    """Converting a bundled example gives exactly the reviewed bundles, skips and rejections."""
    results = _convert(example, mapping)
    bundles = [r.bundle for r in results if isinstance(r, Converted)]
    summary = [_summary(r) for r in results]
    folder = GOLDEN / example.replace(".", "-")
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bundles.ndjson").write_bytes(
            b"".join(orjson.dumps(b, option=orjson.OPT_SORT_KEYS) + b"\n" for b in bundles)
        )
        (folder / "results.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    expected_bundles = [
        orjson.loads(line) for line in (folder / "bundles.ndjson").read_bytes().splitlines()
    ]
    expected_summary = orjson.loads((folder / "results.json").read_bytes())
    assert summary == expected_summary
    assert len(bundles) == len(expected_bundles)
    for got, want in zip(bundles, expected_bundles, strict=True):
        assert got == want


@pytest.mark.parametrize(("example", "mapping"), LAYOUTS)
def test_every_example_bundle_is_valid_r4_and_conforms_to_the_profiles(
    example: str, mapping: str
) -> None:
    """The real validator finds no error in any bundle built from the examples."""
    validator = default_validator()
    converted = [r for r in _convert(example, mapping) if isinstance(r, Converted)]
    assert converted, "the example must produce bundles"
    for result in converted:
        issues = [
            i for i in validator.validate_bundle(result.bundle) if i.severity in ("error", "fatal")
        ]
        assert issues == [], (result.key, [i.diagnostics for i in issues])


@pytest.mark.parametrize(("example", "mapping"), LAYOUTS)
def test_examples_show_every_referral_branch(example: str, mapping: str) -> None:
    """Each example holds referred, not-referred and no-consent records, and no rejects."""
    results = _convert(example, mapping)
    reasons = {r.reason for r in results if isinstance(r, Skipped)}
    assert {"not-referred", "no-consent-to-refer"} <= reasons
    assert not [r for r in results if isinstance(r, Rejected)]
    instruments: set[str] = set()
    screened_none = False
    for result in results:
        if not isinstance(result, Converted):
            continue
        questionnaires = {
            e["resource"]["questionnaire"].rsplit("/", 1)[-1]
            for e in result.bundle["entry"]
            if e["resource"]["resourceType"] == "QuestionnaireResponse"
        }
        instruments |= questionnaires
        screened_none = screened_none or not questionnaires
    assert {"phq-9", "gad-7"} <= instruments, "a full screen"
    assert instruments & {"phq-2", "gad-2"}, "a short screen only"
    assert screened_none, "a referral with no screening"


def test_reconverting_an_export_gives_byte_identical_bundles() -> None:
    """The same export converted twice yields the same ids and conditional-create keys."""
    first = [r for r in _convert("diabetes.csv", "diabetes-csv") if isinstance(r, Converted)]
    second = [r for r in _convert("diabetes.csv", "diabetes-csv") if isinstance(r, Converted)]
    assert [orjson.dumps(r.bundle) for r in first] == [orjson.dumps(r.bundle) for r in second]


def test_the_same_patient_gets_the_same_patient_resource_from_every_layout() -> None:
    """A patient present in the CSV, XML and JSON exports maps to one identical Patient id."""

    def patients(example: str, mapping: str) -> dict[str, str]:
        out = {}
        for result in _convert(example, mapping):
            if isinstance(result, Converted):
                for entry in result.bundle["entry"]:
                    res = entry["resource"]
                    if res["resourceType"] == "Patient":
                        out[res["identifier"][0]["value"]] = res["id"]
        return out

    csv_p = patients("diabetes.csv", "diabetes-csv")
    xml_p = patients("respiratory.xml", "respiratory-xml")
    json_p = patients("cardiac.json", "cardiac-json")
    shared = (set(csv_p) & set(xml_p)) | (set(csv_p) & set(json_p)) | (set(xml_p) & set(json_p))
    assert shared, "the examples are meant to share patients across layouts"
    for nhs in shared:
        ids = {d[nhs] for d in (csv_p, xml_p, json_p) if nhs in d}
        assert len(ids) == 1
