"""What an operator meets at the command line (issue 14, "Operator experience"): an --out folder
holding an earlier run is refused unless --overwrite; a mapping for the wrong kind of input is a
usage error naming both; push says why the first bundles failed; validate takes an output
folder; errors print one way in every command (a line per issue, or OperationOutcome JSON)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from client_helpers import referral_bundle

from fhir_iapt.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _convert(out: Path, *extra: str, example: str = "diabetes.csv", mapping: str = "diabetes-csv"):
    return _cli(
        "convert",
        str(EXAMPLES / example),
        "--mapping",
        mapping,
        "--out",
        str(out),
        "--ledger",
        str(out.parent / "ledger.sqlite"),
        *extra,
    )


def test_convert_refuses_an_out_folder_holding_an_earlier_run(tmp_path: Path) -> None:
    """A second convert into the same --out exits 2 naming the files and --overwrite, and the
    first run's results are left exactly as they were."""
    out = tmp_path / "out"
    assert _convert(out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    second = _convert(out)
    assert second.exit_code == 2
    assert "--overwrite" in second.output
    assert "bundles.ndjson" in second.output
    assert "summary.json" in second.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_replaces_the_earlier_run_and_leaves_none_of_its_files(tmp_path: Path) -> None:
    """--overwrite replaces an earlier run's results, removing what the new run would not
    rewrite (a bulk-layout file, the push results of the old bundles), and says so."""
    out = tmp_path / "out"
    assert _convert(out, "--layout", "bulk").exit_code == 0
    assert (out / "Patient.ndjson").is_file()
    (out / "results.ndjson").write_text('{"status": "delivered"}\n')
    (out / "notes.txt").write_text("the operator's own file\n")
    again = _convert(out, "--overwrite")
    assert again.exit_code == 0, again.output
    assert "replacing the earlier results" in again.output
    assert sorted(p.name for p in out.iterdir()) == [
        "bundles.ndjson",
        "notes.txt",
        "rejects.ndjson",
        "summary.json",
    ]


def test_outcomes_refuses_an_out_folder_holding_an_earlier_run(tmp_path: Path) -> None:
    """outcomes claims its --out the same way convert does."""
    out = tmp_path / "out"
    args = ["outcomes", str(EXAMPLES / "iapt-outcomes.csv"), "--out", str(out)]
    assert _cli(*args).exit_code == 0
    refused = _cli(*args)
    assert refused.exit_code == 2
    assert "--overwrite" in refused.output
    assert _cli(*args, "--overwrite").exit_code == 0


@pytest.mark.parametrize(
    ("example", "mapping", "reads", "found"),
    [
        ("diabetes.csv", "respiratory-xml", "XML", "CSV"),
        ("diabetes.csv", "cardiac-json", "JSON", "CSV"),
        ("respiratory.xml", "diabetes-csv", "CSV", "XML"),
        ("cardiac.json", "respiratory-xml", "XML", "JSON"),
        ("cardiac.ndjson", "diabetes-csv", "CSV", "JSON"),
    ],
)
def test_a_mapping_for_another_kind_of_input_is_a_usage_error(
    tmp_path: Path, example: str, mapping: str, reads: str, found: str
) -> None:
    """--mapping respiratory-xml on a CSV (and the like) exits 2 with one message naming the
    mapping, the file and both kinds, before anything is written or recorded."""
    out = tmp_path / "out"
    result = _convert(out, example=example, mapping=mapping)
    assert result.exit_code == 2
    assert f"--mapping {mapping} reads {reads} input, but {example} looks like {found}" in (
        result.output
    )
    assert not out.exists()
    assert not (tmp_path / "ledger.sqlite").exists()


@pytest.mark.parametrize(
    ("example", "mapping"),
    [
        ("diabetes.csv", "diabetes-csv"),
        ("respiratory.xml", "respiratory-xml"),
        ("cardiac.json", "cardiac-json"),
        ("cardiac.ndjson", "cardiac-json"),
    ],
)
def test_every_bundled_example_passes_the_input_kind_check(
    tmp_path: Path, example: str, mapping: str
) -> None:
    """The check never refuses an input its mapping reads (a BOM or leading blank lines too)."""
    source = tmp_path / f"bom-{example}"
    source.write_bytes(b"\xef\xbb\xbf\r\n" + (EXAMPLES / example).read_bytes())
    result = _cli(
        "convert",
        str(source),
        "--mapping",
        mapping,
        "--out",
        str(tmp_path / "out"),
        "--ledger",
        str(tmp_path / "ledger.sqlite"),
    )
    assert result.exit_code in (0, 1), result.output
    assert "looks like" not in result.output


@pytest.mark.integration
def test_push_prints_why_the_first_bundles_failed_without_patient_data(
    fhir_server: str, tmp_path: Path
) -> None:
    """push names, for each of the first failed bundles, its line, the HTTP status, the error
    code and the issue's code and place - and where the full list is - but no value of it."""
    good = referral_bundle(f"good-{uuid.uuid4()}")
    broken = [referral_bundle(f"bad-{uuid.uuid4()}") for _ in range(2)]
    for bundle in broken:
        bundle["entry"][1]["resource"]["status"] = {"not": "a code"}
    bundles = tmp_path / "bundles.ndjson"
    bundles.write_bytes(b"".join(orjson.dumps(b) + b"\n" for b in [good, *broken]))
    out = tmp_path / "push"
    result = CliRunner().invoke(
        main, ["push", str(bundles), "--server", fhir_server, "--out", str(out)]
    )
    assert result.exit_code == 1
    assert (
        f"why they were not delivered (every one is in {out / 'results.ndjson'})" in result.output
    )
    lines = [line for line in result.output.splitlines() if line.startswith("  ")]
    assert [line.split(": ")[0].strip() for line in lines] == [
        f"{bundles} row 2 line 2",
        f"{bundles} row 3 line 3",
    ]
    assert all("HTTP 400" in line for line in lines)
    assert all("FI7" in line for line in lines)
    nhs_numbers = [_nhs(b) for b in broken]
    assert not any(n in result.output for n in nhs_numbers)


@pytest.mark.integration
def test_push_describes_only_the_first_five_failures(fhir_server: str, tmp_path: Path) -> None:
    """With more failures than it describes, push says how many it shows of how many."""
    broken = [referral_bundle(f"bad-{uuid.uuid4()}") for _ in range(6)]
    for bundle in broken:
        bundle["entry"][1]["resource"]["status"] = {"not": "a code"}
    bundles = tmp_path / "bundles.ndjson"
    bundles.write_bytes(b"".join(orjson.dumps(b) + b"\n" for b in broken))
    result = CliRunner().invoke(main, ["push", str(bundles), "--server", fhir_server])
    assert result.exit_code == 1
    assert "why the first 5 of 6 were not delivered" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("  ")]) == 5


def _nhs(bundle: dict[str, Any]) -> str:
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    return str(patient["identifier"][0]["value"])


@pytest.mark.parametrize(
    "layout", [["--layout", "bundles"], ["--layout", "bulk"], ["--format", "xml"]]
)
def test_validate_takes_a_convert_output_folder(tmp_path: Path, layout: list[str]) -> None:
    """validate OUT validates what convert wrote there (bundles, bulk files or FHIR XML), as
    push takes the folder: every bundle found and valid."""
    out = tmp_path / "out"
    assert _convert(out, *layout).exit_code == 0
    result = CliRunner().invoke(main, ["validate", str(out)])
    assert result.exit_code == 0, result.output
    valid = int(result.output.strip().splitlines()[-1].split()[0])
    summary = json.loads((out / "summary.json").read_text())
    if layout[0] == "--layout" and layout[1] == "bulk":
        assert valid > summary["converted"]  # one per resource
    else:
        assert valid == summary["converted"]


def test_validate_refuses_a_folder_with_nothing_to_validate(tmp_path: Path) -> None:
    """A folder with no bundles, bulk files or bundles-xml/ is exit 2 with a located error."""
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["validate", "--format", "json", str(tmp_path / "empty")])
    assert result.exit_code == 2
    outcome = json.loads(result.output.splitlines()[0])
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "FI804"


def test_errors_print_as_one_line_per_issue_or_as_json_in_every_command(tmp_path: Path) -> None:
    """validate, convert, push and ledger purge print an error as `error FIxxx <where>: <what>`
    by default and as the same OperationOutcome JSON with --error-format json."""
    bad = tmp_path / "sr.json"
    bad.write_text(json.dumps({"resourceType": "ServiceRequest", "status": "active"}))
    missing = tmp_path / "no-ledger.sqlite"
    commands = {
        "validate": ["validate", str(bad)],
        "convert": [
            "convert",
            str(EXAMPLES / "diabetes.csv"),
            "--mapping",
            "nope",
            "--out",
            str(tmp_path / "o"),
        ],
        "push": ["push", str(tmp_path), "--server", "http://127.0.0.1:9"],
        "purge": ["ledger", "purge", "--ledger", str(missing), "--before", "2020-01-01"],
    }
    for name, args in commands.items():
        text = _cli(*args)
        assert text.exit_code in (1, 2), (name, text.output)
        first = text.output.strip().splitlines()[0]
        assert first.startswith("error FI"), (name, first)
        as_json = _cli(
            *args[: 2 if name == "purge" else 1],
            "--error-format",
            "json",
            *args[2 if name == "purge" else 1 :],
        )
        outcome = json.loads(as_json.output.strip().splitlines()[0])
        assert outcome["resourceType"] == "OperationOutcome", name
        code = outcome["issue"][0]["details"]["coding"][0]["code"]
        assert first.startswith(f"error {code}"), (name, first, code)
