"""``fhir-iapt outcomes``: files, summary counts, consent skips and exit codes, run as a user."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from fhir_iapt.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CSV = ROOT / "examples" / "iapt-outcomes.csv"
EXAMPLE_QR = ROOT / "examples" / "phq9-lhcforms-response.json"


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def test_example_export_and_response(tmp_path: Path) -> None:
    """The example export and the LHC-Forms response, with the export as consent register,
    give 6 bundles, 3 consent skips, exit 0."""
    out = tmp_path / "out"
    code, _ = _run(
        [
            "outcomes",
            str(EXAMPLE_CSV),
            str(EXAMPLE_QR),
            "--out",
            str(out),
            "--consent",
            str(EXAMPLE_CSV),
        ]
    )
    assert code == 0
    lines = (out / "bundles.ndjson").read_text().splitlines()
    assert len(lines) == 6  # 5 consented episodes + 1 QuestionnaireResponse (DC-1001 says Y)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["converted"] == 6
    assert summary["skipped"] == {
        "outcomes-consent-withheld": 1,
        "outcomes-consent-withdrawn": 1,
        "outcomes-consent-not-recorded": 1,
    }
    bundles = "\n".join(lines)
    for pathway in ("TT-0006", "TT-0007", "TT-0008"):
        assert pathway not in bundles


def test_rejects_exit_one(tmp_path: Path) -> None:
    """A bad row is written to rejects.ndjson, the good rows still convert, exit status 1."""
    text = EXAMPLE_CSV.read_text().splitlines()
    bad = text[1].replace(",16,7,14,5,", ",16,x,14,5,")
    src = tmp_path / "episodes.csv"
    src.write_text("\n".join([text[0], bad, text[2]]) + "\n")
    out = tmp_path / "out"
    code, _ = _run(["outcomes", str(src), "--out", str(out)])
    assert code == 1
    rejects = [json.loads(line) for line in (out / "rejects.ndjson").read_text().splitlines()]
    assert len(rejects) == 1
    assert "field phq9_last" in json.dumps(rejects[0])
    assert len((out / "bundles.ndjson").read_text().splitlines()) == 1


def test_wrong_mapping_is_usage_error(tmp_path: Path) -> None:
    """A mapping for another target, or one that does not exist, exits 2 before any output."""
    copy = tmp_path / "e.csv"
    shutil.copy(EXAMPLE_CSV, copy)
    code, _ = _run(
        ["outcomes", str(copy), "--mapping", "diabetes-csv", "--out", str(tmp_path / "o1")]
    )
    assert code == 2
    code, _ = _run(
        ["outcomes", str(copy), "--mapping", "no-such-mapping", "--out", str(tmp_path / "o2")]
    )
    assert code == 2
    assert not (tmp_path / "o1" / "bundles.ndjson").exists()
