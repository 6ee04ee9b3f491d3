"""``fhir-iapt convert``: the files it writes, its exit codes, layouts and workers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fhir_iapt.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_clean_export_exits_0_and_writes_bundles_rejects_and_summary(tmp_path: Path) -> None:
    """A valid export: exit 0, one bundle per referred+consented visit, an empty rejects file."""
    code, _ = _run(
        "convert",
        str(EXAMPLES / "diabetes.csv"),
        "--mapping",
        "diabetes-csv",
        "--out",
        str(tmp_path),
    )
    assert code == 0
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    bundles = _lines(tmp_path / "bundles.ndjson")
    assert summary["converted"] == len(bundles) > 0
    assert summary["rejected_total"] == 0
    assert summary["records"] == summary["converted"] + summary["skipped_total"]
    assert _lines(tmp_path / "rejects.ndjson") == []
    assert all(b["resourceType"] == "Bundle" and b["type"] == "transaction" for b in bundles)


def test_some_rejected_records_exit_1_and_the_good_ones_are_still_written(tmp_path: Path) -> None:
    """One bad row among good ones: exit 1, the bad row in rejects.ndjson with its row number."""
    rows = (EXAMPLES / "diabetes.csv").read_text(encoding="utf-8").splitlines()
    header, first = rows[0], rows[1]
    bad = first.replace(first.split(",")[1], "9990000019", 1)  # fails modulus 11
    src = tmp_path / "in.csv"
    src.write_text("\n".join([header, bad, *rows[1:]]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _ = _run("convert", str(src), "--mapping", "diabetes-csv", "--out", str(out))
    assert code == 1
    rejects = _lines(out / "rejects.ndjson")
    assert len(rejects) == 1
    issue = rejects[0]["issue"][0]  # type: ignore[index]
    assert "in.csv row 1" in issue["location"][0]
    assert "nhs_number" in issue["location"][0]
    assert "9990000019" not in orjson.dumps(rejects).decode()
    good = _lines(out / "bundles.ndjson")
    assert len(good) == orjson.loads((out / "summary.json").read_bytes())["converted"] > 0


def test_unknown_mapping_exits_2_with_an_operation_outcome(tmp_path: Path) -> None:
    """A mapping name that does not exist is a usage error: exit 2, an OperationOutcome with
    --error-format json (one readable line without), no output."""
    args = ["convert", str(EXAMPLES / "diabetes.csv"), "--mapping", "no-such-mapping"]
    code, output = _run(*args, "--out", str(tmp_path / "out"), "--error-format", "json")
    assert code == 2
    outcome = json.loads(output)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "no-such-mapping" in outcome["issue"][0]["diagnostics"]
    code, output = _run(*args, "--out", str(tmp_path / "out"))
    assert code == 2
    (line,) = output.strip().splitlines()
    assert line.startswith("error FI")
    assert "no-such-mapping" in line
    assert not (tmp_path / "out").exists()


def test_broken_mapping_file_is_reported_with_its_line_before_any_record(tmp_path: Path) -> None:
    """A mapping with an unknown key is refused at load, naming the mapping file and line."""
    text = (ROOT / "mappings" / "diabetes-csv.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace("fields:", "feilds:", 1), encoding="utf-8")
    line = next(i for i, s in enumerate(broken.read_text().splitlines(), 1) if "feilds" in s)
    code, output = _run(
        "convert",
        str(EXAMPLES / "diabetes.csv"),
        "--mapping",
        str(broken),
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 2
    assert "broken.yaml" in output
    assert f"line {line}" in output


def test_bulk_layout_writes_one_ndjson_per_resource_type(tmp_path: Path) -> None:
    """--layout bulk: <Type>.ndjson files whose references point at <Type>/<id> in the set."""
    code, _ = _run(
        "convert",
        str(EXAMPLES / "cardiac.json"),
        "--mapping",
        "cardiac-json",
        "--out",
        str(tmp_path),
        "--layout",
        "bulk",
    )
    assert code == 0
    files = {p.stem: _lines(p) for p in tmp_path.glob("*.ndjson") if p.stem != "rejects"}
    assert {"Patient", "ServiceRequest", "QuestionnaireResponse", "Observation"} <= set(files)
    ids = {f"{t}/{r['id']}" for t, rows in files.items() for r in rows}
    for sr in files["ServiceRequest"]:
        assert sr["subject"]["reference"] in ids  # type: ignore[index]


def test_xml_format_writes_fhir_xml(tmp_path: Path) -> None:
    """--format xml writes FHIR XML Bundles in the FHIR namespace."""
    code, _ = _run(
        "convert",
        str(EXAMPLES / "respiratory.xml"),
        "--mapping",
        "respiratory-xml",
        "--out",
        str(tmp_path),
        "--format",
        "xml",
    )
    assert code == 0
    xml_files = list(tmp_path.rglob("*.xml"))
    assert xml_files
    assert b'xmlns="http://hl7.org/fhir"' in xml_files[0].read_bytes()


def test_two_workers_give_the_same_output_as_one(tmp_path: Path) -> None:
    """--workers 2 (processes) writes exactly what a single process writes, in input order."""
    big = tmp_path / "big.csv"
    rows = (EXAMPLES / "diabetes.csv").read_text(encoding="utf-8").splitlines()
    big.write_text("\n".join([rows[0], *(rows[1:] * 60)]) + "\n", encoding="utf-8")
    for workers in ("1", "2"):
        code, _ = _run(
            "convert",
            str(big),
            "--mapping",
            "diabetes-csv",
            "--out",
            str(tmp_path / workers),
            "--workers",
            workers,
        )
        assert code == 0
    assert (tmp_path / "1" / "bundles.ndjson").read_bytes() == (
        tmp_path / "2" / "bundles.ndjson"
    ).read_bytes()
    assert (tmp_path / "1" / "summary.json").read_bytes() == (
        tmp_path / "2" / "summary.json"
    ).read_bytes()


def test_installed_command_runs_as_a_process(tmp_path: Path) -> None:
    """The console script installed by pyproject works outside the test process."""
    exe = shutil.which("fhir-iapt", path=str(Path(sys.executable).parent))
    assert exe is not None
    proc = subprocess.run(
        [
            exe,
            "convert",
            str(EXAMPLES / "cardiac.ndjson"),
            "--mapping",
            "cardiac-json",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "bundles.ndjson").stat().st_size > 0


@pytest.mark.parametrize("missing", ["nope.csv"])
def test_missing_input_file_is_a_usage_error(tmp_path: Path, missing: str) -> None:
    """An input path that does not exist: exit 2 before anything is written."""
    code, _ = _run(
        "convert",
        str(tmp_path / missing),
        "--mapping",
        "diabetes-csv",
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 2
    assert not (tmp_path / "out").exists()
