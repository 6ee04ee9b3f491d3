"""A record whose bundle JSON cannot carry is rejected at the build stage, by element, not value.

The pipeline serialises each bundle once, as it is built (issue 9). A string holding a lone
surrogate can reach the builder from an integrator's own SourceRecord (the readers refuse one in
a file); orjson cannot encode it. That record must come back as a Rejected with FI641 naming
the element (a FHIRPath into the Bundle), never the value, and the run's other records go on.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from fhir_iapt.errors import Location
from fhir_iapt.mapping import load_mapping
from fhir_iapt.pipeline import convert_record
from fhir_iapt.results import Converted, Rejected
from fhir_iapt.sources import SourceRecord

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAME = "Hart\ud800ley"


def _records() -> list[SourceRecord]:
    rows = list(csv.DictReader(io.StringIO((EXAMPLES / "diabetes.csv").read_text("utf-8"))))
    return [
        SourceRecord(row, Location(file="diabetes.csv", row=i + 1)) for i, row in enumerate(rows)
    ]


def test_a_lone_surrogate_in_a_name_rejects_that_record_naming_the_element() -> None:
    """FI641 with the family name's FHIRPath; no part of the name in the outcome."""
    mapping = load_mapping("diabetes-csv")
    first = _records()[0]
    bad = SourceRecord({**first.data, "family_name": NAME}, first.location)
    result = convert_record(bad, mapping)
    assert isinstance(result, Rejected)
    [issue] = result.outcome["issue"]
    assert issue["details"]["coding"][0]["code"] == "FI641"
    [expression] = issue["expression"]
    assert expression.startswith("Bundle.entry[")
    assert expression.endswith(".resource.name[0].family")
    text = json.dumps(result.outcome, ensure_ascii=False)
    assert NAME not in text
    assert "Hart" not in text


def test_the_records_after_an_unwritable_one_still_convert() -> None:
    """One unwritable record does not stop the others converting the same."""
    mapping = load_mapping("diabetes-csv")
    records = _records()
    plain = [convert_record(r, mapping) for r in records]
    first = records[0]
    mixed = [SourceRecord({**first.data, "family_name": NAME}, first.location), *records[1:]]
    results = [convert_record(r, mapping) for r in mixed]
    assert isinstance(results[0], Rejected)
    assert results[1:] == plain[1:]
    assert any(isinstance(r, Converted) for r in results[1:])
