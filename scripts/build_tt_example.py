"""Write the bundled synthetic NHS Talking Therapies data set and its equivalent episode export.

Usage: python scripts/build_tt_example.py

Writes ``examples/tt-dataset/2026-03/`` and ``examples/tt-dataset/2026-04/`` (the nine v2.1
tables of two monthly submissions each from two providers: RZZ10, the Talking Therapies service
the clinic examples refer to, and RZZ20) and ``examples/tt-dataset-episodes.csv``: the same
pathways as an episode export (mapping ``iapt-outcomes``), each row holding what the data set's
rows say (dates, treatment contacts, first and last scores), so that ``fhir-iapt report`` gives
the same KPIs over either.

Everything here is made up: NHS numbers from the 999 test range, no real person. Some pathways
answer referrals that ``fhir-iapt convert`` of ``examples/{diabetes.csv,respiratory.xml,
cardiac.json}`` records in the ledger (same NHS number, received 0-90 days after the referral
was authored, provider RZZ10); one patient has two referrals in that window, so the ledger
cannot tell which (unmatched). Bad rows on purpose (the data-quality section): an
AttendOrDNACode and an AppType outside their lists (the contact rows are rejected, so those
contacts never count) and a CodedAssToolType no score check knows. Drift on purpose: RZZ20
records F41.2 for most of its pathways.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples" / "tt-dataset"
EXPORT = ROOT / "examples" / "tt-dataset-episodes.csv"
MONTHS = ((date(2026, 3, 1), date(2026, 3, 31)), (date(2026, 4, 1), date(2026, 4, 30)))
PATHWAY_SYSTEM = "https://fhir-iapt.github.io/fhir/Id/tt-dataset-pathway"
DIABETES_RECORD = "https://fhir-iapt.github.io/fhir/Id/example-diabetes-clinic-record"
PHQ9, GAD7, SPIN = "720433000", "445455005", "445552006"
#: outcome -> (PHQ-9 first, last), (GAD-7 first, last)
SCORES = {
    "recovered": ((15, 6), (12, 5)),
    "improved": ((18, 11), (14, 9)),
    "not-a-case": ((7, 5), (6, 4)),
    "deteriorated": ((12, 19), (9, 15)),
    "no-change": ((14, 12), (10, 9)),
}
COLUMNS = {
    "IDS000Header": [
        "OrgIDProv",
        "ReportingPeriodStartDate",
        "ReportingPeriodEndDate",
        "DatSetVer",
        "OrgIDSubmit",
        "DateTimeDatSetCreate",
        "File_Type",
    ],
    "IDS001MPI": ["LocalPatientId", "NHSNumber", "OrgIDLocalPatientId", "NHSNumberStatus"],
    "IDS101Referral": [
        "ServiceRequestId",
        "LocalPatientId",
        "ReferralRequestReceivedDate",
        "ServDischDate",
        "EndCode",
        "OrgIDComm",
        "SourceOfReferralIAPT",
    ],
    "IDS201CareContact": [
        "CareContactId",
        "ServiceRequestId",
        "CareContDate",
        "CareContTime",
        "AttendOrDNACode",
        "AppType",
        "PlannedCareContIndicator",
        "IAPTLTCServiceInd",
        "ConsMechanism",
    ],
    "IDS202CareActivity": ["CareActId", "CareContactId", "CodeProcAndProcStatus"],
    "IDS602LongTermCondition": ["ServiceRequestId", "FindSchemeInUse", "LongTermCondition"],
    "IDS603PresentingComplaints": [
        "ServiceRequestId",
        "FindSchemeInUse",
        "PresComp",
        "PresCompCodSig",
        "PresCompDate",
    ],
    "IDS606CodedScoreAssessmentRefer": [
        "ServiceRequestId",
        "CodedAssToolType",
        "PersScore",
        "AssToolCompDate",
        "AssToolCompTime",
    ],
    "IDS607CodedScoreAssessmentAct": ["CareActId", "CodedAssToolType", "PersScore"],
}


def nhs_numbers() -> list[str]:
    """Valid (modulus 11) NHS numbers from the 999 test range, in order."""
    out = []
    for n in range(9995000000, 9996000000):
        digits = str(n)[:9]
        total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10:
            out.append(digits + str(check))
        if len(out) == 40:
            return out
    raise AssertionError("not enough test numbers")


@dataclass
class Pathway:
    provider: str
    srid: str
    nhs: str | None
    received: date
    first_treatment: date | None
    treatments: int  # attended treatment contacts, weekly from first_treatment
    discharge: date | None
    end: str
    ltc: str | None
    descriptor: str | None
    outcome: str  # a SCORES key
    referral: tuple[str, str] | None = None  # the ledger referral it answers
    share: bool = False  # the referral's share-outcomes answer
    spin: tuple[int, int] | None = None
    phq9_last: bool = True  # False: only a first PHQ-9
    bad: list[str] = field(default_factory=list)  # "attend", "app", "tool"

    @property
    def pathway_id(self) -> str:
        return f"{self.provider}{self.srid}"

    def treatment_dates(self) -> list[date]:
        if self.first_treatment is None:
            return []
        return [self.first_treatment + timedelta(weeks=i) for i in range(self.treatments)]


def pathways() -> list[Pathway]:
    new = iter(nhs_numbers())
    d = date
    one = (DIABETES_RECORD, "DM-1001")
    return [
        # RZZ10 diabetes: nine finish in April (figures that survive suppression)
        Pathway("RZZ10", "R101", "9990000018", d(2026, 2, 16), d(2026, 3, 2), 6,
                d(2026, 4, 10), "46", "44054006", "F41.1", "recovered", one, True),
        Pathway("RZZ10", "R102", "9990379149", d(2026, 3, 15), d(2026, 3, 20), 4,
                d(2026, 4, 14), "46", "44054006", "F32.1", "recovered",
                (DIABETES_RECORD, "DM-1002"), True),
        Pathway("RZZ10", "R103", "9990758271", d(2026, 4, 15), None, 0, None, "",
                "46635009", "F41.1", "recovered", (DIABETES_RECORD, "DM-1003"), True),
        Pathway("RZZ10", "R104", "9993033057", d(2026, 1, 19), d(2026, 3, 2), 5,
                d(2026, 4, 1), "46", "44054006", "F41.1", "improved",
                (DIABETES_RECORD, "DM-1009"), True),
        Pathway("RZZ10", "R105", "9993791318", d(2026, 2, 12), d(2026, 4, 1), 3,
                d(2026, 4, 20), "46", "46635009", "F41.2", "recovered",
                (DIABETES_RECORD, "DM-1010"), True),
        Pathway("RZZ10", "R106", next(new), d(2026, 3, 2), d(2026, 3, 9), 5, d(2026, 4, 13),
                "46", "44054006", "F40.1", "recovered", spin=(40, 15)),
        Pathway("RZZ10", "R107", next(new), d(2026, 3, 3), d(2026, 3, 10), 4, d(2026, 4, 7),
                "46", "44054006", "F41.1", "not-a-case"),
        Pathway("RZZ10", "R108", next(new), d(2026, 3, 5), d(2026, 3, 12), 4, d(2026, 4, 9),
                "46", "73211009", "F32.1", "recovered"),
        Pathway("RZZ10", "R109", next(new), d(2026, 3, 6), d(2026, 3, 13), 3, d(2026, 4, 3),
                "47", "44054006", "F41.1", "deteriorated"),
        Pathway("RZZ10", "R110", next(new), d(2026, 3, 9), d(2026, 3, 16), 4, d(2026, 4, 13),
                "46", "44054006", "F40.1", "recovered"),
        Pathway("RZZ10", "R111", next(new), d(2026, 3, 10), d(2026, 3, 17), 1, d(2026, 3, 31),
                "47", "44054006", "F41.1", "no-change"),
        Pathway("RZZ10", "R112", next(new), d(2026, 4, 1), d(2026, 4, 8), 2, None, "",
                "44054006", "F32.1", "no-change"),
        # RZZ10 respiratory: 9990000018 again, with two ledger referrals in the window
        Pathway("RZZ10", "R120", "9990000018", d(2026, 2, 25), d(2026, 3, 4), 4,
                d(2026, 3, 27), "46", "13645005", "F41.1", "recovered"),
        Pathway("RZZ10", "R121", next(new), d(2026, 3, 1), d(2026, 3, 5), 3, d(2026, 3, 26),
                "46", "195967001", "F41.2", "no-change"),
        Pathway("RZZ10", "R122", next(new), d(2026, 3, 2), d(2026, 3, 6), 2, d(2026, 3, 30),
                "46", "13645005", "F41.1", "recovered", phq9_last=False),
        # RZZ10 cardiac and other
        Pathway("RZZ10", "R130", next(new), d(2026, 3, 10), d(2026, 3, 18), 3, d(2026, 4, 8),
                "46", "84114007", "F41.1", "recovered"),
        Pathway("RZZ10", "R131", next(new), d(2026, 3, 20), None, 0, None, "", "84114007",
                "F32.1", "recovered"),
        Pathway("RZZ10", "R140", next(new), d(2026, 3, 12), d(2026, 3, 19), 2, d(2026, 4, 2),
                "46", None, None, "improved"),
        # RZZ20 diabetes: F41.2 for most (the drift), and the bad rows
        Pathway("RZZ20", "R201", next(new), d(2026, 3, 2), d(2026, 3, 9), 4, d(2026, 4, 6),
                "46", "44054006", "F41.2", "recovered", bad=["attend"]),
        Pathway("RZZ20", "R202", next(new), d(2026, 3, 3), d(2026, 3, 10), 4, d(2026, 4, 7),
                "46", "44054006", "F41.2", "recovered", bad=["app"]),
        Pathway("RZZ20", "R203", next(new), d(2026, 3, 4), d(2026, 3, 11), 4, d(2026, 4, 8),
                "46", "46635009", "F41.2", "no-change", bad=["tool"]),
        Pathway("RZZ20", "R204", next(new), d(2026, 3, 5), d(2026, 3, 12), 3, d(2026, 4, 2),
                "46", "44054006", "F41.2", "not-a-case"),
        Pathway("RZZ20", "R205", next(new), d(2026, 3, 6), d(2026, 3, 13), 4, d(2026, 4, 10),
                "46", "44054006", "F41.1", "recovered"),
        Pathway("RZZ20", "R206", next(new), d(2026, 3, 9), d(2026, 3, 16), 3, d(2026, 4, 6),
                "48", "44054006", "F41.2", "improved"),
    ]  # fmt: skip


def _in(day: date, month: tuple[date, date]) -> bool:
    return month[0] <= day <= month[1]


@dataclass
class _Score:
    tool: str
    value: int
    day: date


def scores(p: Pathway) -> list[_Score]:
    """The pathway's IDS606 scores: first on the first treatment, last on the last one."""
    dates = p.treatment_dates()
    if not dates:
        return []
    (phq_first, phq_last), (gad_first, gad_last) = SCORES[p.outcome]
    first, last = dates[0], dates[-1]
    out = [_Score(PHQ9, phq_first, first), _Score(GAD7, gad_first, first)]
    if p.spin is not None:
        out.append(_Score(SPIN, p.spin[0], first))
    if len(dates) > 1 and p.discharge is not None:
        if p.phq9_last:
            out.append(_Score(PHQ9, phq_last, last))
        out.append(_Score(GAD7, gad_last, last))
        if p.spin is not None:
            out.append(_Score(SPIN, p.spin[1], last))
    return out


def _write(folder: Path, table: str, rows: list[dict[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{table}.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS[table])
        for row in rows:
            writer.writerow([row.get(c, "") for c in COLUMNS[table]])


def submission(provider: str, month: tuple[date, date], all_pathways: list[Pathway]) -> None:
    start, end = month
    folder = OUT / f"{start:%Y-%m}" / provider
    mine = [
        p
        for p in all_pathways
        if p.provider == provider
        and p.received <= end
        and (p.discharge is None or p.discharge >= start)
    ]
    rows: dict[str, list[dict[str, str]]] = {table: [] for table in COLUMNS}
    rows["IDS000Header"].append(
        {
            "OrgIDProv": provider,
            "ReportingPeriodStartDate": start.isoformat(),
            "ReportingPeriodEndDate": end.isoformat(),
            "DatSetVer": "2.1",
            "OrgIDSubmit": provider,
            "DateTimeDatSetCreate": f"{end + timedelta(days=12)}T09:00:00",
            "File_Type": "Primary",
        }
    )
    for p in mine:
        lpid = f"P{p.srid[1:]}"
        rows["IDS001MPI"].append(
            {"LocalPatientId": lpid, "NHSNumber": p.nhs or "", "NHSNumberStatus": "01"}
        )
        discharged = p.discharge is not None and p.discharge <= end
        rows["IDS101Referral"].append(
            {
                "ServiceRequestId": p.srid,
                "LocalPatientId": lpid,
                "ReferralRequestReceivedDate": p.received.isoformat(),
                "ServDischDate": p.discharge.isoformat() if discharged and p.discharge else "",
                "EndCode": p.end if discharged else "",
                "OrgIDComm": "15N",
                "SourceOfReferralIAPT": "A3",
            }
        )
        ltc_flag = "Y" if p.ltc else "N"
        if p.ltc:
            rows["IDS602LongTermCondition"].append(
                {"ServiceRequestId": p.srid, "FindSchemeInUse": "04", "LongTermCondition": p.ltc}
            )
        if p.descriptor:
            rows["IDS603PresentingComplaints"].append(
                {
                    "ServiceRequestId": p.srid,
                    "FindSchemeInUse": "01",
                    "PresComp": p.descriptor,
                    "PresCompCodSig": "1",
                    "PresCompDate": (p.received + timedelta(days=3)).isoformat(),
                }
            )
        assessment = p.received + timedelta(days=3)
        contacts = [(f"{p.srid}-A", assessment, "5", "01")]
        contacts += [
            (f"{p.srid}-T{i}", day, "5", "02") for i, day in enumerate(p.treatment_dates())
        ]
        # a missed treatment appointment (DNA) a week after the first: never a treatment
        if p.first_treatment is not None:
            contacts.append((f"{p.srid}-D", p.first_treatment + timedelta(days=3), "3", "02"))
        for bad, attend, app in (("attend", "9", "02"), ("app", "5", "X1")):
            if bad in p.bad and p.first_treatment is not None:
                day = p.first_treatment + timedelta(days=1)
                contacts.append((f"{p.srid}-{bad.upper()}", day, attend, app))
        for ccid, day, attend, app in contacts:
            if not _in(day, month):
                continue
            rows["IDS201CareContact"].append(
                {
                    "CareContactId": ccid,
                    "ServiceRequestId": p.srid,
                    "CareContDate": day.isoformat(),
                    "CareContTime": "10:00:00",
                    "AttendOrDNACode": attend,
                    "AppType": app,
                    "PlannedCareContIndicator": "Y",
                    "IAPTLTCServiceInd": ltc_flag,
                    "ConsMechanism": "01",
                }
            )
            rows["IDS202CareActivity"].append(
                {
                    "CareActId": f"{ccid}-1",
                    "CareContactId": ccid,
                    "CodeProcAndProcStatus": "304891004",
                }
            )
        for score in scores(p):
            if _in(score.day, month):
                rows["IDS606CodedScoreAssessmentRefer"].append(
                    {
                        "ServiceRequestId": p.srid,
                        "CodedAssToolType": score.tool,
                        "PersScore": str(score.value),
                        "AssToolCompDate": score.day.isoformat(),
                        "AssToolCompTime": "10:30:00",
                    }
                )
        if "tool" in p.bad and p.first_treatment is not None and _in(p.first_treatment, month):
            rows["IDS606CodedScoreAssessmentRefer"].append(
                {
                    "ServiceRequestId": p.srid,
                    "CodedAssToolType": "123456789",
                    "PersScore": "4",
                    "AssToolCompDate": p.first_treatment.isoformat(),
                    "AssToolCompTime": "10:45:00",
                }
            )
    for table, table_rows in rows.items():
        _write(folder, table, table_rows)


EXPORT_COLUMNS = [
    "pathway_id",
    "referral_identifier_system",
    "referral_identifier",
    "nhs_number",
    "service_ods",
    "referral_received_date",
    "discharge_date",
    "problem_descriptor",
    "ltc_snomed",
    "treatment_contacts",
    "end_code",
    "phq9_first",
    "phq9_last",
    "gad7_first",
    "gad7_last",
    "adsm",
    "adsm_first",
    "adsm_last",
    "wsas_first",
    "wsas_last",
    "first_score_date",
    "last_score_date",
    "consent_share_outcomes",
    "first_treatment_date",
]


def export_row(p: Pathway) -> dict[str, str]:
    """The pathway as an episode export row: what its data-set rows say."""
    by_tool: dict[str, list[_Score]] = {}
    for score in scores(p):
        by_tool.setdefault(score.tool, []).append(score)

    def first(tool: str) -> str:
        found = by_tool.get(tool, [])
        return str(found[0].value) if found else ""

    def last(tool: str) -> str:
        found = by_tool.get(tool, [])
        return str(found[-1].value) if len(found) > 1 else ""

    days = [s.day for s in scores(p)]
    lasts = [found[-1].day for found in by_tool.values() if len(found) > 1]
    system, identifier = p.referral or (PATHWAY_SYSTEM, p.pathway_id)
    return {
        "pathway_id": p.pathway_id,
        "referral_identifier_system": system,
        "referral_identifier": identifier,
        "nhs_number": p.nhs or "",
        "service_ods": p.provider,
        "referral_received_date": p.received.isoformat(),
        "discharge_date": p.discharge.isoformat() if p.discharge else "",
        "problem_descriptor": p.descriptor or "",
        "ltc_snomed": p.ltc or "",
        "treatment_contacts": str(len(p.treatment_dates())),
        "end_code": p.end,
        "phq9_first": first(PHQ9),
        "phq9_last": last(PHQ9),
        "gad7_first": first(GAD7),
        "gad7_last": last(GAD7),
        "adsm": "SPIN" if p.spin else "",
        "adsm_first": first(SPIN) if p.spin else "",
        "adsm_last": last(SPIN) if p.spin else "",
        "first_score_date": min(days).isoformat() if days else "",
        "last_score_date": max(lasts).isoformat() if lasts else "",
        "consent_share_outcomes": "Y" if p.referral and p.share else "",
        "first_treatment_date": p.first_treatment.isoformat() if p.first_treatment else "",
    }


def main() -> None:
    everything = pathways()
    for month in MONTHS:
        for provider in sorted({p.provider for p in everything}):
            submission(provider, month, everything)
    with EXPORT.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for p in everything:
            writer.writerow(export_row(p))
    print(f"{OUT.relative_to(ROOT)}/ and {EXPORT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
