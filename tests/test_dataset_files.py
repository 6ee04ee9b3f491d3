"""Data set reading: file errors, located bad rows, months, Refresh, resubmission, NHS Digital's
derived fields, and the EpisodeRecord a pathway becomes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from dataset_helpers import (
    GAD7,
    PHQ9,
    codes,
    contact,
    read,
    referral,
    s606,
    write_submission,
    write_table,
)

from fhir_iapt.dataset import DatasetRun, Disagreement, episode_record, read_dataset
from fhir_iapt.errors import RecordError
from fhir_iapt.scoring.recovery import derive_outcome

D = Decimal


def _month(folder: Path, start: str, **kwargs: object) -> Path:
    end = {"2024-04-01": "2024-04-30", "2024-05-01": "2024-05-31"}[start]
    return write_submission(folder, start=start, end=end, **kwargs)  # type: ignore[arg-type]


def test_missing_table_is_one_file_error_and_nothing_is_derived(tmp_path: Path) -> None:
    """A missing table is one FI150 naming it; no pathway is derived from the rest."""
    write_submission(tmp_path, referrals=[referral()], omit=["IDS202CareActivity"])
    pathways, rejected = read(tmp_path)
    assert pathways == {}
    assert codes(rejected) == ["FI150"]
    assert "IDS202CareActivity" in rejected[0].error.message


def test_missing_column_is_one_file_error_naming_table_and_column(tmp_path: Path) -> None:
    """A required column missing from a table's header is one FI151 naming table and column."""
    write_submission(
        tmp_path, referrals=[referral()], drop={"IDS201CareContact": ["AttendOrDNACode"]}
    )
    pathways, rejected = read(tmp_path)
    assert pathways == {}
    assert codes(rejected) == ["FI151"]
    issue = rejected[0].outcome["issue"][0]
    assert issue["location"] == ["IDS201CareContact.csv line 1 field AttendOrDNACode"]
    assert "table IDS201CareContact lacks the column AttendOrDNACode" in issue["diagnostics"]


def test_no_submission_at_all_is_a_file_error(tmp_path: Path) -> None:
    """A directory without IDS000Header.csv anywhere is one file error, not an empty result."""
    (tmp_path / "IDS101Referral.csv").write_text("ServiceRequestId\n")
    assert codes(read(tmp_path)[1]) == ["FI150"]


# (case, table, row fields, field named)
BAD_ROWS = [
    (
        "received date not a date",
        "IDS101Referral",
        {"ReferralRequestReceivedDate": "10/01/2024"},
        "ReferralRequestReceivedDate",
    ),
    (
        "discharge before received",
        "IDS101Referral",
        {"ServDischDate": "2023-12-31"},
        "ServDischDate",
    ),
    ("unknown EndCode", "IDS101Referral", {"EndCode": "77"}, "EndCode"),
    ("blank ServiceRequestId", "IDS101Referral", {"ServiceRequestId": ""}, "ServiceRequestId"),
    ("bad NHS number", "IDS001MPI", {"NHSNumber": "9000000008"}, "NHSNumber"),
    ("attendance code 9", "IDS201CareContact", {"AttendOrDNACode": "9"}, "AttendOrDNACode"),
    ("AppType of three digits", "IDS201CareContact", {"AppType": "102"}, "AppType"),
    (
        "contact date impossible",
        "IDS201CareContact",
        {"CareContDate": "2024-02-30"},
        "CareContDate",
    ),
    ("scheme 02", "IDS603PresentingComplaints", {"FindSchemeInUse": "02"}, "FindSchemeInUse"),
]
_GOOD = {
    "IDS101Referral": referral("R2", lpid="P1"),
    "IDS001MPI": {"LocalPatientId": "P1", "NHSNumber": "9000000009"},
    "IDS201CareContact": contact("C9", "2024-02-01"),
    "IDS603PresentingComplaints": {
        "ServiceRequestId": "R1",
        "FindSchemeInUse": "01",
        "PresComp": "F41.1",
        "PresCompCodSig": "1",
    },
}


@pytest.mark.parametrize(
    ("table", "bad", "field"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS]
)
def test_bad_row_is_rejected_by_table_row_field_and_rule(
    tmp_path: Path, table: str, bad: dict[str, str], field: str
) -> None:
    """A bad row is one FI153 locating table, row and field; the value is never in the outcome."""
    write_submission(tmp_path, referrals=[referral("R1")], contacts=[contact("C1", "2024-02-01")])
    good = _GOOD[table]
    write_table(tmp_path, table, [good, {**good, **bad}])
    pathways, rejected = read(tmp_path)
    assert codes(rejected) == ["FI153"]
    location = rejected[0].location
    assert (location.file, location.row, location.field) == (f"{table}.csv", 2, field)
    outcome = str(rejected[0].outcome)
    for value in bad.values():
        if value:
            assert value not in outcome
    assert pathways  # the rest is derived


def test_refresh_replaces_the_primary_of_its_month(tmp_path: Path) -> None:
    """A Refresh for provider+month replaces that Primary whole: the Primary's rows are gone."""
    common = {"referrals": [referral(disch="2024-04-20", end="46")]}
    _month(
        tmp_path / "primary",
        "2024-04-01",
        file_type="Primary",
        created="2024-05-20T10:00:00",
        contacts=[
            contact("C1", "2024-04-02"),
            contact("C2", "2024-04-03"),
            contact("C3", "2024-04-04"),
        ],
        **common,
    )
    _month(
        tmp_path / "refresh",
        "2024-04-01",
        file_type="Refresh",
        created="2024-05-01T10:00:00",  # earlier, but a Refresh
        contacts=[contact("C1", "2024-04-02")],
        **common,
    )
    run = DatasetRun()
    pathways, rejected = read(tmp_path, run=run)
    assert rejected == []
    assert pathways["RXXR1"].treatment_contacts == 1
    assert [s.label for s in run.used] == ["refresh"]
    assert [s.label for s in run.replaced] == ["primary"]


def test_same_type_later_creation_wins_and_a_full_tie_is_refused(tmp_path: Path) -> None:
    """Two Primaries of one month: the later DateTimeDatSetCreate wins; equal ones are refused."""
    for label, created, n in (("a", "2024-05-01T10:00:00", 1), ("b", "2024-05-02T10:00:00", 2)):
        _month(
            tmp_path / label,
            "2024-04-01",
            created=created,
            referrals=[referral()],
            contacts=[contact(f"C{i}", "2024-04-02") for i in range(n)],
        )
    assert read(tmp_path)[0]["RXXR1"].treatment_contacts == 2
    _month(tmp_path / "c", "2024-04-01", created="2024-05-02T10:00:00", referrals=[referral()])
    pathways, rejected = read(tmp_path)
    assert pathways == {}
    assert codes(rejected) == ["FI152", "FI152"]


def test_resubmitted_record_keeps_its_latest_version(tmp_path: Path) -> None:
    """Across months the same referral / contact / score keeps its latest month's version."""
    _month(
        tmp_path / "2024-04",
        "2024-04-01",
        referrals=[referral()],
        contacts=[contact("C1", "2024-04-02", attend="3"), contact("C2", "2024-04-10")],
        refer_scores=[s606(PHQ9, "20", "2024-04-02")],
    )
    _month(
        tmp_path / "2024-05",
        "2024-05-01",
        created="2024-06-10T09:00:00",
        referrals=[referral(disch="2024-05-20", end="46")],  # discharged in May
        # C1 corrected to attended; May's own contact added
        contacts=[contact("C1", "2024-04-02", attend="5"), contact("C3", "2024-05-03")],
        refer_scores=[s606(PHQ9, "18", "2024-04-02"), s606(PHQ9, "7", "2024-05-03")],
    )
    pathways, rejected = read(tmp_path)
    assert rejected == []
    pathway = pathways["RXXR1"]
    assert pathway.discharge is not None
    assert pathway.end_code == "46"
    assert pathway.treatment_contacts == 3  # C1 (now attended), C2, C3
    assert (pathway.phq9.first, pathway.phq9.last) == (D(18), D(7))


def _post_deadline(tmp_path: Path, **derived: str) -> None:
    write_submission(
        tmp_path,
        referrals=[referral(disch="2024-04-20", end="46", **derived)],
        contacts=[contact("C1", "2024-02-01"), contact("C2", "2024-03-01")],
        refer_scores=[
            s606(PHQ9, "18", "2024-02-01"),
            s606(PHQ9, "6", "2024-03-01"),
            s606(GAD7, "14", "2024-02-01"),
            s606(GAD7, "4", "2024-03-01"),
        ],
    )


def test_nhs_digital_fields_that_agree_report_nothing(tmp_path: Path) -> None:
    """A post-deadline extract whose derived fields match ours has no disagreements."""
    _post_deadline(
        tmp_path,
        Unique_ServiceRequestID="RXXR1",
        PathwayID="ABC123",
        TreatmentCareContact_Count="2",
        CompletedTreatment_Flag="True",
        PHQ9_FirstScore="18",
        PHQ9_LastScore="6",
        GAD_FirstScore="14.0",
        Recovery_Flag="True",
        ReliableImprovement_Flag="True",
        ReliableDeterioration_Flag="",
        ADSM="GAD7",
    )
    pathway = read(tmp_path)[0]["RXXR1"]
    assert pathway.disagreements == ()
    assert pathway.nhsd_pathway_id == "ABC123"


def test_nhs_digital_fields_that_disagree_are_all_reported(tmp_path: Path) -> None:
    """Every derived field that differs is reported with both values; ours is kept as derived."""
    _post_deadline(
        tmp_path,
        TreatmentCareContact_Count="1",
        CompletedTreatment_Flag="",
        PHQ9_FirstScore="17",
        Recovery_Flag="",
        ADSM="SocialPhobia",
    )
    pathway = read(tmp_path)[0]["RXXR1"]
    assert pathway.disagreements == (
        Disagreement("TreatmentCareContact_Count", "1", "2"),
        Disagreement("CompletedTreatment_Flag", None, "True"),
        Disagreement("PHQ9_FirstScore", "17", "18"),
        Disagreement("ADSM", "SocialPhobia", "GAD7"),
        Disagreement("Recovery_Flag", None, "True"),
    )
    assert pathway.treatment_contacts == 2
    assert pathway.finished_treatment


def test_episode_record_carries_the_derivation_and_the_ledger_match(tmp_path: Path) -> None:
    """episode_record gives the EpisodeRecord derive_outcome reads, with the ledger's referral."""
    _post_deadline(tmp_path)
    pathway = next(p for p in read_dataset(tmp_path) if not hasattr(p, "error"))
    assert not hasattr(pathway, "error")
    episode = episode_record(
        pathway,  # type: ignore[arg-type]
        referral_identifier_system="https://example.org/referrals",
        referral_identifier="SR-1",
        consent="Y",
    )
    assert (episode.pathway_id, episode.nhs_number, episode.service_ods) == (
        "RXXR1",
        "9000000009",
        "RXX",
    )
    assert (episode.referral_identifier, episode.consent, episode.treatment_contacts) == (
        "SR-1",
        "Y",
        2,
    )
    outcome = derive_outcome(episode)
    assert outcome.value("finished-treatment") is True
    assert outcome.value("recovery") is True


def test_episode_record_refuses_a_pathway_without_nhs_number(tmp_path: Path) -> None:
    """A pathway whose IDS001 NHSNumber is blank cannot become an episode (FI158)."""
    write_submission(
        tmp_path, referrals=[referral()], patients=[{"LocalPatientId": "P1", "NHSNumber": ""}]
    )
    pathway = read(tmp_path)[0]["RXXR1"]
    assert pathway.nhs_number is None
    with pytest.raises(RecordError) as caught:
        episode_record(
            pathway, referral_identifier_system="s", referral_identifier="i", consent="Y"
        )
    assert caught.value.error_code == "FI158"
