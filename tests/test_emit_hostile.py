"""Emit: a record whose bundle the output format cannot carry is rejected, the run goes on.

A lone surrogate (``\\ud800``) is a Python ``str`` but not Unicode text: neither JSON (orjson:
"str is not valid UTF-8") nor XML can hold it. XML 1.0 cannot hold most control characters
(``\\x01``) even as character references, while FHIR JSON can (the R4 ``string`` regex
``[ \\r\\n\\t\\S]+`` allows them), so ``--format xml`` rejects such a record and ``--format json``
writes it. Either way the other records are written, the rejected one is an OperationOutcome
naming the record and the element (never the value), and ``summary.json`` is written.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from fhir_iapt import Location, SourceRecord, convert_record, load_mapping
from fhir_iapt.cli import main
from fhir_iapt.cli._run import write_results
from fhir_iapt.emit import (
    BulkWriter,
    NdjsonBundleWriter,
    RejectsWriter,
    XmlBundleWriter,
    write_summary,
)
from fhir_iapt.errors import EmitError, RecordError
from fhir_iapt.fhir.xml import resource_to_xml, xml_to_resource
from fhir_iapt.results import Converted, Rejected

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
UNWRITABLE = "FI641"
SURROGATE = "Hart\ud800ley"
CONTROL = "Hart\x01ley"


def _rows() -> list[dict[str, str]]:
    text = (EXAMPLES / "diabetes.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _converted(row: int = 0, family: str | None = None, **fields: str) -> Converted:
    """The example export's row ``row`` (0-based; referred and consented) converted with
    ``fields`` replaced, then, if ``family`` is given, its Patient's family name set to it (as
    a record would come out of the builder if such a string got through)."""
    data = dict(_rows()[row], **fields)
    where = Location(file="diabetes.csv", row=row + 1, line=row + 2)
    result = convert_record(SourceRecord(data, where), load_mapping("diabetes-csv"))
    assert isinstance(result, Converted)
    if family is None:
        return result
    bundle = orjson.loads(result.json())
    [patient] = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    patient["name"][0]["family"] = family
    return Converted(result.key, bundle, result.location, result.kind)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().split(b"\n") if line]


def _assert_unwritable(error: EmitError, where: Location, value: str) -> None:
    """The error names the record and the family-name element, and not the value."""
    assert error.error_code == UNWRITABLE
    assert error.location == where
    outcome = error.to_operation_outcome()
    [issue] = outcome["issue"]
    assert issue["details"]["coding"][0]["code"] == UNWRITABLE
    assert issue["location"] == [where.render()]
    [expression] = issue["expression"]
    assert expression.startswith("Bundle.entry[")
    assert expression.endswith(".resource.name[0].family")
    text = json.dumps(outcome, ensure_ascii=False)
    assert value not in text
    assert "Hart" not in text


def test_ndjson_writer_rejects_a_lone_surrogate_and_keeps_going(tmp_path: Path) -> None:
    """A bundle holding a lone surrogate raises FI641 for that record; the writer still
    writes the records before and after it, and nothing of the bad one."""
    good, bad, after = _converted(0), _converted(2, family=SURROGATE), _converted(5)
    with NdjsonBundleWriter(tmp_path) as writer:
        writer.write(good)
        with pytest.raises(EmitError) as info:
            writer.write(bad)
        writer.write(after)
    _assert_unwritable(info.value, bad.location, SURROGATE)
    assert _lines(tmp_path / "bundles.ndjson") == [good.bundle, after.bundle]
    assert writer.count == 2


def test_bulk_writer_rejects_a_lone_surrogate_writing_nothing_of_it(tmp_path: Path) -> None:
    """In the bulk layout a record with a lone surrogate writes none of its resources, and its
    shared Patient is not taken as written: a later good record of that patient writes it."""
    bad = _converted(0, family=SURROGATE)
    good = _converted(0, clinic_record_id="DM-GOOD")
    with BulkWriter(tmp_path) as writer:
        with pytest.raises(EmitError) as info:
            writer.write(bad)
        writer.write(good)
    _assert_unwritable(info.value, bad.location, SURROGATE)
    written = {
        f"{r['resourceType']}/{r['id']}" for p in tmp_path.glob("*.ndjson") for r in _lines(p)
    }
    expected = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in good.bundle["entry"]
    }
    assert written == expected
    [patient] = [
        e["resource"] for e in good.bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert [r["name"] for r in _lines(tmp_path / "Patient.ndjson")] == [patient["name"]]


@pytest.mark.parametrize("value", [CONTROL, SURROGATE, "Hart\ufffeley", "Hart\x00ley"])
def test_xml_writer_rejects_a_string_xml_cannot_hold(tmp_path: Path, value: str) -> None:
    """A control character, a lone surrogate, U+FFFE or NUL in a name has no XML 1.0 form:
    FI641 for that record, and the records before and after it are written."""
    good, bad, after = _converted(0), _converted(2, family=value), _converted(5)
    with XmlBundleWriter(tmp_path) as writer:
        writer.write(good)
        with pytest.raises(EmitError) as info:
            writer.write(bad)
        writer.write(after)
    _assert_unwritable(info.value, bad.location, value)
    assert sorted(p.name for p in (tmp_path / "bundles-xml").iterdir()) == sorted(
        f"{c.bundle['id']}.xml" for c in (good, after)
    )


@pytest.mark.parametrize("value", [CONTROL, SURROGATE, "a\ufffeb", "a\x1fb"])
def test_resource_to_xml_names_the_element_not_the_value(value: str) -> None:
    """resource_to_xml raises EmitError FI641 with the element's FHIRPath for a string XML
    cannot hold (not lxml's ValueError or a UnicodeEncodeError)."""
    patient = {"resourceType": "Patient", "name": [{"family": "ok", "given": ["x", value]}]}
    with pytest.raises(EmitError) as info:
        resource_to_xml(patient)
    assert info.value.error_code == UNWRITABLE
    [issue] = info.value.to_operation_outcome()["issue"]
    assert issue["expression"] == ["Patient.name[0].given[1]"]
    assert value not in json.dumps(issue, ensure_ascii=False)


def test_resource_to_xml_keeps_every_character_xml_can_hold() -> None:
    """Tab, LF, CR, U+0085, U+2028, U+FFFD and astral characters are written and read back."""
    text = "a\tb\nc\rd\u0085e\u2028f\ufffdg\U0001f600h"
    patient = {"resourceType": "Patient", "name": [{"family": text}]}
    assert xml_to_resource(resource_to_xml(patient)) == patient


def test_rejects_writer_survives_an_undecodable_file_name(tmp_path: Path) -> None:
    """A file name with bytes that are not UTF-8 (Python hands it over with lone
    surrogates) still gives one OperationOutcome line, the name's rest kept."""
    where = Location(file="clinic-\udcff.csv", row=2)
    error = RecordError("NHS number fails the modulus 11 check", location=where)
    with RejectsWriter(tmp_path) as rejects:
        rejects.write(Rejected(error, where))
    [outcome] = _lines(tmp_path / "rejects.ndjson")
    assert outcome["issue"][0]["location"][0].startswith("clinic-")
    assert outcome["issue"][0]["location"][0].endswith(".csv row 2")


def test_summary_survives_an_undecodable_input_name(tmp_path: Path) -> None:
    """summary.json is written when an input's name holds bytes that are not UTF-8."""
    write_summary(tmp_path, {"records": 1, "inputs": ["clinic-\udcff.csv"]})
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary["records"] == 1
    [name] = summary["inputs"]
    assert name.startswith("clinic-")
    assert name.endswith(".csv")


@pytest.mark.parametrize("layout", ["bundles", "bulk"])
def test_cli_run_rejects_the_unwritable_record_and_writes_the_summary(
    tmp_path: Path, layout: Any
) -> None:
    """The CLI's writing step turns an unwritable bundle into a rejected record: exit 1, the
    other bundles written, one OperationOutcome in rejects.ndjson, summary.json counts it."""
    results = [_converted(0), _converted(2, family=SURROGATE), _converted(5)]
    code = write_results(
        results,
        out_dir=tmp_path,
        layout=layout,
        output_format="json",
        inputs=["diabetes.csv"],
        label="convert",
    )
    assert code == 1
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary["records"] == 3
    assert summary["converted"] == 2
    assert summary["rejected"] == {UNWRITABLE: 1}
    [outcome] = _lines(tmp_path / "rejects.ndjson")
    assert outcome["issue"][0]["location"] == [results[1].location.render()]
    if layout == "bundles":
        assert _lines(tmp_path / "bundles.ndjson") == [results[0].bundle, results[2].bundle]
    else:
        service_requests = _lines(tmp_path / "ServiceRequest.ndjson")
        assert len(service_requests) == 2


def _export_with(tmp_path: Path, family: str) -> Path:
    text = (EXAMPLES / "diabetes.csv").read_text(encoding="utf-8")
    assert text.count("Hartley") == 1
    src = tmp_path / "in.csv"
    src.write_text(text.replace("Hartley", family), encoding="utf-8")
    return src


def test_convert_xml_rejects_a_name_with_a_control_character(tmp_path: Path) -> None:
    """``convert --format xml`` on an export whose name holds \\x01: exit 1, that record in
    rejects.ndjson (row named, value not), every other bundle written, summary.json written."""
    src = _export_with(tmp_path, CONTROL)
    out = tmp_path / "out"
    clean = tmp_path / "clean"
    args = ["--mapping", "diabetes-csv", "--format", "xml", "--validate", "none"]
    result = CliRunner().invoke(main, ["convert", str(src), *args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["rejected"] == {UNWRITABLE: 1}
    [outcome] = _lines(out / "rejects.ndjson")
    assert "row 1" in outcome["issue"][0]["location"][0]
    assert "Hart" not in json.dumps(outcome)
    reference = CliRunner().invoke(
        main, ["convert", str(EXAMPLES / "diabetes.csv"), *args, "--out", str(clean)]
    )
    assert reference.exit_code == 0, reference.output
    reference_summary = orjson.loads((clean / "summary.json").read_bytes())
    assert summary["converted"] == reference_summary["converted"] - 1
    assert len(list((out / "bundles-xml").iterdir())) == summary["converted"]


def test_convert_json_keeps_a_name_with_a_control_character(tmp_path: Path) -> None:
    """FHIR JSON can carry \\x01 (escaped; the R4 string regex allows it) and the validator
    accepts it, so ``convert`` in JSON writes that record, validated in full."""
    src = _export_with(tmp_path, CONTROL)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["convert", str(src), "--mapping", "diabetes-csv", "--validate", "full", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    families = [
        e["resource"]["name"][0]["family"]
        for b in _lines(out / "bundles.ndjson")
        for e in b["entry"]
        if e["resource"]["resourceType"] == "Patient"
    ]
    assert CONTROL in families
