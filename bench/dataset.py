"""Data set benchmark: pathways/s and peak memory of reading a generated multi-month NHS Talking
Therapies Data Set, against a floor measured in the same run.

    python bench/dataset.py                          # 100k pathways over 6 months
    python bench/dataset.py --pathways 20000 --months 3 --runs 3
    python bench/dataset.py --keep /tmp/ds            # keep the generated tables there
    python bench/dataset.py --parquet                 # also the same tables as Parquet

It generates one folder per month (one provider, a Primary each), each with the nine tables as
CSV: a referral, its patient and presenting complaint in every month it is open, an LTC for a
third of them, weekly contacts (an assessment, then 0-12 treatment sessions, some DNA) with one
care activity each and a PHQ-9 and GAD-7 (IDS607) at each, discharged a week after the last
session when that falls in the window. Then, each in a fresh process so peak RSS is its own:

* ``read``   - the real path: ``fhir_iapt.dataset.read_dataset`` over the directory, every
               pathway derived (rows checked, loaded into SQLite, joined, first/last scores),
* ``floor``  - ``csv.reader`` over the same files, counting rows (what reading them costs at all),
* ``parquet`` (with ``--parquet``) - ``read_dataset`` over the same tables written as Parquet
               (every column text, 65,536-row groups): the ratio parquet/read says what the
               Parquet path costs beside the CSV one; the pathways must be the same count.

It prints, per run and as medians over ``--runs``: rows, pathways, seconds, pathways/s, rows/s,
the ratio read/floor and each process's peak resident size (VmHWM). The machine is shared and
noisy: read ratios and medians, not single figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

TABLES: dict[str, list[str]] = {
    "IDS000Header": [
        "OrgIDProv",
        "ReportingPeriodStartDate",
        "ReportingPeriodEndDate",
        "DateTimeDatSetCreate",
        "File_Type",
    ],
    "IDS001MPI": ["LocalPatientId", "NHSNumber"],
    "IDS101Referral": [
        "ServiceRequestId",
        "LocalPatientId",
        "ReferralRequestReceivedDate",
        "ServDischDate",
        "EndCode",
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
_PHQ9, _GAD7 = "720433000", "445455005"
_DESCRIPTORS = ("F41.1", "F32.1", "F41.2", "F40.1", "F43.1", "F42")
_LTCS = ("44054006", "195967001", "13645005", "84114007")


def _month_starts(first: date, months: int) -> list[date]:
    out = [first]
    for _ in range(months):
        d = out[-1]
        out.append(date(d.year + (d.month == 12), d.month % 12 + 1, 1))
    return out  # months + 1 boundaries


def _nhs_number(i: int) -> str:
    from fhir_iapt.nhs_number import check_digit

    n = 900000000 + i * 7
    while True:
        first_nine = str(n)[-9:].rjust(9, "0")
        check = check_digit(first_nine)
        if check is not None:
            return f"{first_nine}{check}"
        n += 1


def generate(
    directory: Path,
    *,
    pathways: int,
    months: int = 6,
    seed: int = 1,
    provider: str = "RXX",
    max_sessions: int = 12,
) -> int:
    """Write the data set under ``directory`` (one folder per month); return the rows written."""
    rng = random.Random(seed)
    bounds = _month_starts(date(2024, 4, 1), months)
    start, stop = bounds[0], bounds[-1]
    span = (stop - start).days
    rows = 0
    with ExitStack() as stack:
        writers: list[dict[str, Any]] = []
        for m in range(months):
            folder = directory / f"{bounds[m]:%Y-%m}"
            folder.mkdir(parents=True, exist_ok=True)
            month: dict[str, Any] = {}
            for table, header in TABLES.items():
                fh = stack.enter_context((folder / f"{table}.csv").open("w", newline=""))
                month[table] = csv.writer(fh)
                month[table].writerow(header)
            month["IDS000Header"].writerow(
                [
                    provider,
                    bounds[m].isoformat(),
                    (bounds[m + 1] - timedelta(days=1)).isoformat(),
                    f"{bounds[m + 1] + timedelta(days=9)}T09:00:00",
                    "Primary",
                ]
            )
            writers.append(month)

        def month_of(d: date) -> int:
            return next(i for i in range(months) if bounds[i] <= d < bounds[i + 1])

        for i in range(pathways):
            srid, lpid = f"R{i:07d}", f"P{i:07d}"
            received = start + timedelta(days=rng.randrange(span))
            sessions = rng.randrange(max_sessions + 1)
            contacts: list[tuple[date, str, str]] = []  # date, AttendOrDNACode, AppType
            day = received + timedelta(days=rng.randrange(1, 21))
            for k in range(sessions + 1):
                if day >= stop:
                    break
                attend = "3" if rng.random() < 0.1 else rng.choice(("5", "05", "6"))
                contacts.append((day, attend, "01" if k == 0 else "02"))
                day += timedelta(days=7)
            discharge = contacts[-1][0] + timedelta(days=7) if contacts else None
            if discharge is not None and (discharge >= stop or rng.random() < 0.2):
                discharge = None
            last_month = month_of(discharge) if discharge else months - 1
            descriptor = rng.choice(_DESCRIPTORS)
            ltc = rng.choice(_LTCS) if i % 3 == 0 else None
            nhs = _nhs_number(i)
            for m in range(month_of(received), last_month + 1):
                w = writers[m]
                w["IDS001MPI"].writerow([lpid, nhs])
                w["IDS101Referral"].writerow(
                    [
                        srid,
                        lpid,
                        received.isoformat(),
                        discharge.isoformat() if discharge and m == last_month else "",
                        "46" if discharge and m == last_month else "",
                    ]
                )
                w["IDS603PresentingComplaints"].writerow(
                    [srid, "01", descriptor, "1", received.isoformat()]
                )
                rows += 3
                if ltc:
                    w["IDS602LongTermCondition"].writerow([srid, "04", ltc])
                    rows += 1
            phq, gad = rng.randrange(10, 28), rng.randrange(8, 22)
            for n, (when, attend, app) in enumerate(contacts):
                w = writers[month_of(when)]
                ccid, caid = f"C{i:07d}{n:02d}", f"A{i:07d}{n:02d}"
                w["IDS201CareContact"].writerow(
                    [
                        ccid,
                        srid,
                        when.isoformat(),
                        "10:00:00",
                        attend,
                        app,
                        "Y",
                        "Y" if ltc else "N",
                    ]
                )
                w["IDS202CareActivity"].writerow([caid, ccid, "304891004"])
                rows += 2
                if attend != "3":
                    phq, gad = max(0, phq - rng.randrange(3)), max(0, gad - rng.randrange(3))
                    w["IDS607CodedScoreAssessmentAct"].writerow([caid, _PHQ9, str(phq)])
                    w["IDS607CodedScoreAssessmentAct"].writerow(
                        [caid, _GAD7, str(gad) if n % 5 else "NA"]
                    )
                    rows += 2
    return rows


_READ = """
import json, sys, time
from fhir_iapt.dataset import read_dataset
from fhir_iapt.results import Rejected
t = time.perf_counter()
n = bad = 0
for item in read_dataset(sys.argv[1]):
    if isinstance(item, Rejected):
        bad += 1
    else:
        n += 1
elapsed = time.perf_counter() - t
with open("/proc/self/status") as status:
    peak = int(next(l for l in status if l.startswith("VmHWM:")).split()[1]) * 1024
print(json.dumps({"pathways": n, "rejected": bad, "seconds": elapsed, "peak": peak}))
"""
_FLOOR = """
import csv, json, sys, time
from pathlib import Path
t = time.perf_counter()
rows = 0
for path in sorted(Path(sys.argv[1]).rglob("*.csv")):
    with path.open(newline="") as fh:
        rows += sum(1 for _ in csv.reader(fh)) - 1
elapsed = time.perf_counter() - t
with open("/proc/self/status") as status:
    peak = int(next(l for l in status if l.startswith("VmHWM:")).split()[1]) * 1024
print(json.dumps({"rows": rows, "seconds": elapsed, "peak": peak}))
"""


def to_parquet(directory: Path, target: Path) -> None:
    """The same tables as Parquet under ``target`` (same folders), every column text."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    for path in sorted(directory.rglob("*.csv")):
        out = target / path.relative_to(directory).with_suffix(".parquet")
        out.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as fh:
            header = fh.readline().decode().strip().split(",")
        table = pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string())),
        )
        pq.write_table(table, out, row_group_size=65_536)


def _child(code: str, directory: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code, str(directory)], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pathways", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    parser.add_argument("--parquet", action="store_true", help="also read the tables as Parquet")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dataset-") as tmp:
        directory = args.keep or Path(tmp) / "csv"
        t = time.perf_counter()
        rows = generate(directory, pathways=args.pathways, months=args.months)
        print(
            f"generated {args.pathways:,} pathways, {rows:,} rows over {args.months} months "
            f"in {time.perf_counter() - t:.1f} s"
        )
        parquet_dir = Path(tmp) / "parquet"
        if args.parquet:
            to_parquet(directory, parquet_dir)
        reads, floors, parquets = [], [], []
        for run in range(args.runs):
            floor = _child(_FLOOR, directory)
            read = _child(_READ, directory)
            floors.append(floor)
            reads.append(read)
            if args.parquet:
                parquet = _child(_READ, parquet_dir)
                parquets.append(parquet)
                assert parquet["pathways"] == read["pathways"], "Parquet gave other pathways"
                print(
                    f"run {run + 1}: parquet {parquet['pathways']:,} pathways in "
                    f"{parquet['seconds']:.1f} s, peak {parquet['peak'] / 2**20:.0f} MB"
                )
            print(
                f"run {run + 1}: read {read['pathways']:,} pathways ({read['rejected']} "
                f"rejected) in {read['seconds']:.1f} s = "
                f"{read['pathways'] / read['seconds']:,.0f} pathways/s, "
                f"{floor['rows'] / read['seconds']:,.0f} rows/s, "
                f"peak {read['peak'] / 2**20:.0f} MB | "
                f"floor csv.reader {floor['rows']:,} rows in {floor['seconds']:.2f} s, "
                f"peak {floor['peak'] / 2**20:.0f} MB"
            )
        r = statistics.median(x["seconds"] for x in reads)
        f = statistics.median(x["seconds"] for x in floors)
        print(
            f"median: read {r:.1f} s ({reads[0]['pathways'] / r:,.0f} pathways/s, "
            f"{floors[0]['rows'] / r:,.0f} rows/s), floor {f:.2f} s, read/floor {r / f:.1f}x, "
            f"peak read {statistics.median(x['peak'] for x in reads) / 2**20:.0f} MB"
        )
        if parquets:
            q = statistics.median(x["seconds"] for x in parquets)
            print(
                f"median: parquet {q:.1f} s ({reads[0]['pathways'] / q:,.0f} pathways/s), "
                f"parquet/read {q / r:.2f}x, "
                f"peak parquet {statistics.median(x['peak'] for x in parquets) / 2**20:.0f} MB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
