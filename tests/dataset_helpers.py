"""Write small NHS Talking Therapies Data Set fixtures (one CSV per table) and read them back.

Every table gets its full header (the columns the reader requires and those it reads when
present) unless a test drops some; a row is a dict of field -> cell, blank when not given.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fhir_iapt.dataset import DerivedPathway, read_dataset
from fhir_iapt.dataset._tables import TABLE_NAMES, dataset_spec
from fhir_iapt.results import Rejected

PHQ9 = "720433000"
GAD7 = "445455005"
SPIN = "445552006"
PCL5 = "491581000000104"
PSWQ = "446517006"
WSAS = (
    "932621000000100",
    "932581000000100",
    "932611000000106",
    "932591000000103",
    "932601000000109",
)
NHS_NUMBERS = ("9000000009", "9912003888", "9434765919", "9434765870")

Row = Mapping[str, str]


def columns(table: str) -> list[str]:
    spec = dataset_spec().table(table)
    return [*spec.required, *spec.optional]


def write_table(
    folder: Path,
    table: str,
    rows: Iterable[Row],
    *,
    drop: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = [c for c in columns(table) if c not in drop] + list(extra)
    path = folder / f"{table}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            unknown = set(row) - set(header) - set(drop)
            assert not unknown, f"fixture names columns {unknown} the header lacks"
            writer.writerow([row.get(c, "") for c in header])
    return path


def referral(
    srid: str = "R1",
    *,
    lpid: str = "P1",
    received: str = "2024-01-10",
    disch: str = "",
    end: str = "",
    **derived: str,
) -> dict[str, str]:
    return {
        "ServiceRequestId": srid,
        "LocalPatientId": lpid,
        "ReferralRequestReceivedDate": received,
        "ServDischDate": disch,
        "EndCode": end,
        **derived,
    }


def contact(
    ccid: str,
    date: str,
    *,
    srid: str = "R1",
    attend: str = "5",
    app: str = "02",
    planned: str = "Y",
    time: str = "",
    ltc: str = "",
) -> dict[str, str]:
    return {
        "CareContactId": ccid,
        "ServiceRequestId": srid,
        "CareContDate": date,
        "CareContTime": time,
        "AttendOrDNACode": attend,
        "AppType": app,
        "PlannedCareContIndicator": planned,
        "IAPTLTCServiceInd": ltc,
    }


def activity(caid: str, ccid: str) -> dict[str, str]:
    return {"CareActId": caid, "CareContactId": ccid}


def s606(tool: str, score: str, date: str, *, srid: str = "R1", time: str = "") -> dict[str, str]:
    return {
        "ServiceRequestId": srid,
        "CodedAssToolType": tool,
        "PersScore": score,
        "AssToolCompDate": date,
        "AssToolCompTime": time,
    }


def s607(caid: str, tool: str, score: str) -> dict[str, str]:
    return {"CareActId": caid, "CodedAssToolType": tool, "PersScore": score}


def complaint(
    code: str, *, sig: str = "1", scheme: str = "01", date: str = "", srid: str = "R1"
) -> dict[str, str]:
    return {
        "ServiceRequestId": srid,
        "FindSchemeInUse": scheme,
        "PresComp": code,
        "PresCompCodSig": sig,
        "PresCompDate": date,
    }


def ltc(code: str, *, scheme: str = "04", srid: str = "R1") -> dict[str, str]:
    return {"ServiceRequestId": srid, "FindSchemeInUse": scheme, "LongTermCondition": code}


def write_submission(
    folder: Path,
    *,
    provider: str = "RXX",
    start: str = "2024-04-01",
    end: str = "2024-04-30",
    created: str = "2024-05-10T09:00:00",
    file_type: str = "",
    patients: Iterable[Row] | None = None,
    referrals: Iterable[Row] = (),
    contacts: Iterable[Row] = (),
    activities: Iterable[Row] = (),
    ltcs: Iterable[Row] = (),
    complaints: Iterable[Row] = (),
    refer_scores: Iterable[Row] = (),
    act_scores: Iterable[Row] = (),
    drop: Mapping[str, Sequence[str]] | None = None,
    extra: Mapping[str, Sequence[str]] | None = None,
    omit: Sequence[str] = (),
) -> Path:
    """One submission folder with all nine tables (``omit`` leaves tables out)."""
    referrals = list(referrals)
    if patients is None:
        lpids = dict.fromkeys(r["LocalPatientId"] for r in referrals)
        patients = [
            {"LocalPatientId": lpid, "NHSNumber": NHS_NUMBERS[i % len(NHS_NUMBERS)]}
            for i, lpid in enumerate(lpids)
        ]
    rows: dict[str, Iterable[Row]] = {
        "IDS000Header": [
            {
                "OrgIDProv": provider,
                "ReportingPeriodStartDate": start,
                "ReportingPeriodEndDate": end,
                "DateTimeDatSetCreate": created,
                "File_Type": file_type,
            }
        ],
        "IDS001MPI": patients,
        "IDS101Referral": referrals,
        "IDS201CareContact": contacts,
        "IDS202CareActivity": activities,
        "IDS602LongTermCondition": ltcs,
        "IDS603PresentingComplaints": complaints,
        "IDS606CodedScoreAssessmentRefer": refer_scores,
        "IDS607CodedScoreAssessmentAct": act_scores,
    }
    for table in TABLE_NAMES:
        if table in omit:
            continue
        derived_cols: list[str] = []
        if table == "IDS101Referral":
            base = set(columns(table))
            derived_cols = sorted({k for r in referrals for k in r if k not in base})
        write_table(
            folder,
            table,
            rows[table],
            drop=(drop or {}).get(table, ()),
            extra=[*derived_cols, *(extra or {}).get(table, ())],
        )
    return folder


def read(directory: Path, **kwargs: Any) -> tuple[dict[str, DerivedPathway], list[Rejected]]:
    """Every pathway by id, and every rejection, of the data set under ``directory``."""
    pathways: dict[str, DerivedPathway] = {}
    rejected: list[Rejected] = []
    for item in read_dataset(directory, **kwargs):
        if isinstance(item, Rejected):
            rejected.append(item)
        else:
            assert item.pathway_id not in pathways
            pathways[item.pathway_id] = item
    return pathways, rejected


def codes(rejected: Iterable[Rejected]) -> list[str]:
    return [r.error.error_code for r in rejected]
