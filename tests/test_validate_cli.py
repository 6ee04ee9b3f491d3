"""``fhir-iapt validate``: OperationOutcomes for invalid resources, a summary, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from validate_helpers import fresh, transaction_bundle

from fhir_iapt.cli.validate import validate
from fhir_iapt.fhir.xml import resource_to_xml


def _run(*paths: Path) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(validate, ["--format", "json", *[str(p) for p in paths]])
    outcomes = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, outcomes, result.stderr


def test_valid_json_bundle_exits_zero(tmp_path: Path) -> None:
    """A valid transaction Bundle: exit 0, no outcome, summary 1 valid."""
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(transaction_bundle()), encoding="utf-8")
    code, outcomes, err = _run(path)
    assert (code, outcomes) == (0, [])
    assert "1 valid, 0 invalid" in err


def test_invalid_resource_prints_outcome_and_exits_one(tmp_path: Path) -> None:
    """An invalid resource prints an OperationOutcome naming the file and element; exit 1."""
    resource = fresh("ServiceRequest")
    resource["intent"] = "plan"
    path = tmp_path / "sr.json"
    path.write_text(json.dumps(resource), encoding="utf-8")
    code, outcomes, err = _run(path)
    assert code == 1
    assert len(outcomes) == 1
    assert outcomes[0]["resourceType"] == "OperationOutcome"
    issue = outcomes[0]["issue"][0]  # type: ignore[index]
    assert issue["expression"] == ["ServiceRequest.intent"]
    assert str(path) in issue["location"][0]
    assert "0 valid, 1 invalid" in err


def test_ndjson_reports_the_bad_line(tmp_path: Path) -> None:
    """NDJSON: each line is validated; the outcome names the line of the invalid one."""
    bad = fresh("Observation")
    del bad["subject"]
    path = tmp_path / "obs.ndjson"
    path.write_text(
        json.dumps(fresh("Observation")) + "\n" + json.dumps(bad) + "\n", encoding="utf-8"
    )
    code, outcomes, err = _run(path)
    assert code == 1
    assert "1 valid, 1 invalid" in err
    location = outcomes[0]["issue"][0]["location"][0]  # type: ignore[index]
    assert "line 2" in location


def test_xml_file_is_validated(tmp_path: Path) -> None:
    """A FHIR XML file is parsed and validated like JSON."""
    good = tmp_path / "patient.xml"
    good.write_bytes(resource_to_xml(fresh("Patient")))
    bad_resource = fresh("Patient")
    bad_resource["gender"] = "banana"
    bad = tmp_path / "bad.xml"
    bad.write_bytes(resource_to_xml(bad_resource))
    code, outcomes, err = _run(good, bad)
    assert code == 1
    assert "1 valid, 1 invalid" in err
    assert outcomes[0]["issue"][0]["expression"] == ["Patient.gender"]  # type: ignore[index]


def test_missing_file_exits_two_with_outcome(tmp_path: Path) -> None:
    """An unreadable path is an OperationOutcome and exit 2, not a traceback."""
    code, outcomes, _ = _run(tmp_path / "nope.json")
    assert code == 2
    assert outcomes[0]["resourceType"] == "OperationOutcome"


def test_garbage_file_exits_two(tmp_path: Path) -> None:
    """A file that is neither JSON, NDJSON nor XML exits 2 with an OperationOutcome."""
    path = tmp_path / "junk.json"
    path.write_text("this is { not json", encoding="utf-8")
    code, outcomes, _ = _run(path)
    assert code == 2
    assert "not JSON" in outcomes[0]["issue"][0]["diagnostics"]  # type: ignore[index]


def test_no_paths_is_a_usage_error() -> None:
    """Without PATH the command is a usage error (exit 2)."""
    assert CliRunner().invoke(validate, []).exit_code == 2


def test_ndjson_lines_end_at_newline_only(tmp_path: Path) -> None:
    """A resource whose text holds U+2028 / U+2029 / U+0085 is one NDJSON line, not several
    "not JSON" lines (str.splitlines split it)."""
    from fhir_iapt.cli.validate import _units

    resource = {"resourceType": "Basic", "id": "a", "code": {"text": "x\u2028y\u2029z\u0085w"}}
    path = tmp_path / "r.ndjson"
    line = json.dumps(resource, ensure_ascii=False)
    path.write_text(line + "\n" + line + "\r\n", encoding="utf-8")
    units = list(_units(path))
    assert [(where.row, where.line) for where, _ in units] == [(1, 1), (2, 2)]
    assert [found for _, found in units] == [resource, resource]
