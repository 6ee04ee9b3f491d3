"""Data set derivation: TherapySession_FirstDate, the date of the first treatment contact
(tt-dataset.md §5: "Entered treatment = TherapySession_FirstDate in period"; the waits are
counted from it)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from dataset_helpers import contact, read, referral, write_submission


def test_first_treatment_date_is_the_earliest_treatment_contact(tmp_path: Path) -> None:
    """Only treatment contacts count: an earlier DNA, an earlier assessment (AppType 01) and a
    contact before the referral was received are passed over; the first attended treatment
    contact inside the dates is the date."""
    write_submission(
        tmp_path,
        referrals=[referral(received="2024-01-10", disch="2024-04-20", end="46")],
        contacts=[
            contact("C1", "2024-01-09"),  # before received: not inside the referral's dates
            contact("C2", "2024-01-12", app="01"),  # an assessment, not treatment
            contact("C3", "2024-01-15", attend="3"),  # did not attend
            contact("C5", "2024-02-20"),
            contact("C4", "2024-02-01", app="03"),  # the first treatment contact
        ],
    )
    pathways, rejected = read(tmp_path)
    assert rejected == []
    assert pathways["RXXR1"].first_treatment_date == date(2024, 2, 1)


def test_unplanned_contact_counts_as_the_first_treatment(tmp_path: Path) -> None:
    """An unplanned contact (PlannedCareContIndicator N) counts as attended (META row 95)."""
    write_submission(
        tmp_path,
        referrals=[referral(received="2024-01-10")],
        contacts=[contact("C1", "2024-01-20", attend="", planned="N"), contact("C2", "2024-03-01")],
    )
    assert read(tmp_path)[0]["RXXR1"].first_treatment_date == date(2024, 1, 20)


def test_no_treatment_contact_means_no_first_treatment_date(tmp_path: Path) -> None:
    """A referral seen only for assessment, or only missed, never entered treatment: None."""
    write_submission(
        tmp_path,
        referrals=[referral(received="2024-01-10", disch="2024-03-01", end="12")],
        contacts=[contact("C1", "2024-01-20", app="01"), contact("C2", "2024-02-01", attend="2")],
    )
    assert read(tmp_path)[0]["RXXR1"].first_treatment_date is None
