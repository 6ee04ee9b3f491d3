"""`fhir-iapt mapping list | check | init` (issue 14, "Onboarding a new site"): the bundled
mappings as their files say; the load-time check alone (exit 0 with a summary, exit 2 with the
located problems through the shared error output, never the validator); a proposal written to
a file or printed, with exit 0 when it loads and 1 when it needs a decision."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from fhir_iapt import _data
from fhir_iapt.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "tests" / "data" / "mappings" / "broken"
SAMPLES = ROOT / "tests" / "data" / "onboarding"


def _cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_mapping_is_a_command() -> None:
    """`mapping` is registered with the other subcommands."""
    assert COMMANDS["mapping"] == "fhir_iapt.cli.mapping:mapping"
    result = _cli("mapping", "--help")
    assert result.exit_code == 0
    for sub in ("list", "check", "init"):
        assert re.search(rf"^\s+{sub}\b", result.output, flags=re.M), result.output


def test_list_shows_each_bundled_mapping_with_its_input_and_target() -> None:
    """Every mappings/*.yaml is one line: its name, the input format and the target its file
    says (read here with PyYAML), and its header's description."""
    result = _cli("mapping", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()[1:]
    files = sorted(_data.mappings_dir().glob("*.yaml"))
    assert len(lines) == len(files) >= 5
    for line, path in zip(lines, files, strict=True):
        raw = yaml.safe_load(path.read_text("utf-8"))
        name, fmt, target, about = line.split(None, 3)
        assert (name, fmt, target) == (path.stem, raw["input"]["format"], raw["target"])
        assert about.split()[0] in path.read_text("utf-8").splitlines()[0]
        assert about.endswith("."), f"{name}: the description is cut short: {about!r}"


def test_check_passes_a_good_mapping_with_a_one_line_summary() -> None:
    """A mapping that loads: exit 0, 'ok' and one line naming its target, input and what it
    maps; a bundled name works as a file does."""
    for ref in (str(_data.mappings_dir() / "diabetes-csv.yaml"), "respiratory-xml"):
        result = _cli("mapping", "check", ref)
        assert result.exit_code == 0, result.output
        [line] = result.output.splitlines()
        assert line.startswith("ok: ")
    assert "referral from xml input" in result.output
    assert "group conditions" in result.output


def test_check_fails_a_broken_mapping_with_its_located_problems(tmp_path: Path) -> None:
    """A broken mapping: exit 2, one line per problem naming the FI201 code, the file, the
    line and the key; with --error-format json the same as an OperationOutcome."""
    path = tmp_path / "broken.yaml"
    text = (BROKEN / "unknown-key.yaml").read_text("utf-8")
    path.write_text(text, encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "requred" in row)
    result = _cli("mapping", "check", path)
    assert result.exit_code == 2
    assert f"error FI201: broken.yaml line {line} field fields.record_id.requred: unknown key" in (
        result.output
    )
    result = _cli("mapping", "check", path, "--error-format", "json")
    assert result.exit_code == 2
    outcome = json.loads(result.output)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "FI201"
    assert f"broken.yaml line {line}" in outcome["issue"][0]["diagnostics"]


def test_check_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    """A mapping file that is not there: exit 2, FI202."""
    result = _cli("mapping", "check", tmp_path / "none.yaml")
    assert result.exit_code == 2
    assert "FI202" in result.output


def test_check_does_not_load_the_validator() -> None:
    """mapping check imports the map stage only: no module of the build/validate stage
    (fhir_iapt.fhir) is loaded, in a fresh process."""
    code = (
        "import sys\n"
        "from fhir_iapt.cli import main\n"
        "try:\n"
        "    main(['mapping', 'check', 'diabetes-csv'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print(sorted(m for m in sys.modules if m.startswith('fhir_iapt.fhir')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.splitlines()[-1] == "[]", done.stdout


def test_init_writes_the_proposal_and_says_what_it_found(tmp_path: Path) -> None:
    """init --out writes the proposal (a mapping that loads: exit 0) and says on stderr how
    many records it read and that the proposal passes mapping check."""
    out = tmp_path / "site-f.yaml"
    result = _cli(
        "mapping", "init", SAMPLES / "site-f-cardiac.xml", "--target", "referral", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert "3 records read from site-f-cardiac.xml" in result.output
    assert "passes mapping check" in result.output
    assert _cli("mapping", "check", out).exit_code == 0
    assert yaml.safe_load(out.read_text("utf-8"))["target"] == "referral"


def test_init_exits_1_naming_the_decisions_when_the_proposal_does_not_load(
    tmp_path: Path,
) -> None:
    """A sample without a clinic column: the proposal is written, init exits 1 and names
    clinic_ods, and mapping check on the file says the same."""
    out = tmp_path / "site-d.yaml"
    result = _cli(
        "mapping", "init", SAMPLES / "site-d-diabetes.csv", "--target", "referral", "--out", out
    )
    assert result.exit_code == 1, result.output
    assert "needs a decision before it loads: clinic_ods" in result.output
    checked = _cli("mapping", "check", out)
    assert checked.exit_code == 2
    assert "'clinic_ods'" in checked.output
    assert re.search(r"site-d\.yaml line \d+", checked.output)


def test_init_without_out_prints_the_proposal(tmp_path: Path) -> None:
    """Without --out the proposal is the standard output (the summary goes to stderr)."""
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["mapping", "init", str(SAMPLES / "site-e-respiratory.ndjson"), "--target", "referral"],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# site-e-respiratory: a JSON export")
    assert "mapping init:" not in result.stdout
    assert "mapping init:" in result.stderr
    path = tmp_path / "printed.yaml"
    path.write_text(result.stdout, encoding="utf-8")
    assert _cli("mapping", "check", path).exit_code == 0


def test_init_refuses_to_replace_a_file_unless_overwrite(tmp_path: Path) -> None:
    """An existing --out is a usage error (exit 2, left as it was) unless --overwrite."""
    out = tmp_path / "mine.yaml"
    out.write_text("# mine\n", encoding="utf-8")
    args = ["mapping", "init", SAMPLES / "site-f-cardiac.xml", "--target", "referral"]
    refused = _cli(*args, "--out", out)
    assert refused.exit_code == 2
    assert "--overwrite" in refused.output
    assert out.read_text("utf-8") == "# mine\n"
    assert _cli(*args, "--out", out, "--overwrite").exit_code == 0
    assert out.read_text("utf-8").startswith("# mine: an XML export")


def test_init_on_a_sample_it_cannot_read_or_a_target_read_whole_is_a_usage_error(
    tmp_path: Path,
) -> None:
    """An unreadable sample is exit 2 with the located read error; a target read whole
    (questionnaire-response) is exit 2 saying so; nothing is written."""
    sample = tmp_path / "broken.xml"
    sample.write_bytes(b"<Export><Visit>")
    out = tmp_path / "p.yaml"
    result = _cli("mapping", "init", sample, "--target", "referral", "--out", out)
    assert result.exit_code == 2
    assert "FI104" in result.output
    assert "broken.xml" in result.output
    result = _cli(
        "mapping", "init", SAMPLES / "site-e-respiratory.ndjson",
        "--target", "questionnaire-response", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "read whole" in result.output
    assert not out.exists()


def test_init_format_option_reads_the_sample_as_told(tmp_path: Path) -> None:
    """--format csv reads a sample whose first bytes look like something else as CSV."""
    sample = tmp_path / "odd.txt"
    sample.write_text("[ref],visit date,nhs no,refer,clinic\nA,2025-03-04,9000000009,Y,RZZ10\n")
    result = _cli("mapping", "init", sample, "--target", "referral", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["input"]["format"] == "csv"
