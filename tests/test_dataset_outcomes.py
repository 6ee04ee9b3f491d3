"""Outcomes from the data set, each matched to the ledger referral it answers (issue 11).

pipeline.convert_dataset joins the data-set reader to the referral ledger and the one episode
gate and builder: a matched pathway's outcome is ``basedOn`` the referral's ServiceRequest and
leaves only with the patient's recorded choice (and no later withdrawal in a register); no
match, or two, sends nothing and says why; NHS Digital's derived fields that disagree with ours
are reported per pathway.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from dataset_helpers import GAD7, NHS_NUMBERS, PHQ9, contact, referral, s606, write_submission

from fhir_iapt.consent import ConsentFiles
from fhir_iapt.ledger import Ledger, LedgerEntry
from fhir_iapt.pipeline import DatasetReport, convert_dataset
from fhir_iapt.results import Converted, Rejected, Result, Skipped

CLINIC = "https://example-trust.nhs.uk/Id/diabetes-clinic-record"
PROVIDER = "RXX"
#: one pathway per patient: recovered (PHQ-9 18 -> 6, GAD-7 15 -> 5), finished treatment
PATIENTS = ("P1", "P2", "P3", "P4")


def _dataset(
    folder: Path, first: dict[str, str] | None = None, rest: dict[str, str] | None = None
) -> Path:
    """Four pathways; ``first`` / ``rest``: NHS Digital derived fields of pathway 1 / others."""
    referrals, contacts, scores = [], [], []
    for index, lpid in enumerate(PATIENTS):
        srid = f"R{index + 1}"
        referrals.append(
            referral(
                srid,
                lpid=lpid,
                received="2024-01-10",
                disch="2024-04-20",
                end="46",
                **((first or {}) if index == 0 else (rest or {})),
            )
        )
        contacts += [contact(f"C{index}-{n}", f"2024-0{n + 1}-15", srid=srid) for n in range(3)]
        scores += [
            s606(PHQ9, "18", "2024-01-15", srid=srid),
            s606(PHQ9, "6", "2024-04-15", srid=srid),
            s606(GAD7, "15", "2024-01-15", srid=srid),
            s606(GAD7, "5", "2024-04-15", srid=srid),
        ]
    return write_submission(
        folder / "2024-04",
        provider=PROVIDER,
        referrals=referrals,
        contacts=contacts,
        refer_scores=scores,
        patients=[
            {"LocalPatientId": lpid, "NHSNumber": NHS_NUMBERS[i]} for i, lpid in enumerate(PATIENTS)
        ],
    )


def _entry(nhs: str, value: str, share: bool | None, authored: date) -> LedgerEntry:
    return LedgerEntry(
        identifier_system=CLINIC,
        identifier=value,
        nhs_number=nhs,
        authored_on=authored,
        performer_ods=PROVIDER,
        ltc_snomed="44054006",
        share_outcomes=share,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    made = Ledger(tmp_path / "ledger.sqlite")
    made.record(_entry(NHS_NUMBERS[0], "DC-1", True, date(2024, 1, 2)))  # matched, said yes
    made.record(_entry(NHS_NUMBERS[1], "DC-2", False, date(2024, 1, 2)))  # matched, said no
    # NHS_NUMBERS[2]: nothing in the ledger
    made.record(_entry(NHS_NUMBERS[3], "DC-4a", True, date(2024, 1, 2)))  # two candidates
    made.record(_entry(NHS_NUMBERS[3], "DC-4b", True, date(2024, 1, 5)))
    return made


def _by_pathway(results: list[Result]) -> dict[str, Result]:
    out: dict[str, Result] = {}
    for result in results:
        assert not isinstance(result, Rejected), result.outcome
        out[result.key.rsplit("|", 1)[-1]] = result
    return out


def test_each_pathway_answers_its_ledger_referral_or_says_why_not(
    tmp_path: Path, ledger: Ledger
) -> None:
    """Matched + yes: an outcome basedOn that referral; no: withheld; none or two: skipped."""
    results = list(convert_dataset(_dataset(tmp_path / "ds"), ledger=ledger, validation="full"))
    found = _by_pathway(results)
    assert set(found) == {f"{PROVIDER}R{i}" for i in range(1, 5)}
    sent = found[f"{PROVIDER}R1"]
    assert isinstance(sent, Converted)
    based_on = [
        ref
        for entry in sent.bundle["entry"]
        for ref in entry["resource"].get("basedOn", [])
        if "identifier" in ref
    ]
    assert based_on
    assert {(r["identifier"]["system"], r["identifier"]["value"]) for r in based_on} == {
        (CLINIC, "DC-1")
    }
    withheld = found[f"{PROVIDER}R2"]
    assert isinstance(withheld, Skipped)
    assert withheld.reason == "outcomes-consent-withheld"
    unmatched = found[f"{PROVIDER}R3"]
    assert isinstance(unmatched, Skipped)
    assert unmatched.reason == "no-referral-in-ledger"
    doubled = found[f"{PROVIDER}R4"]
    assert isinstance(doubled, Skipped)
    assert doubled.reason == "several-referrals-in-ledger"
    for skipped in (withheld, unmatched, doubled):
        assert NHS_NUMBERS[1] not in skipped.detail
        assert NHS_NUMBERS[3] not in skipped.detail


def test_a_register_withdrawal_after_the_referral_stops_the_outcome(
    tmp_path: Path, ledger: Ledger
) -> None:
    """The referral said yes; a later register row says W: nothing is sent."""
    register = tmp_path / "register.csv"
    register.write_text(f"nhs_number,consent_share_outcomes\n{NHS_NUMBERS[0]},W\n", "utf-8")
    results = list(
        convert_dataset(
            _dataset(tmp_path / "ds"),
            ledger=ledger,
            consent=ConsentFiles([register]),
            validation="none",
        )
    )
    first = _by_pathway(results)[f"{PROVIDER}R1"]
    assert isinstance(first, Skipped)
    assert first.reason == "outcomes-consent-withdrawn"


def test_nhs_digital_fields_that_disagree_are_reported_per_pathway(
    tmp_path: Path, ledger: Ledger
) -> None:
    """A post-deadline extract whose CompletedTreatment_Flag is null (NHS Digital's flags are
    True or null) where we derive finished treatment is reported for that pathway (both
    values); pathways where it says True agree; the outcome still follows our derivation."""
    report = DatasetReport()
    results = list(
        convert_dataset(
            _dataset(
                tmp_path / "ds",
                first={"CompletedTreatment_Flag": ""},
                rest={"CompletedTreatment_Flag": "True"},
            ),
            ledger=ledger,
            validation="none",
            report=report,
        )
    )
    assert report.pathways == 4
    summary = report.as_dict()
    assert summary["pathways_disagreeing"] == 1
    [item] = [i for i in summary["items"] if i["field"] == "CompletedTreatment_Flag"]
    assert item["pathway"] == f"{PROVIDER}R1"
    assert item["theirs"] != item["ours"]
    assert isinstance(_by_pathway(results)[f"{PROVIDER}R1"], Converted)


def test_a_dataset_missing_a_table_is_one_file_error_and_nothing_else(
    tmp_path: Path, ledger: Ledger
) -> None:
    """No IDS201CareContact: one Rejected naming the table, no outcome derived."""
    folder = _dataset(tmp_path / "ds")
    (folder / "IDS201CareContact.csv").unlink()
    results = list(convert_dataset(tmp_path / "ds", ledger=ledger, validation="none"))
    assert len(results) == 1
    [only] = results
    assert isinstance(only, Rejected)
    assert "IDS201CareContact" in str(only.outcome)
