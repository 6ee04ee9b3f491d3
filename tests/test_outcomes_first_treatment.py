"""The episode export's optional ``first_treatment_date`` column (TherapySession_FirstDate, the
date of the first treatment contact): read into EpisodeRecord, checked against the referral's
dates, optional, and carried over from a data-set pathway."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pytest
from dataset_helpers import contact, read, referral, write_submission

from fhir_iapt.dataset import episode_record
from fhir_iapt.errors import MappingError
from fhir_iapt.mapping import load_mapping, map_record
from fhir_iapt.pipeline import convert_bytes
from fhir_iapt.results import Rejected
from fhir_iapt.scoring.episode import EpisodeRecord
from fhir_iapt.sources import SourceRecord, read_records

ROOT = Path(__file__).resolve().parent.parent
#: The example export's columns without the optional one.
BASE = [
    c
    for c in (ROOT / "examples" / "iapt-outcomes.csv").read_text().splitlines()[0].split(",")
    if c != "first_treatment_date"
]
COLUMNS = ",".join(BASE)


def _row(**values: str) -> str:
    """One row of the BASE columns (blank unless given), then any extra values in order."""
    given = {
        "pathway_id": "TT-1",
        "referral_identifier_system": "urn:ref",
        "referral_identifier": "R-1",
        "nhs_number": "9000000009",
        "service_ods": "RXT01",
        "referral_received_date": values.pop("received", "2024-01-08"),
        "discharge_date": values.pop("discharge", "2024-05-20"),
        "treatment_contacts": "8",
        "consent_share_outcomes": "Y",
    }
    cells = [given.get(c, "") for c in BASE]
    return ",".join([*cells, *values.values()])


def _record(text: str) -> EpisodeRecord:
    [item] = list(read_records(io.BytesIO(text.encode()), name="e.csv", fmt="csv"))
    assert isinstance(item, SourceRecord)
    record = map_record(item, load_mapping("iapt-outcomes"))
    assert isinstance(record, EpisodeRecord)
    return record


def test_first_treatment_date_is_read_into_the_episode() -> None:
    """A row's first_treatment_date becomes EpisodeRecord.first_treatment_date."""
    record = _record(f"{COLUMNS},first_treatment_date\n{_row(first='2024-02-05')}\n")
    assert record.first_treatment_date == date(2024, 2, 5)


def test_the_column_is_optional() -> None:
    """An export without the column maps as before: the episode has no first treatment date."""
    record = _record(f"{COLUMNS}\n{_row()}\n")
    assert record.first_treatment_date is None
    assert record.treatment_contacts == 8


def test_a_first_treatment_outside_the_referral_dates_is_rejected() -> None:
    """Before the referral was received, or after discharge: FI359 naming the later field of
    the two out of order (as for the other dates), never the value."""
    for received, discharge, first, field in (
        ("2024-03-01", "2024-05-20", "2024-02-01", "first_treatment_date"),
        ("2024-01-08", "2024-05-20", "2024-06-01", "discharge_date"),
    ):
        row = _row(received=received, discharge=discharge, first=first)
        text = f"{COLUMNS},first_treatment_date\n{row}\n"
        [result] = convert_bytes(
            text.encode(), name="e.csv", mapping="iapt-outcomes", validation="none"
        )
        assert isinstance(result, Rejected)
        issues = result.outcome["issue"]
        assert [i["details"]["coding"][0]["code"] for i in issues] == ["FI359"]
        assert issues[0]["location"][0].endswith(f"field {field}")
        assert first not in json.dumps(result.outcome)


def test_a_data_set_pathway_carries_its_first_treatment_date(tmp_path: Path) -> None:
    """episode_record of a derived pathway keeps TherapySession_FirstDate."""
    write_submission(
        tmp_path,
        referrals=[referral(received="2024-01-10", disch="2024-04-20", end="46")],
        contacts=[contact("C1", "2024-02-14"), contact("C2", "2024-03-01")],
    )
    pathway = read(tmp_path)[0]["RXXR1"]
    record = episode_record(
        pathway, referral_identifier_system="urn:ref", referral_identifier="R-1", consent="Y"
    )
    assert record.first_treatment_date == date(2024, 2, 14)


def _mapping_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "mappings" / "iapt-outcomes.yaml").read_text()
    assert old in text
    path = tmp_path / "m.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_optional_column_is_refused_outside_csv_and_on_a_required_field(tmp_path: Path) -> None:
    """optional_column is a CSV header rule: a JSON mapping or a required field cannot use it."""
    json_input = _mapping_with(tmp_path, "format: csv", "format: json")
    with pytest.raises(MappingError, match="CSV columns only"):
        load_mapping(json_input)
    required = _mapping_with(
        tmp_path,
        "pathway_id: {from: pathway_id, type: string, required: true}",
        "pathway_id: {from: pathway_id, type: string, required: true, optional_column: true}",
    )
    with pytest.raises(MappingError, match="required field cannot have an optional column"):
        load_mapping(required)
