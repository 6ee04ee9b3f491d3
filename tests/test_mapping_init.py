"""`fhir-iapt mapping init` proposes a mapping from a sample export (issue 14, "Onboarding a
new site"): names matched to target fields by the synonyms table, options sniffed from the
values, a comment on every guess, what it could not place listed, no value of the sample in
the file, and a proposal that passes the load-time check or names the fields to decide."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from onboarding_helpers import assert_no_values

from fhir_iapt import _data
from fhir_iapt.errors import MappingError, ReadError
from fhir_iapt.mapping import Mapping, load_mapping, propose_mapping
from fhir_iapt.mapping._propose import Proposal

#: valid NHS numbers (modulus 11)
NHS = ("9000000009", "9912003888", "9434765919")


def _csv(path: Path, header: list[str], rows: list[list[str]], *, delimiter: str = ",") -> Path:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def _loaded(tmp_path: Path, proposal: Proposal, name: str = "proposal.yaml") -> Mapping[Any]:
    assert proposal.check is None, proposal.text
    path = tmp_path / name
    path.write_text(proposal.text, encoding="utf-8")
    return load_mapping(path)


def _sources(mapping: Mapping[Any]) -> dict[str, str]:
    return {spec.target: spec.source for spec in mapping.fields}


def _spec(proposal: Proposal, target: str) -> dict[str, Any]:
    """The proposed field spec of ``target`` (as YAML reads it)."""
    return dict(yaml.safe_load(proposal.text)["fields"][target])


def _comment_above(text: str, needle: str) -> str:
    """The comment lines right above the first line holding ``needle``."""
    lines = text.splitlines()
    index = next(
        i for i, line in enumerate(lines) if needle in line and not line.lstrip().startswith("#")
    )
    above = []
    for line in reversed(lines[:index]):
        if not line.lstrip().startswith("#"):
            break
        above.append(line.strip().lstrip("#").strip())
    return " ".join(reversed(above))


def _cells(
    path: Path, *, delimiter: str = ",", encoding: str = "utf-8", skip: int = 0
) -> list[str]:
    lines = path.read_text(encoding).splitlines()[skip:]
    rows = list(csv.reader(lines, delimiter=delimiter))
    return [cell for row in rows[1:] for cell in row if cell.strip()]


BASE_HEADER = ["Visit ID", "Clinic", "Visit Date", "NHS No", "Refer"]


def _base(i: int) -> list[str]:
    return [f"V-{i}", "RZZ10", f"0{i}/03/2025", NHS[i % 3], "Y" if i % 2 else "N"]


def test_the_names_of_the_issue_are_matched_to_their_target_fields(tmp_path: Path) -> None:
    """NHS No / NHS Number, DOB / Date of birth, Surname, Forename, HbA1c (mmol/mol), FEV1 and
    PHQ9 Q1... are matched to the target fields they name."""
    header = [
        "Visit ID", "Clinic", "Visit Date", "NHS No", "Refer", "Surname", "Forename",
        "Date of birth", "HbA1c (mmol/mol)", "FEV1", *(f"PHQ9 Q{i}" for i in range(1, 10)),
    ]  # fmt: skip
    rows = [[*_base(i), "Doe", "Jane", "14/03/1958", "48", "1.6", *"120311020"] for i in (1, 2)]
    proposal = propose_mapping(_csv(tmp_path / "export.csv", header, rows), "referral")
    loaded = _loaded(tmp_path, proposal)
    assert _sources(loaded) == {
        "record_id": "Visit ID",
        "clinic_ods": "Clinic",
        "event_date": "Visit Date",
        "patient.nhs_number": "NHS No",
        "referral.decision": "Refer",
        "patient.family": "Surname",
        "patient.given": "Forename",
        "patient.birth_date": "Date of birth",
        "context.hba1c": "HbA1c (mmol/mol)",
        "context.fev1": "FEV1",
    }
    assert loaded.screenings is not None
    [phq9] = loaded.screenings.fixed
    assert phq9.shape.name == "PHQ-9"
    assert [p.text for p in phq9.answers.per_item] == [f"PHQ9 Q{i}" for i in range(1, 10)]
    other = ["NHS Number", "DOB"]
    rows = [[f"V-{i}", "RZZ10", "2025-03-04", NHS[i], "Y", "01/02/1960"] for i in range(2)]
    second = propose_mapping(
        _csv(
            tmp_path / "other.csv",
            ["Visit ID", "Clinic", "Visit Date", *other[:1], "Refer", "DOB"],
            rows,
        ),
        "referral",
    )
    sources = _sources(_loaded(tmp_path, second, "other.yaml"))
    assert (sources["patient.nhs_number"], sources["patient.birth_date"]) == ("NHS Number", "DOB")


def test_matching_comes_from_the_names_table_not_the_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without 'nhs no' in tables/field-names.yaml the column is no longer matched: the
    synonyms are data."""
    rows = [_base(i) for i in (1, 2)]
    path = _csv(tmp_path / "export.csv", BASE_HEADER, rows)
    assert _sources(_loaded(tmp_path, propose_mapping(path, "referral")))["patient.nhs_number"] == (
        "NHS No"
    )
    table = yaml.safe_load(
        (_data.mappings_dir() / "tables" / "field-names.yaml").read_text("utf-8")
    )
    names = table["referral"]["fields"]["patient.nhs_number"]["names"]
    table["referral"]["fields"]["patient.nhs_number"]["names"] = [n for n in names if n != "nhs no"]
    real = _data.load_table
    monkeypatch.setattr(
        "fhir_iapt.mapping._propose.load_table",
        lambda name: table if name == "field-names" else real(name),
    )
    proposal = propose_mapping(path, "referral")
    assert "DECIDE patient.nhs_number" not in proposal.text  # placed by its values instead
    assert "NHS No by its values, not its name" in proposal.text


def test_every_guess_has_a_comment(tmp_path: Path) -> None:
    """Every live line of fields:, groups:, screenings: and input: has a comment right above
    it saying why."""
    header = [*BASE_HEADER, "Sex", "Diabetes type", "GAD2 Q1", "GAD2 Q2"]
    rows = [[*_base(i), "F", "T2", "1", "0"] for i in (1, 2)]
    text = propose_mapping(_csv(tmp_path / "e.csv", header, rows, delimiter=";"), "referral").text
    live = [
        line
        for line in text.splitlines()
        if re.match(r"\s+(\w[\w.]*: \{|- \{|delimiter:|[a-z]+: \{from)", line)
    ]
    assert len(live) >= 9
    for line in live:
        assert _comment_above(text, line.strip()), f"no comment above {line!r}"


def test_date_formats_are_sniffed_with_a_time_part(tmp_path: Path) -> None:
    """Dates with a time, ISO dates with T, and a column mixing dates and dates with a time get
    the formats that read every value; the time is said to be checked, not kept."""
    header = ["Visit ID", "Clinic", "Seen", "NHS No", "Refer", "DOB", "Completed"]
    rows = [
        ["V-1", "RZZ10", "04/03/2025 10:30", NHS[0], "Y", "1958-03-14T00:00:00", "2025-03-01"],
        [
            "V-2",
            "RZZ10",
            "05/03/2025 16:05",
            NHS[1],
            "N",
            "1961-11-30T00:00:00",
            "2025-03-02 09:15",
        ],
    ]
    proposal = propose_mapping(_csv(tmp_path / "e.csv", header, rows), "referral")
    assert _spec(proposal, "event_date")["formats"] == ["%d/%m/%Y %H:%M"]
    assert _spec(proposal, "patient.birth_date")["formats"] == ["%Y-%m-%dT%H:%M:%S"]
    assert "the time is checked and not kept" in _comment_above(proposal.text, "event_date:")
    loaded = _loaded(tmp_path, proposal)
    assert loaded.screenings is None  # no instrument: the date column is left
    assert ("Completed", "no target field is named like it") in proposal.unplaced


def test_day_first_is_assumed_and_said_when_both_orders_read(tmp_path: Path) -> None:
    """Dates that read day first and month first are proposed day first (UK), with a comment;
    a second number above 12 makes them month first."""
    rows = [[f"V-{i}", "RZZ10", f"0{i}/0{i + 1}/2025", NHS[i], "Y"] for i in (1, 2)]
    proposal = propose_mapping(_csv(tmp_path / "uk.csv", BASE_HEADER, rows), "referral")
    assert _spec(proposal, "event_date")["formats"] == ["%d/%m/%Y"]
    assert "day first (UK) assumed" in _comment_above(proposal.text, "event_date:")
    rows = [[f"V-{i}", "RZZ10", f"03/2{i}/2025", NHS[i], "Y"] for i in (1, 2)]
    proposal = propose_mapping(_csv(tmp_path / "us.csv", BASE_HEADER, rows), "referral")
    assert _spec(proposal, "event_date")["formats"] == ["%m/%d/%Y"]


def test_two_digit_years_are_said_and_the_records_rejected(tmp_path: Path) -> None:
    """A column of two-digit years gets no format that guesses the century: the comment says
    they are refused, and the sample's rejects are counted in the header."""
    header = [*BASE_HEADER, "DOB"]
    rows = [[*_base(1), "14/03/1958"], [*_base(2), "30/11/61"]]
    proposal = propose_mapping(_csv(tmp_path / "e.csv", header, rows), "referral")
    assert "two-digit year" in _comment_above(proposal.text, "patient.birth_date:")
    assert proposal.tried is not None
    assert (proposal.tried.mapped, proposal.tried.rejected_total) == (1, 1)
    assert "Tried on the sample: 1 of 2 records map, 1 rejected (DOB: 1)" in proposal.text


def test_yes_no_values_pick_the_table_that_knows_them(tmp_path: Path) -> None:
    """Y/N reads through the default yes-no table; refer/none through referral-decision; terms
    no table knows leave the field commented out and, being required, to decide."""
    header = ["Visit ID", "Clinic", "Visit Date", "NHS No", "Decision", "Consent"]
    rows = [["V-1", "RZZ10", "2025-03-04", NHS[0], "refer", "Yes"],
            ["V-2", "RZZ10", "2025-03-05", NHS[1], "none", "No"]]  # fmt: skip
    proposal = propose_mapping(_csv(tmp_path / "e.csv", header, rows), "referral")
    assert _spec(proposal, "referral.decision")["table"] == "referral-decision"
    assert "table" not in _spec(proposal, "referral.consent_to_refer")  # yes-no, the default
    rows = [[*r[:4], "maybe", r[5]] for r in rows]
    undecided = propose_mapping(_csv(tmp_path / "u.csv", header, rows), "referral")
    assert [t for t, _ in undecided.decisions] == ["referral.decision"]
    assert "# referral.decision: {from: Decision" in undecided.text
    assert undecided.check is not None
    assert {i.location.field for i in undecided.check.issues if i.location} == {"fields"}
    assert "referral.decision" in undecided.check.issues[0].diagnostics


def test_decimal_comma_and_units_are_sniffed(tmp_path: Path) -> None:
    """'53,5' gives decimal_separator ','; '48 mmol/mol' gives the unit; an HbA1c in % is not
    placed (the target records mmol/mol, and nothing is converted)."""
    header = [*BASE_HEADER, "HbA1c", "LVEF"]
    rows = [[*_base(1), "53,5 mmol/mol", "35%"], [*_base(2), "48 mmol/mol", "40 %"]]
    proposal = propose_mapping(_csv(tmp_path / "e.csv", header, rows), "referral")
    assert _spec(proposal, "context.hba1c") == {
        "from": "HbA1c",
        "type": "decimal",
        "decimal_separator": ",",
        "unit": "mmol/mol",
    }
    assert _spec(proposal, "context.lvef")["unit"] == "%"
    loaded = _loaded(tmp_path, proposal)
    assert loaded.fields
    rows = [[*_base(1), "7.1", "35"], [*_base(2), "6.5", "40"]]
    percent = propose_mapping(
        _csv(tmp_path / "p.csv", [*BASE_HEADER, "HbA1c (%)", "LVEF (%)"], rows), "referral"
    )
    assert "context.hba1c" not in yaml.safe_load(percent.text)["fields"]
    [(_, why)] = [u for u in percent.unplaced if u[0] == "HbA1c (%)"]
    assert "recorded in mmol/mol" in why
    assert _spec(percent, "context.lvef")["from"] == "LVEF (%)"


def test_nhs_numbers_with_dashes_and_a_combined_name(tmp_path: Path) -> None:
    """Dashed NHS numbers get separators '-'; a 'SURNAME, Forename' column is patient.family
    of type name with the given names to patient.given."""
    header = [*BASE_HEADER[:3], "NHS Number", "Refer", "Patient Name"]
    rows = [["V-1", "RZZ10", "2025-03-04", "900-000-0009", "Y", "DOE, Jane"],
            ["V-2", "RZZ10", "2025-03-05", "991-200-3888", "N", "O'NEILL, Pat"]]  # fmt: skip
    proposal = propose_mapping(_csv(tmp_path / "e.csv", header, rows), "referral")
    assert _spec(proposal, "patient.nhs_number")["separators"] == "-"
    assert _spec(proposal, "patient.family") == {
        "from": "Patient Name",
        "type": "name",
        "given_to": "patient.given",
    }
    assert proposal.tried is not None
    assert proposal.tried.mapped == 2


def test_answer_columns_per_item_in_words_or_all_in_one(tmp_path: Path) -> None:
    """Per-item answers written as words get the frequency-answers table; one column of all
    answers gets split; a total score is not placed (the target takes the items)."""
    words = ["Not at all", "Several days", "More than half the days", "Nearly every day"]
    header = [*BASE_HEADER, *(f"GAD-7 item {i}" for i in range(1, 8)), "PHQ9", "PHQ9 total"]
    rows = [
        [*_base(1), *(words[i % 4] for i in range(7)), "1,2,0,3,1,1,0,2,0", "10"],
        [*_base(2), *(words[(i + 1) % 4] for i in range(7)), "0,0,0,1,0,0,0,0,0", "1"],
    ]
    proposal = propose_mapping(_csv(tmp_path / "e.csv", header, rows), "referral")
    items = {s["instrument"]: s for s in yaml.safe_load(proposal.text)["screenings"]["items"]}
    assert items["GAD-7"]["answers"] == [f"GAD-7 item {i}" for i in range(1, 8)]
    assert items["GAD-7"]["answer_table"] == "frequency-answers"
    assert items["PHQ-9"] == {"instrument": "PHQ-9", "answers": "PHQ9", "split": ","}
    [(_, why)] = [u for u in proposal.unplaced if u[0] == "PHQ9 total"]
    assert "total score" in why
    assert proposal.tried is not None
    assert proposal.tried.mapped == 2


def test_a_preamble_a_delimiter_and_an_encoding_are_sniffed(tmp_path: Path) -> None:
    """A cp1252 export with ';' and two lines before the header is read as the reader will:
    input: delimiter, encoding and skip_lines, each with a comment."""
    text = "Clinic export\r\nRun by the system\r\n" + ";".join(BASE_HEADER) + ";Surname\r\n"
    text += ";".join([*_base(1), "Zoë"]) + "\r\n" + ";".join([*_base(2), "Ó Briain"]) + "\r\n"
    path = tmp_path / "e.csv"
    path.write_bytes(text.encode("cp1252"))
    proposal = propose_mapping(path, "referral")
    assert yaml.safe_load(proposal.text)["input"] == {
        "format": "csv",
        "delimiter": ";",
        "encoding": "cp1252",
        "skip_lines": 2,
    }
    for key in ("delimiter:", "encoding:", "skip_lines:"):
        assert _comment_above(proposal.text, key).startswith("guess:")
    assert proposal.tried is not None
    assert proposal.tried.mapped == 2


def test_xml_with_a_default_namespace_gets_prefixed_paths(tmp_path: Path) -> None:
    """An XML export whose root declares a default namespace gets input: namespaces: and the
    record path and every XPath with the prefix; its records map."""
    path = tmp_path / "e.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<Export xmlns="urn:example:e" clinic="RZZ10">\n'
        + "".join(
            f'  <Visit id="V-{i}" date="2025-03-0{i}"><Patient nhsNumber="{NHS[i]}"/>'
            f'<Referral decision="yes"/></Visit>\n'
            for i in (1, 2)
        )
        + "</Export>\n",
        encoding="utf-8",
    )
    proposal = propose_mapping(path, "referral")
    assert yaml.safe_load(proposal.text)["input"] == {
        "format": "xml",
        "record": "/e:Export/e:Visit",
        "namespaces": {"e": "urn:example:e"},
    }
    sources = _sources(_loaded(tmp_path, proposal))
    assert sources == {
        "record_id": "@id",
        "clinic_ods": "/e:Export/@clinic",
        "event_date": "@date",
        "patient.nhs_number": "e:Patient/@nhsNumber",
        "referral.decision": "e:Referral/@decision",
    }
    assert proposal.tried is not None
    assert proposal.tried.mapped == 2


def test_json_keys_become_dotted_paths_and_arrays_of_objects_groups(tmp_path: Path) -> None:
    """Nested JSON keys are dotted paths; an array of condition objects is the conditions
    group with each:; an array of scores is an instrument's answers."""
    records = [
        {
            "visit": {"id": f"V-{i}", "date": "2025-03-04"},
            "clinicOds": "RZZ10",
            "patient": {"nhsNumber": NHS[i]},
            "conditions": [{"snomed": "13645005"}],
            "screening": {"phq2": [1, i]},
            "referral": {"decision": True},
        }
        for i in (1, 2)
    ]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    proposal = propose_mapping(path, "referral")
    loaded = _loaded(tmp_path, proposal)
    assert _sources(loaded)["patient.nhs_number"] == "patient.nhsNumber"
    assert _sources(loaded)["record_id"] == "visit.id"
    [group] = loaded.groups
    assert group.each is not None
    assert group.each.text == "conditions"
    assert loaded.screenings is not None
    [phq2] = loaded.screenings.fixed
    assert phq2.answers.array is not None
    assert phq2.answers.array.text == "screening.phq2"


def test_required_fields_nothing_matched_are_named_and_the_check_says_them(tmp_path: Path) -> None:
    """With no clinic and no record id column, the proposal says both need a decision (at the
    top and as commented lines) and mapping check names exactly those two fields."""
    rows = [["2025-03-04", NHS[0], "Y"], ["2025-03-05", NHS[1], "N"]]
    proposal = propose_mapping(
        _csv(tmp_path / "e.csv", ["Visit Date", "NHS No", "Refer"], rows), "referral"
    )
    assert [t for t, _ in proposal.decisions] == ["clinic_ods", "record_id"]
    assert "# Needs a decision before this mapping loads:" in proposal.text
    assert "# constants: {clinic_ods: <value>}" in proposal.text
    assert '# record_id: {from: "<column>", type: string, required: true}' in proposal.text
    path = tmp_path / "p.yaml"
    path.write_text(proposal.text, encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    named = {m for i in caught.value.issues for m in re.findall(r"'([\w.]+)'", i.diagnostics)}
    assert named == {"clinic_ods", "record_id"}


def test_a_header_without_rows_still_gets_its_names_matched(tmp_path: Path) -> None:
    """A CSV with a header and no rows: the names are matched, the options are the defaults
    (said so), and the proposal loads."""
    header = [*BASE_HEADER, "Sex", "DOB"]
    proposal = propose_mapping(_csv(tmp_path / "e.csv", header, []), "referral")
    sources = _sources(_loaded(tmp_path, proposal))
    assert sources["patient.nhs_number"] == "NHS No"
    assert sources["patient.sex"] == "Sex"
    assert "blank in every record of the sample" in _comment_above(proposal.text, "patient.sex:")


def test_a_long_sample_is_read_and_tried_only_as_far_as_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the record limit the sample is not read: the proposal says it read the first
    records only, and its trial on the sample maps no more than those."""
    monkeypatch.setattr("fhir_iapt.mapping._sample.MAX_RECORDS", 5)
    monkeypatch.setattr("fhir_iapt.mapping._propose.MAX_RECORDS", 5)
    rows = [[f"V-{i}", "RZZ10", "2025-03-04", NHS[i % 3], "Y"] for i in range(12)]
    proposal = propose_mapping(_csv(tmp_path / "long.csv", BASE_HEADER, rows), "referral")
    said = " ".join(ln.lstrip("#").strip() for ln in proposal.text.splitlines() if ln[:1] == "#")
    assert "(5 records read, the first only)" in said
    assert proposal.tried is not None
    assert proposal.tried.records == 5


def test_no_value_of_the_sample_is_written(tmp_path: Path) -> None:
    """Names, dates, NHS numbers, free text and codes of the sample appear nowhere in the
    proposal (comments give counts, formats and table names only)."""
    header = [*BASE_HEADER, "Surname", "Forename", "DOB", "HbA1c", "Comments", "Reason"]
    rows = [
        [*_base(1), "Hartley", "Amelia", "14/03/1958", "53,5 mmol/mol", "lives alone", "Low mood"],
        [*_base(2), "Okafor", "Daniel", "02/11/1971", "<20", "walks daily", "Worry; sleep"],
    ]
    path = _csv(tmp_path / "e.csv", header, rows)
    proposal = propose_mapping(path, "referral")
    assert_no_values(proposal.text, _cells(path))


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "FI102"),
        ("visit,nhs\r\n1,2\r\n".encode("utf-16"), "FI103"),
        (b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "b">]>\n<x><y>&a;</y></x>', "FI104"),
        (b"<Export><Visit>", "FI104"),
    ],
)
def test_a_sample_that_cannot_be_read_is_a_read_error(
    tmp_path: Path, content: bytes, code: str
) -> None:
    """An empty sample, a UTF-16 one, XML with a DOCTYPE or cut short is a ReadError naming
    the file, with its code; nothing is proposed."""
    path = tmp_path / "sample.txt"
    path.write_bytes(content)
    with pytest.raises(ReadError) as caught:
        propose_mapping(path, "referral")
    assert caught.value.error_code == code
    assert caught.value.location is not None
    assert caught.value.location.file == "sample.txt"


def test_a_target_read_whole_is_refused() -> None:
    """questionnaire-response maps no fields (its input is FHIR read whole): no proposal."""
    with pytest.raises(ValueError, match="read whole"):
        propose_mapping(Path("examples/phq9-lhcforms-response.json"), "questionnaire-response")
