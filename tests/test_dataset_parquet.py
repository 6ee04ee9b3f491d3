"""The data set's tables as Parquet: the same pathways as from the CSV export (typed columns as
pandas and SQL exports write them: dates, times, timestamps, float scores with NaN for blanks),
in any mix with CSV, and every file or row problem located like a CSV one."""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from dataset_helpers import (
    GAD7,
    NHS_NUMBERS,
    PHQ9,
    SPIN,
    WSAS,
    activity,
    codes,
    complaint,
    contact,
    ltc,
    read,
    referral,
    s606,
    s607,
    write_submission,
)

from fhir_iapt.cli import main
from fhir_iapt.dataset import DerivedPathway
from fhir_iapt.dataset._tables import TABLE_NAMES
from fhir_iapt.ledger import Ledger, LedgerEntry

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2})?")
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _column(values: list[str]) -> pa.Array:
    """A typed Arrow column for one CSV column, as an export tool would type it: dates,
    times, timestamps and numbers by their look (numbers as float64 with NaN for blank, as
    pandas writes a column with a missing value); anything else text, blank as null."""
    present = [x for x in values if x != ""]
    if present and all(_STAMP.fullmatch(x) for x in present):
        return pa.array([dt.datetime.fromisoformat(x) if x else None for x in values])
    if present and all(_DATE.fullmatch(x) for x in present):
        return pa.array([dt.date.fromisoformat(x) if x else None for x in values])
    if present and all(_TIME.fullmatch(x) for x in present):
        return pa.array([dt.time.fromisoformat(x) if x else None for x in values])
    if present and all(_NUMBER.fullmatch(x) and not x.startswith("0") for x in present):
        return pa.array([float(x) if x else math.nan for x in values], type=pa.float64())
    return pa.array([x or None for x in values], type=pa.string())


def to_parquet(folder: Path, tables: tuple[str, ...] = TABLE_NAMES) -> None:
    """Replace each of ``tables``' CSV in ``folder`` by a typed Parquet file."""
    for table in tables:
        path = folder / f"{table}.csv"
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        header, body = rows[0], rows[1:]
        columns = {name: _column([r[i] for r in body]) for i, name in enumerate(header)}
        pq.write_table(pa.table(columns), folder / f"{table}.parquet", row_group_size=2)
        path.unlink()


def _submission(folder: Path) -> Path:
    """Three referrals: finished with PHQ-9/GAD-7 pairs (one by IDS607), a SPIN pathway with
    WSAS, and an open one; an LTC, presenting complaints, times on some rows."""
    wsas_first = [s606(tool, "4", "2024-01-20", srid="R2") for tool in WSAS]
    wsas_last = [s606(tool, "2", "2024-03-30", srid="R2") for tool in WSAS]
    return write_submission(
        folder,
        referrals=[
            referral("R1", lpid="P1", received="2024-01-10", disch="2024-04-20", end="46"),
            referral("R2", lpid="P2", received="2024-01-12", disch="2024-04-25", end="46"),
            referral("R3", lpid="P3", received="2024-02-01"),
        ],
        contacts=[
            contact("C1", "2024-01-20", srid="R1", time="10:30:00", ltc="Y"),
            contact("C2", "2024-02-20", srid="R1"),
            contact("C3", "2024-03-20", srid="R1", attend="05"),
            contact("C4", "2024-01-20", srid="R2"),
            contact("C5", "2024-03-30", srid="R2", app="03"),
            contact("C6", "2024-02-10", srid="R3"),
        ],
        activities=[activity("A1", "C3")],
        ltcs=[ltc("44054006", srid="R1")],
        complaints=[
            complaint("F41.1", srid="R1", date="2024-01-20"),
            complaint("F40.1", srid="R2"),
        ],
        refer_scores=[
            s606(PHQ9, "16", "2024-01-20", srid="R1", time="10:30:00"),
            s606(GAD7, "14", "2024-01-20", srid="R1"),
            s606(GAD7, "NA", "2024-02-20", srid="R1"),
            s606(GAD7, "5", "2024-03-20", srid="R1"),
            s606(PHQ9, "12", "2024-01-20", srid="R2"),
            s606(PHQ9, "6", "2024-03-30", srid="R2"),
            s606(SPIN, "40", "2024-01-20", srid="R2"),
            s606(SPIN, "15", "2024-03-30", srid="R2"),
            *wsas_first,
            *wsas_last,
            s606(PHQ9, "11", "2024-02-10", srid="R3"),
        ],
        act_scores=[s607("A1", PHQ9, "7")],
    )


def _unlocated(pathways: dict[str, DerivedPathway]) -> dict[str, DerivedPathway]:
    """The pathways with their source location dropped (the file's suffix differs)."""
    return {
        k: replace(p, location=replace(p.location, file=None, line=None))
        for k, p in pathways.items()
    }


def test_parquet_tables_give_the_same_pathways_as_the_csv_export(tmp_path: Path) -> None:
    """Every table as typed Parquet (dates, times, float scores) derives the pathways the
    CSV export does, field for field."""
    expected, none = read(_submission(tmp_path / "csv"))
    assert none == []
    assert expected["RXXR1"].finished_treatment
    assert expected["RXXR2"].adsm == "SPIN"
    folder = _submission(tmp_path / "parquet")
    to_parquet(folder)
    assert not list(folder.glob("*.csv"))
    pathways, rejected = read(folder)
    assert rejected == []
    assert _unlocated(pathways) == _unlocated(expected)
    assert pathways["RXXR1"].location.file == "IDS101Referral.parquet"
    assert pathways["RXXR1"].location.row == 1


def test_csv_and_parquet_tables_mix_in_one_submission(tmp_path: Path) -> None:
    """A submission may hold some tables as CSV and others as Parquet."""
    expected, _ = read(_submission(tmp_path / "csv"))
    folder = _submission(tmp_path / "mixed")
    to_parquet(folder, ("IDS000Header", "IDS201CareContact", "IDS606CodedScoreAssessmentRefer"))
    pathways, rejected = read(folder)
    assert rejected == []
    assert _unlocated(pathways) == _unlocated(expected)


def test_a_table_in_both_forms_is_one_file_error(tmp_path: Path) -> None:
    """IDS201CareContact.csv beside IDS201CareContact.parquet is refused (FI150) naming both:
    nothing says which is meant."""
    folder = _submission(tmp_path / "ds")
    to_parquet(folder, ("IDS201CareContact",))
    write_submission(tmp_path / "again", referrals=[referral()])
    (tmp_path / "again" / "IDS201CareContact.csv").replace(folder / "IDS201CareContact.csv")
    pathways, rejected = read(folder)
    assert pathways == {}
    assert codes(rejected) == ["FI150"]
    message = rejected[0].error.message
    assert "IDS201CareContact.csv" in message
    assert "IDS201CareContact.parquet" in message


def test_a_parquet_table_missing_a_column_is_one_file_error(tmp_path: Path) -> None:
    """A Parquet file whose schema lacks a required column is one FI151 naming table and
    column, before any row is read."""
    folder = write_submission(
        tmp_path, referrals=[referral()], drop={"IDS201CareContact": ["AttendOrDNACode"]}
    )
    to_parquet(folder, ("IDS201CareContact",))
    pathways, rejected = read(folder)
    assert pathways == {}
    assert codes(rejected) == ["FI151"]
    assert rejected[0].outcome["issue"][0]["location"] == [
        "IDS201CareContact.parquet field AttendOrDNACode"
    ]


def test_a_file_that_is_not_parquet_is_one_file_error(tmp_path: Path) -> None:
    """Bytes that are not Parquet under a .parquet name are one FI150 for that table."""
    folder = write_submission(tmp_path, referrals=[referral()])
    (folder / "IDS202CareActivity.csv").unlink()
    (folder / "IDS202CareActivity.parquet").write_bytes(b"CareActId,CareContactId\nA1,C1\n")
    pathways, rejected = read(folder)
    assert pathways == {}
    assert codes(rejected) == ["FI150"]
    assert "not a readable Parquet file" in rejected[0].error.message
    assert rejected[0].outcome["issue"][0]["location"] == ["IDS202CareActivity.parquet"]


def test_a_bad_parquet_cell_rejects_its_row_with_table_row_and_field(tmp_path: Path) -> None:
    """A PHQ-9 score of 40 in a Parquet table is FI154 naming the file, the row and the field,
    not the value; the table's other rows load."""
    folder = _submission(tmp_path)
    path = folder / "IDS606CodedScoreAssessmentRefer.csv"
    text = path.read_text(encoding="utf-8").replace(f"R3,{PHQ9},11,", f"R3,{PHQ9},40,")
    path.write_text(text, encoding="utf-8")
    with path.open(newline="", encoding="utf-8") as fh:
        keys = [(r["ServiceRequestId"], r["PersScore"]) for r in csv.DictReader(fh)]
    to_parquet(folder)
    pathways, rejected = read(folder)
    assert codes(rejected) == ["FI154"]
    issue = rejected[0].outcome["issue"][0]
    row = 1 + keys.index(("R3", "40"))
    assert issue["location"] == [
        f"IDS606CodedScoreAssessmentRefer.parquet row {row} field PersScore"
    ]
    assert "40" not in issue["diagnostics"]
    assert set(pathways) == {"RXXR1", "RXXR2", "RXXR3"}
    assert pathways["RXXR3"].phq9.first is None


def test_a_list_cell_rejects_its_row(tmp_path: Path) -> None:
    """A list in a cell has no CSV form: its row is rejected (FI101) naming the column."""
    folder = write_submission(tmp_path, referrals=[referral("R1"), referral("R2", lpid="P2")])
    (folder / "IDS202CareActivity.csv").unlink()
    table = pa.table({"CareActId": [["A1", "A2"], ["A3"]], "CareContactId": ["C1", "C2"]})
    pq.write_table(table, folder / "IDS202CareActivity.parquet")
    pathways, rejected = read(folder)
    assert codes(rejected) == ["FI101", "FI101"]
    assert rejected[0].outcome["issue"][0]["location"] == [
        "IDS202CareActivity.parquet row 1 field CareActId"
    ]
    assert set(pathways) == {"RXXR1", "RXXR2"}


def test_a_text_cell_past_the_field_limit_rejects_its_row(tmp_path: Path) -> None:
    """The field-length limit holds for Parquet text cells as for CSV cells (FI105)."""
    from fhir_iapt.limits import Limits

    folder = write_submission(tmp_path, referrals=[referral("R1"), referral("R2", lpid="P2")])
    (folder / "IDS202CareActivity.csv").unlink()
    table = pa.table({"CareActId": ["A" * 500, "A2"], "CareContactId": ["C1", "C2"]})
    pq.write_table(table, folder / "IDS202CareActivity.parquet")
    _, rejected = read(folder, limits=Limits(max_field_chars=100))
    assert codes(rejected) == ["FI105"]
    assert rejected[0].outcome["issue"][0]["location"] == [
        "IDS202CareActivity.parquet row 1 field CareActId"
    ]


def test_parquet_without_pyarrow_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pyarrow not installed, a Parquet table is a file error naming the parquet extra
    (not an ImportError traceback)."""
    folder = write_submission(tmp_path, referrals=[referral()])
    to_parquet(folder, ("IDS202CareActivity",))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    pathways, rejected = read(folder)
    assert pathways == {}
    assert codes(rejected) == ["FI150"]
    assert "pip install 'fhir-iapt[parquet]'" in rejected[0].error.message


def test_outcomes_cli_reads_a_parquet_data_set(tmp_path: Path) -> None:
    """`fhir-iapt outcomes DIR --dataset tt-v2.1` over Parquet tables writes the outcome
    bundles it writes for the CSV export, byte for byte."""
    ledger = tmp_path / "ledger.sqlite"
    with Ledger(ledger) as made:
        for i, value in enumerate(("DC-1", "DC-2")):
            made.record(
                LedgerEntry(
                    identifier_system="https://clinic.example/Id/referral",
                    identifier=value,
                    nhs_number=NHS_NUMBERS[i],
                    authored_on=dt.date(2024, 1, 5),
                    performer_ods="RXX",
                    ltc_snomed="44054006",
                    share_outcomes=True,
                )
            )
    outs = {}
    for form in ("csv", "parquet"):
        folder = _submission(tmp_path / form)
        if form == "parquet":
            to_parquet(folder)
        out = tmp_path / f"out-{form}"
        args = ["outcomes", str(folder), "--dataset", "tt-v2.1", "--ledger", str(ledger)]
        result = CliRunner().invoke(main, [*args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        outs[form] = (out / "bundles.ndjson").read_bytes()
    assert outs["csv"].count(b"\n") == 2
    assert outs["parquet"] == outs["csv"]
