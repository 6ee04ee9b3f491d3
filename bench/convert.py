"""Conversion benchmark: records/s and peak memory against a floor measured in the same run.

    python bench/convert.py                       # 10k and 1M rows
    python bench/convert.py --rows 10000 --runs 5
    python bench/convert.py --compare-workers --rows 50000   # --workers 1 vs 2 vs 0

For each N it generates a diabetes-clinic CSV export (every row referred and consented, full
PHQ-9 and GAD-7: the most work per row), then, each in a fresh process so peak RSS is its own:

* ``convert``  - the real path: ``convert_files`` + ``NdjsonBundleWriter`` with validation on:
                 every record's values checked at the map stage, and the real validator's
                 first-bundle shape check, remembered in a ShapeCache. A warm-up run on a
                 small file fills that cache first; its cost (loading the validator, once per
                 mapping/profiles/code version) is printed separately, not folded into rates,
* ``floor``    - parsing the same CSV (csv.DictReader) and orjson-serialising the same output
                 bundles (read back from the convert run; only the serialisation is timed).

It prints medians over ``--runs`` and the ratio convert/floor. The machine is shared and noisy:
read ratios and medians, not single figures.

``--compare-workers`` instead runs the convert child with ``--workers`` 1, 2 and 0 (0 = one per
CPU, as the CLI reads it), interleaved run by run, and prints each one's records/s, the ratios
to ``--workers 1`` and whether every run wrote byte-identical ``bundles.ndjson``. CPU seconds
(the process and its workers) are printed too: on a loaded machine they show what the workers
cost even when wall time cannot.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

COLUMNS = (
    [
        "clinic_record_id",
        "nhs_number",
        "family_name",
        "given_name",
        "birth_date",
        "sex",
        "gp_practice_ods",
        "clinic_ods",
        "review_date",
        "diabetes_type",
        "hba1c_mmol_mol",
    ]
    + [f"phq9_q{i}" for i in range(1, 11)]
    + [f"gad7_q{i}" for i in range(1, 8)]
    + [
        "phq2_q1",
        "phq2_q2",
        "gad2_q1",
        "gad2_q2",
        "referrer_code",
        "referrer_name",
        "refer",
        "consent_refer",
        "consent_share_outcomes",
        "reason",
    ]
)


def _nhs_numbers(start: int) -> Iterator[str]:
    from fhir_iapt.nhs_number import check_digit

    # Cycle through the 999 test range (about 910k valid numbers): a long export repeats
    # patients, as real ones do, and never leaves 9 digits.
    n = start
    while True:
        digits = f"{999_000_000 + (n - 999_000_000) % 1_000_000:09d}"
        check = check_digit(digits)
        if check is not None:
            yield f"{digits}{check}"
        n += 1


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    numbers = _nhs_numbers(999_000_000)
    base = date(2026, 1, 5)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        for i in range(rows):
            nhs = next(numbers)
            review = base + timedelta(days=i % 300)
            row = [
                f"DM-{i:08d}",
                f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}",
                "Testpatient",
                "Alex",
                (date(1950, 1, 1) + timedelta(days=rng.randrange(20000))).isoformat(),
                rng.choice("MFU"),
                "A81001",
                "RX1CC",
                review.isoformat(),
                rng.choice(["T1", "T2", "other"]),
                f"{rng.uniform(40, 110):.1f}",
            ]
            row += [str(rng.randrange(4)) for _ in range(10)]
            row += [str(rng.randrange(4)) for _ in range(7)]
            row += ["", "", "", ""]
            row += [
                "555123456789",
                "Dr Example",
                "Y",
                "Y",
                rng.choice("YN"),
                "Low mood affecting diabetes self-care",
            ]
            out.writerow(row)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its (finished) worker processes."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def child_convert(src: Path, out: Path, workers: int, cache: Path) -> dict[str, float]:
    from fhir_iapt.cli._run import effective_workers
    from fhir_iapt.emit import NdjsonBundleWriter
    from fhir_iapt.mapping import load_mapping
    from fhir_iapt.pipeline import ShapeCache, convert_files
    from fhir_iapt.results import Converted

    workers = effective_workers(workers)
    mapping = load_mapping("diabetes-csv")
    start = time.perf_counter()
    cpu_start = _cpu_seconds()
    n = converted = 0
    with NdjsonBundleWriter(out) as writer:
        for result in convert_files(
            [src], mapping=mapping, workers=workers, shape_cache=ShapeCache(cache)
        ):
            n += 1
            if isinstance(result, Converted):
                converted += 1
                writer.write(result)
    seconds = time.perf_counter() - start
    if converted != n:
        raise SystemExit(f"benchmark input should convert whole: {converted} of {n}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "records": n,
        "peak_rss_mib": _peak_rss_mib(),
        "worker_peak_rss_mib": children,
        "cpu_seconds": _cpu_seconds() - cpu_start,
    }


def child_floor(src: Path, bundles: Path) -> dict[str, float]:
    import orjson

    start = time.perf_counter()
    n = 0
    with src.open(newline="", encoding="utf-8") as fh:
        for _row in csv.DictReader(fh):
            n += 1
    parse = time.perf_counter() - start
    dump = 0.0
    with bundles.open("rb") as fh:
        for line in fh:
            bundle = orjson.loads(line)
            t0 = time.perf_counter()
            orjson.dumps(bundle)
            dump += time.perf_counter() - t0
    return {"seconds": parse + dump, "records": n, "peak_rss_mib": _peak_rss_mib()}


def _run_child(*args: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="10000,1000000", help="comma-separated row counts")
    parser.add_argument("--runs", type=int, default=3, help="runs per size (median reported)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--compare-workers",
        action="store_true",
        help="compare --workers 1, 2 and 0 (one per CPU) in one run instead of the floor",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        kind, *rest = ns.child
        if kind == "convert":
            result = child_convert(Path(rest[0]), Path(rest[1]), int(rest[2]), Path(rest[3]))
        else:
            result = child_floor(Path(rest[0]), Path(rest[1]))
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "shape-cache"
        warm_src = Path(tmp) / "warm.csv"
        generate(warm_src, 20)
        (Path(tmp) / "warm-out").mkdir()
        warm = _run_child(
            "convert", str(warm_src), str(Path(tmp) / "warm-out"), str(ns.workers), str(cache)
        )
        print(
            f"one-off shape check (loads the R4 + profile validator): {warm['seconds']:.1f} s, "
            f"peak {warm['peak_rss_mib']:.0f} MiB"
        )
        if ns.compare_workers:
            _compare_workers(Path(tmp), cache, [int(r) for r in ns.rows.split(",")], ns.runs)
            return
        print(
            f"{'rows':>9} {'convert rec/s':>14} {'floor rec/s':>12} {'ratio':>6} "
            f"{'convert MiB':>12} {'floor MiB':>10}"
        )
        for rows in (int(r) for r in ns.rows.split(",")):
            src = Path(tmp) / f"diabetes-{rows}.csv"
            generate(src, rows)
            runs = ns.runs if rows <= 100_000 else 1
            conv, floor = [], []
            for run in range(runs):
                out = Path(tmp) / f"out-{rows}-{run}"
                out.mkdir()
                conv.append(_run_child("convert", str(src), str(out), str(ns.workers), str(cache)))
                floor.append(_run_child("floor", str(src), str(out / "bundles.ndjson")))
            c = statistics.median(r["seconds"] for r in conv)
            f = statistics.median(r["seconds"] for r in floor)
            print(
                f"{rows:>9} {rows / c:>14,.0f} {rows / f:>12,.0f} {c / f:>6.1f} "
                f"{max(r['peak_rss_mib'] for r in conv):>12.0f} "
                f"{max(r['peak_rss_mib'] for r in floor):>10.0f}"
            )
            sys.stdout.flush()


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _compare_workers(tmp: Path, cache: Path, sizes: list[int], runs: int) -> None:
    counts = (1, 2, 0)
    print(
        f"{'rows':>9} {'workers':>7} {'rec/s':>9} {'x w1':>6} {'cpu s':>7} "
        f"{'MiB':>5} {'worker MiB':>10}"
    )
    for rows in sizes:
        src = tmp / f"diabetes-{rows}.csv"
        generate(src, rows)
        results: dict[int, list[dict[str, float]]] = {w: [] for w in counts}
        digests: set[str] = set()
        for run in range(runs):
            for workers in counts:  # interleaved: each count sees the same machine load
                out = tmp / f"out-{rows}-{run}-w{workers}"
                out.mkdir()
                results[workers].append(
                    _run_child("convert", str(src), str(out), str(workers), str(cache))
                )
                digests.add(_digest(out / "bundles.ndjson"))
                (out / "bundles.ndjson").unlink()
        base = statistics.median(r["seconds"] for r in results[1])
        for workers in counts:
            seconds = statistics.median(r["seconds"] for r in results[workers])
            cpu = statistics.median(r["cpu_seconds"] for r in results[workers])
            print(
                f"{rows:>9} {workers:>7} {rows / seconds:>9,.0f} {base / seconds:>6.2f} "
                f"{cpu:>7.1f} {max(r['peak_rss_mib'] for r in results[workers]):>5.0f} "
                f"{max(r['worker_peak_rss_mib'] for r in results[workers]):>10.0f}"
            )
        same = "byte-identical" if len(digests) == 1 else "DIFFERENT OUTPUTS"
        print(f"{rows:>9} outputs of every run and worker count: {same}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
