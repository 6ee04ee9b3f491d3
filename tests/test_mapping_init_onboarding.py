"""Onboarding a new site with `fhir-iapt mapping init` (issue 14, "Must show"): three sample
exports the proposer was not built from (tests/data/onboarding/: different names, orders and
formats; a cp1252 CSV with a preamble, NDJSON with nested keys, XML in a default namespace)
convert after the few text edits listed here; and the proposals for the bundled layouts map
their examples to the same records as the hand-written mappings.

What a proposal does is judged against the samples themselves, read here without the adapter
(the csv module, json, lxml): which records are referred with consent, their NHS numbers, ids,
birth dates and questionnaires."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import shlex
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from lxml import etree
from onboarding_helpers import assert_no_values

from fhir_iapt.cli import main
from fhir_iapt.errors import RecordError
from fhir_iapt.mapping import load_mapping, map_record, propose_mapping, read_source
from fhir_iapt.records import ReferralRecord
from fhir_iapt.sources import SourceRecord

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data" / "onboarding"
NS = {"h": "urn:example:site-f:heart-clinic"}

#: sample -> the text edits (old -> new) its proposal needs: the decisions `mapping init` says
#: it cannot make. Every site sets its own record-id system (the proposal holds a placeholder
#: that loads); the diabetes export has no clinic column, so its ODS code is a constant.
EDITS: dict[str, list[tuple[str, str]]] = {
    "site-d-diabetes.csv": [
        ("# constants: {clinic_ods: <value>}", "constants: {clinic_ods: RZZ40}"),
        (
            "source_system: https://example.org/Id/site-d",
            "source_system: https://northgate.example.nhs.uk/Id/diabetes-review",
        ),
    ],
    "site-e-respiratory.ndjson": [
        (
            "source_system: https://example.org/Id/site-e",
            "source_system: https://site-e.example.nhs.uk/Id/attendance",
        ),
    ],
    "site-f-cardiac.xml": [
        (
            "source_system: https://example.org/Id/site-f",
            "source_system: https://site-f.example.nhs.uk/Id/attendance",
        ),
    ],
}


@dataclasses.dataclass(frozen=True)
class Expected:
    """One record of a sample as the sample itself says it (read without the adapter)."""

    record_id: str
    nhs_number: str
    birth_date: str
    referred: bool
    instruments: frozenset[str]


def _dmy(text: str) -> str:
    return datetime.strptime(text, "%d/%m/%Y").date().isoformat()


def _site_d() -> list[Expected]:
    lines = (SAMPLES / "site-d-diabetes.csv").read_text("cp1252").splitlines()[2:]
    out = []
    for row in csv.DictReader(lines, delimiter=";"):
        done = {"PHQ-9"} if row["PHQ9 Q1"] else set()
        done |= {"GAD-7"} if row["GAD7 Q1"] else set()
        referred = (
            row["Refer to Talking Therapies"] == "Yes" and row["Consent to referral"] == "Yes"
        )
        out.append(
            Expected(
                row["Review ID"],
                row["NHS Number"].replace("-", ""),
                _dmy(row["DOB"]),
                referred,
                frozenset(done),
            )
        )
    return out


def _site_e() -> list[Expected]:
    out = []
    for line in (SAMPLES / "site-e-respiratory.ndjson").read_text("utf-8").splitlines():
        record = json.loads(line)
        outcome = record["outcome"]
        done = {"PHQ-9"} if record["mood"]["phq9"] else set()
        done |= {"GAD-2"} if record["mood"]["gad2"] else set()
        out.append(
            Expected(
                record["attendance"]["id"],
                record["patient"]["nhs"],
                record["patient"]["birthDate"],
                outcome["referToIapt"] == "Y" and outcome["consentToRefer"] == "Y",
                frozenset(done),
            )
        )
    return out


def _site_f() -> list[Expected]:
    root = etree.parse(str(SAMPLES / "site-f-cardiac.xml")).getroot()
    out = []
    for visit in root.iterfind("h:Attendances/h:Attendance", NS):
        referral = visit.find("h:Referral", NS)
        done = {name for name, tag in (("PHQ-2", "h:PHQ2"), ("GAD-2", "h:GAD2"))
                if visit.find(tag, NS) is not None}  # fmt: skip
        out.append(
            Expected(
                visit.findtext("h:AttendanceRef", namespaces=NS),
                visit.findtext("h:Patient/h:NHSNumber", namespaces=NS),
                visit.findtext("h:Patient/h:BirthDate", namespaces=NS),
                referral.get("decision") == "Yes" and referral.get("consentToRefer") == "Yes",
                frozenset(done),
            )
        )
    return out


EXPECTED = {
    "site-d-diabetes.csv": _site_d,
    "site-e-respiratory.ndjson": _site_e,
    "site-f-cardiac.xml": _site_f,
}


def _values(sample: str) -> list[str]:
    """Every cell / value / attribute / text of a sample, read without the adapter."""
    path = SAMPLES / sample
    if sample.endswith(".csv"):
        lines = path.read_text("cp1252").splitlines()[3:]
        return [cell for row in csv.reader(lines, delimiter=";") for cell in row if cell]
    if sample.endswith(".ndjson"):
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for child in value.values():
                    walk(child)
            elif isinstance(value, list):
                for child in value:
                    walk(child)
            elif value is not None and not isinstance(value, bool):
                found.append(str(value))

        for line in path.read_text("utf-8").splitlines():
            walk(json.loads(line))
        return found
    root = etree.parse(str(path)).getroot()
    return [
        value
        for element in root.iter()
        for value in [*element.attrib.values(), (element.text or "").strip()]
        if value
    ]


def _cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _init(sample: str, out: Path) -> Result:
    return _cli("mapping", "init", SAMPLES / sample, "--target", "referral", "--out", out)


@pytest.mark.parametrize("sample", sorted(EDITS))
def test_a_new_export_converts_after_the_listed_edits(
    sample: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mapping init proposes a mapping for the sample; after the edits listed in EDITS (each
    an exact text replacement in the proposal) mapping check passes and convert (validating
    every bundle) turns each referred, consented record of the sample into its bundle: its
    id, NHS number, birth date and questionnaires, none rejected."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mapping = tmp_path / f"{sample.split('-')[0]}-{sample.split('-')[1]}.yaml"
    edits = EDITS[sample]
    proposed = _init(sample, mapping)
    decides = any(old.startswith("# constants:") or "DECIDE" in old for old, _ in edits)
    assert proposed.exit_code == (1 if decides else 0), proposed.output
    text = mapping.read_text("utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"the proposal does not hold {old!r} once"
        text = text.replace(old, new)
    mapping.write_text(text, encoding="utf-8")
    checked = _cli("mapping", "check", mapping)
    assert checked.exit_code == 0, checked.output
    out = tmp_path / "out"
    converted = _cli(
        "convert", SAMPLES / sample, "--mapping", mapping, "--out", out,
        "--ledger", tmp_path / "ledger.sqlite", "--validate", "full",
    )  # fmt: skip
    assert converted.exit_code == 0, converted.output
    expected = EXPECTED[sample]()
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["records"] == len(expected)
    assert summary["rejected_total"] == 0
    assert summary["converted"] == sum(e.referred for e in expected)
    found = set()
    for line in (out / "bundles.ndjson").read_text("utf-8").splitlines():
        resources = [entry["resource"] for entry in json.loads(line)["entry"]]
        [patient] = [r for r in resources if r["resourceType"] == "Patient"]
        [request] = [r for r in resources if r["resourceType"] == "ServiceRequest"]
        names = {
            r["questionnaire"].rsplit("/", 1)[1].upper()
            for r in resources
            if r["resourceType"] == "QuestionnaireResponse"
        }
        found.add(
            Expected(
                request["identifier"][0]["value"],
                patient["identifier"][0]["value"],
                patient["birthDate"],
                True,
                frozenset(names),
            )
        )
    assert found == {e for e in expected if e.referred}


@pytest.mark.parametrize("sample", sorted(EDITS))
def test_no_value_of_a_sample_is_in_its_proposal_or_the_output(sample: str, tmp_path: Path) -> None:
    """No cell, value, attribute or text of the sample is in the proposed file, in what init
    prints, or in what the dry run prints."""
    mapping = tmp_path / "proposal.yaml"
    proposed = _init(sample, mapping)
    assert proposed.exit_code in (0, 1), proposed.output
    values = _values(sample)
    assert len(values) > 30
    assert_no_values(mapping.read_text("utf-8"), values)
    assert_no_values(proposed.output, values)
    text = mapping.read_text("utf-8")
    for old, new in EDITS[sample]:
        text = text.replace(old, new)
    mapping.write_text(text, encoding="utf-8")
    dry = _cli("convert", SAMPLES / sample, "--mapping", mapping, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert_no_values(dry.output, values)


def test_the_listed_decision_is_needed() -> None:
    """Without its clinic_ods edit the diabetes proposal does not load: the check names
    clinic_ods, and init lists it as the one decision."""
    proposal = propose_mapping(SAMPLES / "site-d-diabetes.csv", "referral", name="site-d")
    assert [target for target, _ in proposal.decisions] == ["clinic_ods"]
    assert proposal.check is not None
    assert all("'clinic_ods'" in issue.diagnostics for issue in proposal.check.issues)


#: Bundled layouts: what their hand-written mappings set that a proposal cannot know (the
#: clinic's own record-id system and the IAPT service it refers to), and for the respiratory
#: export its screenings, repeated elements naming their instrument, which the proposal lists
#: as not placed (a screenings block with each: is written by hand).
BUNDLED = {
    "diabetes-csv": ("diabetes.csv", ()),
    "cardiac-json": ("cardiac.json", ()),
    "respiratory-xml": ("respiratory.xml", ("screenings",)),
}


def _records(mapping: Any, path: Path) -> list[Any]:
    """Every record of ``path`` mapped (the error code where one is rejected)."""
    out: list[Any] = []
    with path.open("rb") as stream:
        for item in read_source(stream, name=path.name, mapping=mapping):
            assert isinstance(item, SourceRecord), item
            try:
                out.append(map_record(item, mapping))
            except RecordError as exc:
                out.append(exc.error_code)
    return out


def _comparable(record: ReferralRecord | str, left_out: tuple[str, ...]) -> Any:
    if isinstance(record, str):
        return record
    referral = dataclasses.replace(record.referral, performer_ods=None)
    fields: dict[str, Any] = {"source_system": "", "referral": referral}
    fields.update(dict.fromkeys(left_out, ()))
    return dataclasses.replace(record, **fields)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_proposals_for_the_bundled_layouts_map_as_the_hand_written_mappings(
    name: str, tmp_path: Path
) -> None:
    """For each bundled example, the proposal (not edited) maps every record to the record
    the hand-written mapping makes, but for what the proposal cannot know (BUNDLED)."""
    sample, left_out = BUNDLED[name]
    proposal = propose_mapping(ROOT / "examples" / sample, "referral")
    assert proposal.check is None, proposal.text
    path = tmp_path / f"{name}-proposed.yaml"
    path.write_text(proposal.text, encoding="utf-8")
    proposed = _records(load_mapping(path), ROOT / "examples" / sample)
    written = _records(load_mapping(name), ROOT / "examples" / sample)
    assert len(written) > 3
    assert [_comparable(r, left_out) for r in proposed] == [
        _comparable(r, left_out) for r in written
    ]
    if left_out:
        assert any(source == "Screening" for source, _ in proposal.unplaced)


def test_the_samples_are_synthetic() -> None:
    """Every NHS number in the samples is a synthetic test number: modulus 11 valid, and one
    of the three the brief names or in the 999 test range."""
    from fhir_iapt.nhs_number import is_valid_nhs_number

    numbers = {e.nhs_number for read in EXPECTED.values() for e in read()}
    assert len(numbers) >= 6
    named = {"9000000009", "9912003888", "9434765919"}
    assert all(is_valid_nhs_number(n) and (n in named or n.startswith("999")) for n in numbers)


def _walkthrough() -> str:
    readme = (ROOT / "mappings" / "README.md").read_text("utf-8")
    match = re.search(
        r"^## A new export layout: start from `fhir-iapt mapping init`\n(.*?)(?=^## )",
        readme,
        flags=re.DOTALL | re.M,
    )
    assert match, "mappings/README.md has no mapping init walkthrough"
    return match.group(1)


def test_the_readme_walkthrough_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mappings/README.md's walkthrough: its init command runs as written (exit 1, the one
    decision); the proposal holds every line it quotes; after its edit, mapping check prints
    the line it quotes and the dry run every line of the output it quotes."""
    section = _walkthrough()
    [command] = re.findall(r"```sh\n(.*?)\n```", section, flags=re.DOTALL)
    args = shlex.split(command)
    assert args[:3] == ["fhir-iapt", "mapping", "init"]
    (tmp_path / "tests" / "data").mkdir(parents=True)
    shutil.copytree(SAMPLES, tmp_path / "tests" / "data" / "onboarding")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = _cli(*args[1:])
    assert result.exit_code == 1, result.output
    out = Path(args[args.index("--out") + 1])
    text = out.read_text("utf-8")
    quoted = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    assert len(quoted) == 2
    for line in "".join(quoted).splitlines():
        assert line in text.splitlines(), f"the proposal has no line {line!r}"
    [edit] = re.findall(r"here\s+`(constants: \{clinic_ods: \w+\})`", section)
    assert (EDITS["site-d-diabetes.csv"][0][1]) == edit
    out.write_text(text.replace("# constants: {clinic_ods: <value>}", edit), encoding="utf-8")
    [said] = re.findall(r"`(ok: [^`]+)`", section)
    checked = _cli("mapping", "check", out)
    assert checked.exit_code == 0
    assert checked.output.strip() == " ".join(said.split())
    [printed] = re.findall(r"   ```\n(.*?)   ```", section, flags=re.DOTALL)
    sample = args[3]
    dry = _cli("convert", sample, "--mapping", out, "--dry-run")
    assert dry.exit_code == 0, dry.output
    for line in printed.splitlines():
        assert line.strip() in [row.strip() for row in dry.output.splitlines()], line


def test_an_episode_export_proposal_maps_as_the_bundled_iapt_outcomes(tmp_path: Path) -> None:
    """--target episode: the proposal for the bundled episode export maps every row to the
    EpisodeRecord the hand-written iapt-outcomes mapping makes, but for the service's own
    pathway-id system (a placeholder in the proposal)."""
    sample = ROOT / "examples" / "iapt-outcomes.csv"
    proposal = propose_mapping(sample, "episode")
    assert proposal.check is None, proposal.text
    path = tmp_path / "episodes.yaml"
    path.write_text(proposal.text, encoding="utf-8")
    proposed = _records(load_mapping(path), sample)
    written = _records(load_mapping("iapt-outcomes"), sample)
    assert len(written) > 3
    assert [dataclasses.replace(r, source_system="") for r in proposed] == [
        dataclasses.replace(r, source_system="") for r in written
    ]
