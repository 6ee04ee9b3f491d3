"""`fhir-iapt convert --dry-run` (issue 14): read and map a sample, print each mapped field's
fill rate (the share of records where it got a value) and the first rejects (located, no
values); build, validate, write and record nothing."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fhir_iapt.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NHS = ("9000000009", "9912003888", "9434765919", "9990000018")

MAPPING = """\
# dry-run test: a small referral layout.
# Reads: id, clinic, visit, nhs, refer, consent, dob, phq2_q1, phq2_q2.
format: 1
target: referral
input:
  format: csv
source_system: https://example.org/Id/dry-run
fields:
  record_id: {from: id, type: string, required: true}
  clinic_ods: {from: clinic, type: ods, required: true}
  event_date: {from: visit, type: date, required: true}
  patient.nhs_number: {from: nhs, type: nhs_number, required: true}
  patient.birth_date: {from: dob, type: date}
  referral.decision: {from: refer, type: bool, required: true}
  referral.consent_to_refer: {from: consent, type: bool}
screenings:
  items:
    - {instrument: PHQ-2, answers: [phq2_q1, phq2_q2]}
"""
HEADER = ["id", "clinic", "visit", "nhs", "refer", "consent", "dob", "phq2_q1", "phq2_q2"]


def _write(tmp_path: Path, rows: list[list[str]]) -> tuple[Path, Path]:
    mapping = tmp_path / "dry-run.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    sample = tmp_path / "sample.csv"
    sample.write_text(out.getvalue(), encoding="utf-8")
    return mapping, sample


def _row(i: int, **over: str) -> list[str]:
    row = {
        "id": f"R{i}", "clinic": "RZZ10", "visit": "2025-03-04", "nhs": NHS[i % 4],
        "refer": "Y", "consent": "Y", "dob": "1960-01-02", "phq2_q1": "1", "phq2_q2": "2",
    }  # fmt: skip
    row.update(over)
    return [row[h] for h in HEADER]


def _dry(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["convert", *map(str, args), "--dry-run"])


def _fills(output: str) -> dict[str, tuple[int, int, str]]:
    """field -> (filled, records, share) from the fill table."""
    out = {}
    for line in output.splitlines():
        match = re.match(r"(\S+(?: \S+)?)\s+(\d+)/(\d+)\s+(\d+%)\s+(.+)$", line)
        if match:
            out[match[1]] = (int(match[2]), int(match[3]), match[4])
    return out


def test_fill_rates_are_the_share_of_records_that_gave_each_field_a_value(
    tmp_path: Path,
) -> None:
    """Four records, the consent blank in one and the birth date and PHQ-2 in two: each mapped
    field's line says how many of the four gave it a value, and its share."""
    rows = [
        _row(0),
        _row(1, consent=""),
        _row(2, dob="", phq2_q1="", phq2_q2=""),
        _row(3, dob="", phq2_q1="", phq2_q2=""),
    ]
    mapping, sample = _write(tmp_path, rows)
    result = _dry(sample, "--mapping", mapping)
    assert result.exit_code == 0, result.output
    fills = _fills(result.output)
    blank = {h: sum(1 for r in rows if not r[HEADER.index(h)]) for h in HEADER}
    for target, column in (
        ("record_id", "id"),
        ("patient.birth_date", "dob"),
        ("referral.consent_to_refer", "consent"),
        ("screenings PHQ-2", "phq2_q1"),
    ):
        filled = len(rows) - blank[column]
        assert fills[target] == (filled, 4, f"{filled * 100 // 4}%"), (target, result.output)
    assert "4 records read, 4 map, 0 rejected" in result.output


def test_the_first_rejects_are_printed_located_without_their_values(tmp_path: Path) -> None:
    """Rejected records (a bad NHS number, a future date) are printed, each naming the file,
    row and field and the rule broken, never the value; exit 1 as convert's."""
    bad_nhs, future = "9434765918", "2999-01-01"
    mapping, sample = _write(tmp_path, [_row(0), _row(1, nhs=bad_nhs), _row(2, visit=future)])
    result = _dry(sample, "--mapping", mapping)
    assert result.exit_code == 1, result.output
    assert "3 records read, 1 map, 2 rejected" in result.output
    assert re.search(
        r"error FI301: sample\.csv row 2 line 3 field nhs: .*check digit", result.output
    )
    assert re.search(r"error FI301: sample\.csv row 3 line 4 field visit: .*future", result.output)
    assert bad_nhs not in result.output
    assert future not in result.output


def test_only_the_first_five_rejects_are_printed(tmp_path: Path) -> None:
    """With more than five rejects, five are printed and the count says how many there are."""
    mapping, sample = _write(tmp_path, [_row(i, clinic="?") for i in range(8)])
    result = _dry(sample, "--mapping", mapping)
    assert result.exit_code == 1
    assert "first rejects (5 of 8):" in result.output
    assert len(re.findall(r"^error FI301: ", result.output, flags=re.M)) == 5


def test_rejects_print_as_operation_outcomes_with_error_format_json(tmp_path: Path) -> None:
    """--error-format json prints each reject as its OperationOutcome, one a line."""
    mapping, sample = _write(tmp_path, [_row(0, refer="perhaps")])
    result = _dry(sample, "--mapping", mapping, "--error-format", "json")
    assert result.exit_code == 1
    [outcome] = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert outcome["resourceType"] == "OperationOutcome"
    assert "field refer" in outcome["issue"][0]["diagnostics"]


def test_a_dry_run_writes_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --out is needed; a given --out, the ledger and the shape cache are not created, and
    the folder holds only what was there."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    mapping, sample = _write(tmp_path, [_row(0), _row(1)])
    before = sorted(tmp_path.rglob("*"))
    ledger = tmp_path / "ledger.sqlite"
    result = _dry(sample, "--mapping", mapping, "--out", tmp_path / "out", "--ledger", ledger)
    assert result.exit_code == 0, result.output
    assert "nothing built, validated, written or recorded" in result.output
    assert sorted(tmp_path.rglob("*")) == before


def test_without_dry_run_out_is_still_required(tmp_path: Path) -> None:
    """convert without --dry-run and without --out is the usage error it always was."""
    mapping, sample = _write(tmp_path, [_row(0)])
    result = CliRunner().invoke(main, ["convert", str(sample), "--mapping", str(mapping)])
    assert result.exit_code == 2
    assert "Missing option '--out'" in result.output


def test_a_bundled_example_dry_runs_with_every_field_and_group(tmp_path: Path) -> None:
    """The respiratory example: every field of its mapping has a line, with the conditions
    group, and the instruments of its repeated screening elements."""
    result = _dry(EXAMPLES / "respiratory.xml", "--mapping", "respiratory-xml")
    assert result.exit_code == 0, result.output
    fills = _fills(result.output)
    assert fills["record_id"][0] == fills["record_id"][1] == 8
    assert "conditions" in fills
    assert "conditions.snomed" in fills
    assert {"screenings PHQ-9", "screenings GAD-7"} <= set(fills)


def test_unreadable_rows_are_rejects_and_the_wrong_input_kind_a_usage_error(
    tmp_path: Path,
) -> None:
    """A row the reader cannot read counts among the rejects (its read error printed); an XML
    file given to a CSV mapping is the usage error convert gives."""
    mapping, sample = _write(tmp_path, [_row(0)])
    sample.write_text(sample.read_text("utf-8") + "R9,RZZ10\r\n", encoding="utf-8")
    result = _dry(sample, "--mapping", mapping)
    assert result.exit_code == 1
    assert "2 records read" not in result.output
    assert "error FI101: sample.csv row 2" in result.output
    wrong = tmp_path / "export.xml"
    wrong.write_text("<Export/>", encoding="utf-8")
    result = _dry(wrong, "--mapping", mapping)
    assert result.exit_code == 2
    assert "looks like XML" in result.output
