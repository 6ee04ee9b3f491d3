"""The validator and ``fhir-iapt validate`` on resources of the wrong JSON shape, and on our own
NDJSON output holding line-separator characters: an issue per resource, never a crash."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fhir_iapt import Location, SourceRecord, convert_record, load_mapping
from fhir_iapt.cli.validate import validate
from fhir_iapt.emit import NdjsonBundleWriter
from fhir_iapt.fhir.validate import Validator, default_validator
from fhir_iapt.push import read_bundles
from fhir_iapt.results import Converted

ROOT = Path(__file__).resolve().parent.parent


def _basic(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Basic", "id": "b1", "code": {"text": "x"}, **extra}


def _errors_at(issues: list[Any]) -> set[str | None]:
    return {i.expression for i in issues if i.severity in ("error", "fatal")}


@pytest.mark.parametrize("meta", [["x"], "text", 5, True, [{"profile": []}]])
def test_meta_of_the_wrong_json_type_is_an_error_at_meta(meta: Any) -> None:
    """``meta`` that is not an object is an error at Basic.meta, not an AttributeError."""
    issues = default_validator().validate(_basic(meta=meta))
    assert "Basic.meta" in _errors_at(issues)


@pytest.mark.parametrize("profile", ["http://example.org/p", {"a": 1}, 5, True])
def test_meta_profile_of_the_wrong_json_type_is_an_error_at_meta_profile(profile: Any) -> None:
    """``meta.profile`` that is not an array is an error at Basic.meta.profile."""
    issues = default_validator().validate(_basic(meta={"profile": profile}))
    assert "Basic.meta.profile" in _errors_at(issues)


def test_meta_profile_items_of_the_wrong_type_are_errors_at_each_item() -> None:
    """Items of meta.profile that are not strings are errors at their index, not quoted back as
    "profile ... is not known" warnings."""
    issues = default_validator().validate(_basic(meta={"profile": [1, {"a": "b"}, ["c"]]}))
    assert {"Basic.meta.profile[0]", "Basic.meta.profile[1]", "Basic.meta.profile[2]"} <= (
        _errors_at(issues)
    )
    assert [i for i in issues if i.severity == "warning"] == []


@pytest.mark.parametrize("meta", ["text", [], 7])
def test_applicable_profiles_ignores_a_meta_it_cannot_read(meta: Any) -> None:
    """applicable_profiles claims nothing from a meta of the wrong type (and still applies the
    project's profile for the type)."""
    validator = default_validator()
    resource = {"resourceType": "ServiceRequest", "meta": meta}
    assert validator.applicable_profiles(resource) == validator.applicable_profiles(
        {"resourceType": "ServiceRequest"}
    )


def test_a_bundle_entry_with_a_broken_meta_does_not_stop_the_rest() -> None:
    """In a Bundle, an entry whose meta is a string is reported at its meta, and the entries
    after it are still validated (an error in the next entry is found too)."""
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": _basic(meta="oops")},
            {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient", "gender": "x"}},
        ],
    }
    errors = _errors_at(default_validator().validate(bundle))
    assert "Bundle.entry[0].resource.meta" in errors
    assert "Bundle.entry[1].resource.gender" in errors


@pytest.mark.parametrize("char", ["\u00a0", "\u0085", "\u2028", "\u2029", "\u3000"])
def test_unicode_spaces_are_valid_in_a_fhir_string(char: str) -> None:
    """FHIR regexes are XML Schema's, whose whitespace is space, tab, LF and CR only: a name
    with a no-break space or a line separator is a valid R4 string (Python's \\s took them)."""
    patient = {"resourceType": "Patient", "name": [{"family": f"Jean{char}Paul"}]}
    assert default_validator().validate(patient) == []


@pytest.mark.parametrize(("code", "valid"), [("a b", True), ("a  b", False), (" a", False)])
def test_code_whitespace_rule_is_unchanged(code: str, valid: bool) -> None:
    """A code still may not start with, or hold a run of, XML whitespace."""
    patient = {"resourceType": "Patient", "gender": "male", "language": code}
    errors = _errors_at(default_validator().validate(patient))
    assert ("Patient.language" not in errors) is valid


def _run(*paths: Path) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(validate, ["--format", "json", *[str(p) for p in paths]])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    outcomes = [json.loads(line) for line in result.stdout.split("\n") if line.strip()]
    return result.exit_code, outcomes, result.stderr


def _ndjson(path: Path, *resources: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")
    return path


def test_cli_reports_a_broken_meta_and_validates_the_rest(tmp_path: Path) -> None:
    """``fhir-iapt validate`` on NDJSON whose 1st and 3rd lines have a meta / meta.profile of the
    wrong type: one outcome each (at that line and element), the 2nd line valid, exit 1."""
    path = _ndjson(
        tmp_path / "r.ndjson",
        _basic(meta="oops"),
        _basic(),
        _basic(meta={"profile": 5}),
    )
    code, outcomes, err = _run(path)
    assert code == 1
    assert "1 valid, 2 invalid" in err
    assert len(outcomes) == 2
    first, third = (o["issue"] for o in outcomes)
    assert any(i["expression"] == ["Basic.meta"] and "line 1" in i["location"][0] for i in first)
    assert any(
        i["expression"] == ["Basic.meta.profile"] and "line 3" in i["location"][0] for i in third
    )


def test_cli_reports_a_validator_failure_on_one_resource_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unforeseen exception while validating one resource is that resource's outcome
    (FI001, the exception's type only) and the other resources are still validated."""
    real = Validator.validate

    def flaky(self: Validator, resource: dict[str, Any], **kw: Any) -> Any:
        if resource.get("id") == "boom":
            raise RuntimeError("secret 9990000018")
        return real(self, resource, **kw)

    monkeypatch.setattr(Validator, "validate", flaky)
    path = _ndjson(tmp_path / "r.ndjson", _basic(), _basic(id="boom"), _basic(id="b3"))
    code, outcomes, err = _run(path)
    assert code == 1
    assert "2 valid, 1 invalid" in err
    [outcome] = outcomes
    [issue] = outcome["issue"]
    assert issue["details"]["coding"][0]["code"] == "FI001"
    assert "line 2" in issue["location"][0]
    assert "RuntimeError" in issue["diagnostics"]
    assert "9990000018" not in json.dumps(outcome)


def _our_output(tmp_path: Path) -> Path:
    """bundles.ndjson written by the adapter for two records whose names hold U+2028, U+2029
    and U+0085 (legal in JSON strings, line breaks to str.splitlines)."""
    text = (ROOT / "examples" / "diabetes.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    mapping = load_mapping("diabetes-csv")
    with NdjsonBundleWriter(tmp_path) as writer:
        for index, given in ((0, "Ame\u2028lia"), (1, "Dan\u2029iel\u0085James")):
            data = dict(rows[index], given_name=given)
            where = Location(file="diabetes.csv", row=index + 1)
            result = convert_record(SourceRecord(data, where), mapping)
            assert isinstance(result, Converted)
            writer.write(result)
    path = tmp_path / "bundles.ndjson"
    assert path.read_bytes().count(b"\n") == 2
    assert "\u2028".encode() in path.read_bytes()
    return path


def test_cli_reads_our_ndjson_with_line_separators_in_strings(tmp_path: Path) -> None:
    """``fhir-iapt validate`` on our own bundles.ndjson holding U+2028/U+2029/U+0085 in names
    reads two valid bundles, not several "not JSON" lines."""
    code, outcomes, err = _run(_our_output(tmp_path))
    assert (code, outcomes) == (0, [])
    assert "2 valid, 0 invalid" in err


def test_push_reads_our_ndjson_with_line_separators_in_strings(tmp_path: Path) -> None:
    """``push`` reads the same file as two Bundles, none in error."""
    items = list(read_bundles(_our_output(tmp_path)))
    assert [item.error for item in items] == [None, None]
    assert [item.location.line for item in items] == [1, 2]
