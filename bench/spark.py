"""Spark benchmark: rows/s of fhir_iapt.spark at local[1] and local[2] against the single-process
``fhir-iapt convert`` on the same generated export, in one run.

    python bench/spark.py                       # 1M rows
    python bench/spark.py --rows 100000
    python bench/spark.py --rows 50000 --masters 'local[2]'

The export is bench/convert.py's (a diabetes-clinic CSV, every row referred and consented, full
PHQ-9 and GAD-7: the most work per row). Each side runs in a fresh process and does the whole
job of ``convert --out``: read, map, build, the first-bundle shape check (its validator loaded
by a warm-up run on 20 rows first, not in the timed figure), bundles.ndjson, rejects.ndjson,
summary.json and the referral ledger:

* ``cli``       - ``fhir-iapt convert EXPORT --mapping diabetes-csv --out ... --ledger ...``
                  (a subprocess; the wall time includes its start-up, about a second),
* ``local[N]``  - ``fhir_iapt.spark.convert_files`` + ``write_output(..., ledger=...)`` on a
                  SparkSession with that master (started before the clock, its start-up
                  printed apart; the warm-up conversion also starts the Python workers).

It prints each side's seconds and rows/s, the ratio to the CLI, its CPU seconds (the process
and everything below it: Spark's JVM, Python daemon and workers), whether the bundles are the
same lines (an order-free digest of bundles.ndjson), and ``uptime`` before and after: the
machine is shared, so read the ratios, which the same load moves on both sides, and the CPU
seconds, which it does not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(uptime unavailable)"


def _digest(path: Path) -> tuple[int, str]:
    """(lines, an order-free digest: the sum of the lines' SHA-256 modulo 2**256)."""
    total = count = 0
    with path.open("rb") as fh:
        for line in fh:
            total = (total + int.from_bytes(hashlib.sha256(line).digest(), "big")) % (1 << 256)
            count += 1
    return count, f"{total:064x}"[:16]


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of process ``root`` and every process below it, with the
    children they have waited for (Spark's JVM, its Python daemon and workers)."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    below = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in below and pid not in below:
                below.add(pid)
                grew = True
    return sum(times.get(pid, 0) for pid in below) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cli(src: Path, out: Path, ledger: Path, env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    cpu = _children_cpu()
    proc = subprocess.run(
        [
            sys.executable, "-m", "fhir_iapt.cli", "convert", str(src), "--mapping",
            "diabetes-csv", "--out", str(out), "--ledger", str(ledger),
        ],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"fhir-iapt convert failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, _children_cpu() - cpu


def _cores(master: str) -> str:
    """``local[N]``'s N (``*`` as every CPU), for the shuffle partitions."""
    inner = master.removeprefix("local[").removesuffix("]")
    if inner == "*":
        return str(os.cpu_count() or 1)
    return inner if inner.isdigit() else "1"


def child_spark(master: str, src: Path, warm: Path, out: Path, ledger: Path) -> dict[str, float]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    from fhir_iapt import spark as fs

    t0 = time.perf_counter()
    spark = (
        SparkSession.builder.master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", _cores(master))
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter() - t0
    fs.write_output(fs.convert_files(spark, [warm], "diabetes-csv"), out.parent / "warm-out")
    t1 = time.perf_counter()
    cpu = _tree_cpu(os.getpid())
    summary = fs.write_output(fs.convert_files(spark, [src], "diabetes-csv"), out, ledger=ledger)
    seconds = time.perf_counter() - t1
    cpu = _tree_cpu(os.getpid()) - cpu
    spark.stop()
    return {"seconds": seconds, "cpu": cpu, "startup": started, "records": summary["records"]}


def _run_child(env: dict[str, str], *args: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(f"spark child failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the export")
    parser.add_argument("--masters", default="local[1],local[2]", help="comma-separated masters")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        master, src, warm, out, ledger = ns.child
        result = child_spark(master, Path(src), Path(warm), Path(out), Path(ledger))
        print(json.dumps(result))
        return

    sys.path.insert(0, str(HERE))
    from convert import generate

    print(f"before: {_uptime()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache")}
        src, warm = root / f"diabetes-{ns.rows}.csv", root / "warm.csv"
        generate(src, ns.rows)
        generate(warm, 20)
        print(f"export: {ns.rows:,} rows, {src.stat().st_size / 1e6:,.0f} MB")
        _cli(warm, root / "warm-cli", root / "warm-ledger.sqlite", env)  # fills the shape cache
        cli_seconds, cli_cpu = _cli(src, root / "cli", root / "cli-ledger.sqlite", env)
        reference = _digest(root / "cli" / "bundles.ndjson")
        shutil.rmtree(root / "cli")
        rows = [("cli", cli_seconds, cli_cpu, None, reference)]
        for master in ns.masters.split(","):
            out = root / f"spark-{_cores(master)}"
            out.mkdir()
            result = _run_child(
                env, master, str(src), str(warm), str(out / "out"), str(out / "ledger.sqlite")
            )
            if int(result["records"]) != ns.rows:
                raise SystemExit(f"{master}: {result['records']} records, expected {ns.rows}")
            digest = _digest(out / "out" / "bundles.ndjson")
            rows.append((master, result["seconds"], result["cpu"], result["startup"], digest))
            shutil.rmtree(out)
        print(
            f"{'run':>9} {'seconds':>8} {'rows/s':>8} {'x cli':>6} {'cpu s':>7} "
            f"{'start-up':>9}  bundles"
        )
        for name, seconds, cpu, startup, digest in rows:
            same = "same lines" if digest == reference else "DIFFERENT LINES"
            up = f"{startup:>8.1f}s" if startup is not None else f"{'':>9}"
            print(
                f"{name:>9} {seconds:>8.1f} {ns.rows / seconds:>8,.0f} "
                f"{cli_seconds / seconds:>6.2f} {cpu:>7.1f} {up}  {digest[0]:,} {same}"
            )
    print(f"after: {_uptime()}")


if __name__ == "__main__":
    main()
