"""A new export layout is converted by adding only a mapping file (and, if needed, a table)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from fhir_iapt.errors import Location
from fhir_iapt.mapping import load_mapping, map_record, read_source
from fhir_iapt.records import (
    ConditionData,
    PatientData,
    ReferralData,
    ReferralRecord,
    Screening,
)
from fhir_iapt.sources import SourceRecord

DATA = Path(__file__).parent / "data" / "mappings"


def _convert(mapping_file: str, input_file: str) -> list[ReferralRecord]:
    mapping = load_mapping(DATA / mapping_file)
    with (DATA / input_file).open("rb") as stream:
        items = list(read_source(stream, name=input_file, mapping=mapping))
    assert all(isinstance(i, SourceRecord) for i in items), items
    return [map_record(i, mapping) for i in items if isinstance(i, SourceRecord)]


def test_new_csv_layout_by_mapping_only() -> None:
    """A semicolon CSV with its own column names, dates and gender codes maps to this record."""
    [record] = _convert("clinic-b-csv.yaml", "clinic-b.csv")
    assert record == ReferralRecord(
        source_system="https://clinic-b.example.org/Id/patient-ref",
        record_id="B-77",
        clinic_ods="RZZ80",
        event_date=date(2026, 5, 4),
        patient=PatientData(
            nhs_number="9994170449",
            family="Doe",
            given=("Jane Ann",),
            birth_date=date(1968, 2, 29),
            sex="female",
            gp_practice_ods="Z99006",
            nhs_number_verification="02",
        ),
        referral=ReferralData(
            decision=True,
            consent_to_refer=True,
            consent_to_share_outcomes=False,
            referrer_id="555000000999",
            referrer_name="Dr B Example",
            source_snomed="108161000000109",
            reason="Breathless; low mood",
            performer_ods="RZZ11",
        ),
        conditions=(ConditionData("13645005"),),
        screenings=(Screening("PHQ-9", (1, 2, 0, 1, 1, 0, 0, 0, 0), date(2026, 5, 4)),),
        location=Location(file="clinic-b.csv", row=1, line=2),
    )


def test_new_xml_shape_by_mapping_only() -> None:
    """Appointments nested under the root, answers as attributes, map to this record."""
    [record] = _convert("clinic-c-xml.yaml", "clinic-c.xml")
    assert record == ReferralRecord(
        source_system="https://clinic-c.example.org/Id/appointment",
        record_id="C-5",
        clinic_ods="RZZ80",
        event_date=date(2026, 5, 4),
        patient=PatientData(
            nhs_number="9994170449",
            family="Doe",
            given=("Jane Ann",),
            birth_date=date(1968, 2, 29),
            sex="female",
            gp_practice_ods="Z99006",
            nhs_number_verification="01",
        ),
        referral=ReferralData(
            decision=True,
            consent_to_refer=True,
            consent_to_share_outcomes=False,
            referrer_id="555000000999",
            referrer_name="Dr B Example",
            reason="Low mood since diagnosis",
            performer_ods="RZZ11",
        ),
        conditions=(
            ConditionData("84114007", "Heart failure"),
            ConditionData("49436004", "Atrial fibrillation"),
        ),
        screenings=(
            Screening("PHQ-9", (1, 2, 0, 1, 1, 0, 0, 0, 0, 2), date(2026, 5, 1)),
            Screening("GAD-2", (3, 1), date(2026, 5, 4)),
        ),
        location=Location(
            file="clinic-c.xml", row=1, line=4, element="/Clinic/Appointments/Appointment[1]"
        ),
    )
