"""Identifiers (NHS numbers, ODS codes) must arrive as JSON strings, never as numbers.

A number loses leading zeros and silently changes type (``0000005010`` becomes ``5010``), so a
JSON number or boolean where the mapping reads an identifier rejects the record, naming the
field and the rule, never the value.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_iapt.pipeline import convert_bytes
from fhir_iapt.results import Converted, Rejected

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _first_visit(path: str, raw: str) -> bytes:
    """examples/cardiac.json's first visit alone, with ``path`` set to the JSON text ``raw``."""
    first = json.loads((EXAMPLES / "cardiac.json").read_text(encoding="utf-8"))[0]
    target = first
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    target[last] = "@placeholder@"
    return json.dumps([first]).replace('"@placeholder@"', raw).encode()


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        pytest.param("patient.nhsNumber", "9990000018", id="nhs-number-as-integer"),
        pytest.param("patient.nhsNumber", "9990000018.0", id="nhs-number-as-decimal"),
        pytest.param("patient.nhsNumber", "9.990000018E9", id="nhs-number-as-exponent"),
        pytest.param("patient.nhsNumber", "5010", id="nhs-number-lost-leading-zeros"),
        pytest.param("patient.nhsNumber", "true", id="nhs-number-as-boolean"),
        pytest.param("clinicOds", "12345", id="clinic-ods-as-integer"),
        pytest.param("patient.gpPracticeOds", "99001", id="gp-ods-as-integer"),
        pytest.param("patient.gpPracticeOds", "false", id="gp-ods-as-boolean"),
    ],
)
def test_identifier_sent_as_a_json_number_is_rejected(path: str, raw: str) -> None:
    """A JSON number or boolean for an identifier is an FI301 naming the field and the rule."""
    [result] = convert_bytes(_first_visit(path, raw), name="cardiac.json", mapping="cardiac-json")
    assert isinstance(result, Rejected), result
    issues = [
        (i.error_code, i.location.field if i.location else None, i.diagnostics)
        for i in result.error.issues
    ]
    assert issues == [
        (
            "FI301",
            path,
            "must be a JSON string (an identifier sent as a number loses leading zeros)",
        )
    ]
    text = json.dumps(result.outcome) + str(result.error)
    assert raw not in text
    assert "must be a JSON string" in text


def test_nhs_number_as_json_string_still_maps() -> None:
    """The same visit with the NHS number as a JSON string converts."""
    [result] = convert_bytes(
        _first_visit("patient.nhsNumber", '"999 000 0018"'),
        name="cardiac.json",
        mapping="cardiac-json",
        validation="none",
    )
    assert isinstance(result, Converted), result


def test_types_refuse_numbers_for_identifiers_only() -> None:
    """nhs_number and ods refuse JSON numbers; a quantity field still takes one."""
    from fhir_iapt.mapping import _types as types

    refused: list[Any] = [9990000018, Decimal("9990000018"), True, 1.5]
    for convert in (types.nhs_number(), types.ods_code()):
        for raw in refused:
            with pytest.raises(types.Invalid, match="must be a JSON string"):
                convert(raw)
    assert types.integer()(38) == 38
    assert types.decimal()(Decimal("38.5")) == Decimal("38.5")
