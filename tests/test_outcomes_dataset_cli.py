"""``fhir-iapt outcomes --dataset``: what it refuses before reading anything (exit 2, a message)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from fhir_iapt.cli import main
from fhir_iapt.ledger import Ledger

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["outcomes", *args])
    return result.exit_code, result.output


def test_dataset_needs_one_directory(tmp_path: Path) -> None:
    """--dataset with a file (not the tables' directory) is a usage error."""
    code, output = _run(
        str(EXAMPLES / "iapt-outcomes.csv"), "--dataset", "tt-v2.1", "--out", str(tmp_path)
    )
    assert code == 2
    assert "one directory" in output


def test_a_directory_without_dataset_is_a_usage_error(tmp_path: Path) -> None:
    """A directory is read only as the data set's tables."""
    code, output = _run(str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "--dataset" in output


def test_dataset_without_a_ledger_says_where_it_looked(tmp_path: Path) -> None:
    """No ledger file: exit 2 naming the path, nothing written."""
    missing = tmp_path / "no-ledger.sqlite"
    code, output = _run(
        str(tmp_path),
        "--dataset",
        "tt-v2.1",
        "--ledger",
        str(missing),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2
    assert "no-ledger.sqlite" in output
    assert not missing.exists()
    assert not (tmp_path / "o").exists()


def test_an_incomplete_dataset_is_one_file_error_and_a_summary(tmp_path: Path) -> None:
    """An empty directory: every table missing, rejected (exit 1) with summary.json written."""
    ledger = tmp_path / "ledger.sqlite"
    Ledger(ledger).close()
    tables = tmp_path / "tables"
    tables.mkdir()
    code, _ = _run(
        str(tables), "--dataset", "tt-v2.1", "--ledger", str(ledger), "--out", str(tmp_path / "o")
    )
    assert code == 1
    assert (tmp_path / "o" / "summary.json").is_file()
