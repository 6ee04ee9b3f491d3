"""``fhir-iapt report``: the bundled examples through the command (ledger from ``convert
--ledger`` of the clinic examples), its output files, exact figures, and what it refuses."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fhir_iapt.cli import main
from fhir_iapt.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
OUTPUTS = {
    "kpis.csv",
    "data-quality.csv",
    "measure-reports.ndjson",
    "report.html",
    "rejects.ndjson",
}


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["report", *args])


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The referrals convert records for the three clinic examples."""
    folder = tmp_path_factory.mktemp("report-cli")
    path = folder / "ledger.sqlite"
    for example, mapping in (
        ("diabetes.csv", "diabetes-csv"),
        ("respiratory.xml", "respiratory-xml"),
        ("cardiac.json", "cardiac-json"),
    ):
        result = CliRunner().invoke(
            main,
            [
                "convert",
                str(EXAMPLES / example),
                "--mapping",
                mapping,
                "--out",
                str(folder / mapping),
                "--ledger",
                str(path),
            ],
        )
        assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def published(ledger: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    """The report of the bundled data set, published (the default), and its folder."""
    out = tmp_path_factory.mktemp("published") / "out"
    args = ["--dataset", "tt-v2.1", "--ledger", str(ledger), "--out", str(out)]
    return _run(str(EXAMPLES / "tt-dataset"), *args), out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _nhs_numbers() -> set[str]:
    numbers = set()
    for line in (EXAMPLES / "tt-dataset-episodes.csv").read_text().splitlines()[1:]:
        numbers.add(line.split(",")[3])
    return numbers


def test_the_bundled_examples_give_every_output(published: tuple[Result, Path]) -> None:
    """Exit 1 (the example's three bad rows, in rejects.ndjson) and all five files: the KPIs
    (provider and sending-clinic groups), a MeasureReport per KPI value, the data-quality
    checks of every kind the example holds, and report.html."""
    result, out = published
    assert result.exit_code == 1, result.output
    assert {p.name for p in out.iterdir()} == OUTPUTS
    kpis = _rows(out / "kpis.csv")
    assert {r["kpi"] for r in kpis} >= {"referrals-sent", "recovery-rate", "loop-closure-matched"}
    assert {r["figures"] for r in kpis} == {"published"}
    reports = (out / "measure-reports.ndjson").read_text().splitlines()
    assert len(reports) == len(kpis)
    assert all(json.loads(line)["resourceType"] == "MeasureReport" for line in reports)
    checks = {r["check"] for r in _rows(out / "data-quality.csv")}
    assert checks >= {
        "problem-descriptor-f41.2",
        "problem-descriptor-missing",
        "adsm-not-recorded-or-unpaired",
        "phq9-not-paired",
        "referral-without-screening",
        "attend-code-invalid",
        "app-type-invalid",
        "assessment-tool-invalid",
    }
    rejects = (out / "rejects.ndjson").read_text().splitlines()
    assert len(rejects) == 3
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "report: 24 pathways" in result.output


def test_published_figures_are_suppressed_and_rounded(published: tuple[Result, Path]) -> None:
    """RZZ10's diabetes pathways that finished in April 2026: 9 (published 10), recovery
    6 / (9 - 1) shown from the unrounded counts (75%); counts under 5 are blank."""
    _, out = published
    rows = {(r["kpi"], r["provider"], r["pathway"], r["month"]): r for r in _rows(out / "kpis.csv")}
    finished = rows[("finished-treatment", "RZZ10", "diabetes", "2026-04")]
    assert (finished["numerator"], finished["note"]) == ("10", "")
    recovery = rows[("recovery-rate", "RZZ10", "diabetes", "2026-04")]
    assert (recovery["numerator"], recovery["denominator"], recovery["rate"]) == ("5", "10", "0.75")
    respiratory = rows[("finished-treatment", "RZZ10", "respiratory", "2026-03")]
    assert (respiratory["numerator"], respiratory["note"]) == ("", "suppressed")


def test_exact_figures_with_no_suppress(ledger: Path, tmp_path: Path) -> None:
    """--no-suppress: the same groups with exact counts (3 respiratory pathways finished in
    March 2026 at RZZ10; of the ledger's 18 referrals, 5 answered by a pathway)."""
    result = _run(str(EXAMPLES / "tt-dataset"), "--dataset", "tt-v2.1", "--ledger", str(ledger),
                  "--no-suppress", "--out", str(tmp_path))  # fmt: skip
    assert result.exit_code == 1, result.output
    rows = {
        (r["kpi"], r["provider"], r["pathway"], r["month"]): r for r in _rows(tmp_path / "kpis.csv")
    }
    assert rows[("finished-treatment", "RZZ10", "respiratory", "2026-03")]["numerator"] == "3"
    assert rows[("finished-treatment", "RZZ10", "diabetes", "2026-04")]["numerator"] == "9"
    matched = [r for k, r in rows.items() if k[0] == "loop-closure-matched"]
    assert sum(int(r["numerator"]) for r in matched) == 5  # DM-1001/1002/1003/1009/1010
    assert sum(int(r["denominator"]) for r in matched) == 18  # every referral in the ledger
    assert {r["figures"] for r in rows.values()} == {"exact"}


def test_the_episode_export_is_read_too(ledger: Path, tmp_path: Path) -> None:
    """An episode-export CSV as input: every row used, exit 0."""
    result = _run(str(EXAMPLES / "tt-dataset-episodes.csv"), "--ledger", str(ledger), "--out",
                  str(tmp_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rejects.ndjson").read_text() == ""


def test_no_patient_data_in_any_output(published: tuple[Result, Path]) -> None:
    """No NHS number of the example in an output file or in what the command printed."""
    result, out = published
    numbers = _nhs_numbers()
    for path in out.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not [n for n in numbers if n in text], path.name
    assert not [n for n in numbers if n in result.output]


def test_without_a_ledger_the_referral_loop_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --ledger and none at the default place: said on stderr, no referral-loop rows."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("FHIR_IAPT_LEDGER", raising=False)
    result = _run(str(EXAMPLES / "tt-dataset-episodes.csv"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert "no referral ledger" in result.output
    kinds = {r["kpi"] for r in _rows(tmp_path / "o" / "kpis.csv")}
    assert "referrals-sent" not in kinds
    assert "recovery-rate" in kinds
    assert not (tmp_path / "empty-home").exists()


def test_a_directory_needs_dataset(tmp_path: Path) -> None:
    """A directory without --dataset tt-v2.1: a usage error, nothing written."""
    result = _run(str(EXAMPLES / "tt-dataset"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "--dataset" in result.output
    assert not (tmp_path / "o").exists()


def test_a_ledger_path_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    """--ledger naming no file: exit 2, the error (FI830) naming the path, as every command
    prints one; no ledger is created and nothing written."""
    missing = tmp_path / "typo.sqlite"
    result = _run(str(EXAMPLES / "tt-dataset-episodes.csv"), "--ledger", str(missing), "--out",
                  str(tmp_path / "o"))  # fmt: skip
    assert result.exit_code == 2
    assert "FI830" in result.output
    assert "typo.sqlite" in result.output
    assert not missing.exists()
    assert not (tmp_path / "o").exists()


def test_an_incomplete_data_set_is_refused_whole(tmp_path: Path) -> None:
    """A data set whose tables are missing: exit 2, every file error (FI150, naming the
    table), and no report of part of the data."""
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "IDS000Header.csv").write_text(
        "OrgIDProv,ReportingPeriodStartDate,ReportingPeriodEndDate\nRXX,2024-04-01,2024-04-30\n"
    )
    result = _run(str(tables), "--dataset", "tt-v2.1", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2, result.output
    assert "FI150" in result.output
    assert "IDS101Referral" in result.output
    assert "IDS607CodedScoreAssessmentAct" in result.output
    assert not (tmp_path / "o").exists()


def test_a_mapping_that_is_not_an_episode_mapping_is_refused(tmp_path: Path) -> None:
    """An export read with a referral mapping: exit 2, the MappingError (FI200) saying why."""
    result = _run(str(EXAMPLES / "tt-dataset-episodes.csv"), "--mapping", "diabetes-csv",
                  "--out", str(tmp_path / "o"))  # fmt: skip
    assert result.exit_code == 2
    assert "FI200" in result.output
    assert "'episode' mapping" in result.output
    assert not (tmp_path / "o").exists()


def test_an_earlier_report_in_out_is_refused_unless_overwrite(tmp_path: Path) -> None:
    """A second run into the same folder: exit 2 naming the earlier files, nothing changed;
    with --overwrite it replaces them."""
    export = str(EXAMPLES / "tt-dataset-episodes.csv")
    out = tmp_path / "o"
    first = _run(export, "--ledger", str(_empty_ledger(tmp_path)), "--out", str(out))
    assert first.exit_code == 0, first.output
    before = (out / "kpis.csv").read_bytes()
    again = _run(export, "--ledger", str(tmp_path / "ledger.sqlite"), "--out", str(out))
    assert again.exit_code == 2
    assert "kpis.csv" in again.output
    assert "--overwrite" in again.output
    assert (out / "kpis.csv").read_bytes() == before
    replaced = _run(export, "--ledger", str(tmp_path / "ledger.sqlite"), "--overwrite",
                    "--no-suppress", "--out", str(out))  # fmt: skip
    assert replaced.exit_code == 0, replaced.output
    assert (out / "kpis.csv").read_bytes() != before


def test_errors_print_as_an_operation_outcome_on_request(tmp_path: Path) -> None:
    """--error-format json: the refusal is the OperationOutcome, as for the other commands."""
    args = ["--error-format", "json", "--ledger", str(tmp_path / "typo.sqlite")]
    result = _run(str(EXAMPLES / "tt-dataset-episodes.csv"), *args, "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    outcome = json.loads(result.output[result.output.index("{") :])
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "FI830"


def _empty_ledger(folder: Path) -> Path:
    path = folder / "ledger.sqlite"
    Ledger(path).close()
    return path
