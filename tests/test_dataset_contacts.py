"""Data set derivation: treatment contacts and finished treatment (tt-dataset.md §5, DOMAIN.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_helpers import contact, read, referral, write_submission

# (case, contact fields, counts as a treatment contact)
CONTACT_CASES = [
    ("attended on time 5", {"attend": "5"}, True),
    ("attended on time 05", {"attend": "05"}, True),
    ("late but seen 6", {"attend": "6"}, True),
    ("late but seen 06", {"attend": "06"}, True),
    ("did not attend 3", {"attend": "3"}, False),
    ("cancelled by patient 2", {"attend": "2"}, False),
    ("cancelled by provider 4", {"attend": "4"}, False),
    ("late not seen 7", {"attend": "7"}, False),
    ("DNA but unplanned N", {"attend": "3", "planned": "N"}, True),
    ("no attendance code, unplanned N", {"attend": "", "planned": "N"}, True),
    ("no attendance code, planned", {"attend": "", "planned": "Y"}, False),
    ("treatment AppType 03", {"app": "03"}, True),
    ("treatment AppType 05", {"app": "05"}, True),
    ("AppType written 2", {"app": "2"}, True),
    ("assessment AppType 01", {"app": "01"}, False),
    ("follow-up AppType 06", {"app": "06"}, False),
    ("employment support AppType 10", {"app": "10"}, False),
    ("on the received date", {"date": "2024-01-10"}, True),
    ("on the discharge date", {"date": "2024-04-20"}, True),
    ("before the referral was received", {"date": "2024-01-09"}, False),
    ("after discharge", {"date": "2024-04-21"}, False),
]


@pytest.mark.parametrize(
    ("fields", "counts"), [c[1:] for c in CONTACT_CASES], ids=[c[0] for c in CONTACT_CASES]
)
def test_treatment_contact_rule(tmp_path: Path, fields: dict[str, str], counts: bool) -> None:
    """A contact counts when attended or unplanned, of a treatment AppType, inside the dates."""
    date = fields.pop("date", "2024-02-01")
    write_submission(
        tmp_path,
        referrals=[referral(received="2024-01-10", disch="2024-04-20", end="46")],
        contacts=[contact("C0", "2024-03-01"), contact("C1", date, **fields)],
    )
    pathways, rejected = read(tmp_path)
    assert rejected == []
    pathway = pathways["RXXR1"]
    assert pathway.care_contacts == 2
    assert pathway.treatment_contacts == 1 + counts
    assert pathway.finished_treatment is counts  # discharged: finished at two, not at one


# (case, discharge date, treatment contacts, finished)
FINISHED_CASES = [
    ("discharged, two contacts", "2024-04-20", 2, True),
    ("discharged, one contact", "2024-04-20", 1, False),
    ("discharged, none", "2024-04-20", 0, False),
    ("open pathway, five contacts", "", 5, False),
    ("open pathway, two contacts", "", 2, False),
]


@pytest.mark.parametrize(
    ("disch", "n", "finished"), [c[1:] for c in FINISHED_CASES], ids=[c[0] for c in FINISHED_CASES]
)
def test_finished_treatment_needs_discharge_and_two(
    tmp_path: Path, disch: str, n: int, finished: bool
) -> None:
    """Finished = a discharge date AND >= 2 treatment contacts; an open pathway never is."""
    write_submission(
        tmp_path,
        referrals=[referral(disch=disch, end="46" if disch else "")],
        contacts=[contact(f"C{i}", f"2024-02-{i + 1:02d}") for i in range(n)],
    )
    pathway = read(tmp_path)[0]["RXXR1"]
    assert pathway.treatment_contacts == n
    assert pathway.finished_treatment is finished
    assert pathway.discharge is None if not disch else pathway.discharge.isoformat() == disch


def test_contacts_of_other_referrals_and_providers_do_not_mix(tmp_path: Path) -> None:
    """Contacts join their own referral: same ServiceRequestId at another provider stays apart."""
    write_submission(
        tmp_path / "a",
        provider="RAA",
        referrals=[referral("R1"), referral("R2", lpid="P2")],
        contacts=[contact("C1", "2024-02-01"), contact("C2", "2024-02-02", srid="R2")],
    )
    write_submission(
        tmp_path / "b",
        provider="RBB",
        referrals=[referral("R1")],
        contacts=[contact("C1", "2024-02-01"), contact("C9", "2024-02-03")],
    )
    pathways, rejected = read(tmp_path)
    assert rejected == []
    counts = {pid: p.treatment_contacts for pid, p in pathways.items()}
    assert counts == {"RAAR1": 1, "RAAR2": 1, "RBBR1": 2}
    assert {p.provider_ods for p in pathways.values()} == {"RAA", "RBB"}


@pytest.mark.parametrize("app", ["09", "11", "99", "00"])
def test_an_apptype_outside_the_list_rejects_its_contact(tmp_path: Path, app: str) -> None:
    """An AppType outside the data set's list (dataset.yaml app_types) rejects the contact row
    (FI153 naming the field, never the value), like an AttendOrDNACode outside its list; the
    rest of the referral is derived."""
    write_submission(
        tmp_path,
        referrals=[referral(received="2024-01-10", disch="2024-04-20", end="46")],
        contacts=[contact("C0", "2024-03-01"), contact("C1", "2024-02-01", app=app)],
    )
    pathways, rejected = read(tmp_path)
    assert [r.error.error_code for r in rejected] == ["FI153"]
    issue = rejected[0].outcome["issue"][0]
    assert issue["location"] == ["IDS201CareContact.csv row 2 line 3 field AppType"]
    assert app not in issue["diagnostics"].split("field AppType", 1)[1]
    assert pathways["RXXR1"].care_contacts == 1
