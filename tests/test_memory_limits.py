"""Memory under a cap: hostile inputs through ``fhir-iapt convert`` in a child process whose
address space is capped, each ending in a located rejection with the other records written,
at a peak resident size far below the cap.

The cap is RLIMIT_AS (address space), which counts virtual memory, not only what is resident:
the interpreter and the package take ~35 MB resident but ~60 MB of address space, and with
``--workers`` the parent's threads (the pool's queue feeder and manager) each reserve a stack
and a 64 MB malloc arena, so a parent at ~35 MB resident has ~260 MB of address space. 1 GiB
leaves that room and still stops a runaway (100k nested arrays once grew the relay to 17.7 GB);
the workers inherit the cap. The bound asserted is on the peak resident size (VmHWM of the
process, ``ru_maxrss`` of its largest worker): at most 300 MB, the issue's bound for one 10 MB
input, and for one process at most 64 MB above what it had after importing (the over-long line
is never held whole).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CAP = 1 << 30  # bytes of address space
PEAK = 300 << 20  # bytes resident, the bound for a single 10 MB input
GROWTH = 64 << 20  # bytes resident above the post-import baseline, one process
TEN_MB = 10_000_000
NAME = "Hartley"

# The process's own peak is VmHWM (this program's memory since exec): ru_maxrss of
# RUSAGE_SELF would also hold the peak of the pytest process it was forked from. The workers'
# is ru_maxrss of RUSAGE_CHILDREN (forked from this small process, so nothing else in it).
_CHILD = """
import json, resource, sys
def peak():
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
cap = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from fhir_iapt.cli import main
baseline = peak()
try:
    main(sys.argv[2:])
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({
    "exit": code,
    "baseline": baseline,
    "self": peak(),
    "workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
}))
"""


def _run(source: Path, mapping: str, out: Path, workers: int) -> dict[str, Any]:
    args = [
        "convert",
        str(source),
        "--mapping",
        mapping,
        "--validate",
        "none",
        "--workers",
        str(workers),
        "--out",
        str(out),
    ]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(CAP), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    figures: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return figures


def _ten_mb_inputs() -> dict[str, tuple[bytes, str]]:
    """Each example with one 10 MB value in its second record (so the first converts)."""
    csv = (EXAMPLES / "diabetes.csv").read_bytes()
    ndjson = (EXAMPLES / "cardiac.ndjson").read_bytes()
    array = (EXAMPLES / "cardiac.json").read_bytes()
    second_csv = csv.split(b"\n")[2].split(b",")[2]  # the second row's family name
    second_json = json.loads(ndjson.split(b"\n")[1])["patient"]["name"]["family"].encode()
    huge = b"H" * TEN_MB
    return {
        "a 10 MB CSV line": (csv.replace(second_csv, huge, 1), "diabetes-csv"),
        "a 10 MB NDJSON line": (
            ndjson.replace(b'"' + second_json + b'"', b'"' + huge + b'"', 1),
            "cardiac-json",
        ),
        "a 10 MB JSON value": (
            array.replace(b'"' + second_json + b'"', b'"' + huge + b'"', 1),
            "cardiac-json",
        ),
    }


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("case", list(_ten_mb_inputs()))
def test_a_10_mb_value_is_rejected_in_bounded_memory(
    tmp_path: Path, case: str, workers: int
) -> None:
    """The record holding 10 MB is FI105, the first record converts, summary.json is written,
    exit 1; peak resident size at most 300 MB (parent and each worker), and in one process at
    most 64 MB above its size after importing (it used to read the line whole: NDJSON +78 MB,
    and the record converted)."""
    body, mapping = _ten_mb_inputs()[case]
    source = tmp_path / ("in.csv" if mapping == "diabetes-csv" else "in.json")
    source.write_bytes(body)
    out = tmp_path / "out"
    figures = _run(source, mapping, out, workers)
    assert figures["exit"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rejected"] == {"FI105": 1}, summary
    assert summary["converted"] >= 1
    assert NAME.encode() in (out / "bundles.ndjson").read_bytes()  # the first record's bundle
    assert b"HHHH" not in (out / "rejects.ndjson").read_bytes()
    assert figures["self"] <= PEAK, figures
    assert figures["workers"] <= PEAK, figures
    if workers == 1:
        assert figures["self"] - figures["baseline"] <= GROWTH, figures


NESTED = 100_000


@pytest.mark.parametrize(
    ("layout", "body", "mapping", "code"),
    [
        ("array", b"[" + b"[" * NESTED + b"]" * NESTED + b"]", "cardiac-json", "FI104"),
        ("ndjson", b'{"a": ' + b"[" * NESTED + b"]" * NESTED + b"}\n", "cardiac-json", "FI101"),
        (
            "fhir bundle",
            b'{"resourceType": "Bundle",\n "entry": [' + b"[" * NESTED + b"]" * NESTED + b"]}",
            "questionnaire-response",
            "FI104",
        ),
    ],
    ids=["array", "ndjson", "fhir-bundle"],
)
def test_100k_nested_arrays_are_refused_in_bounded_memory(
    tmp_path: Path, layout: str, body: bytes, mapping: str, code: str
) -> None:
    """A 200 KB body of 100k nested arrays: one rejection, summary.json written, exit 1, at most
    300 MB resident (it grew the relay to 17.7 GB)."""
    good = (EXAMPLES / "cardiac.ndjson").read_bytes().split(b"\n")[0] + b"\n"
    source = tmp_path / "deep.json"
    source.write_bytes(good + body if layout == "ndjson" else body)
    out = tmp_path / "out"
    figures = _run(source, mapping, out, 1)
    assert figures["exit"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rejected"] == {code: 1}, summary
    if layout == "ndjson":
        assert summary["converted"] == 1
    assert figures["self"] <= PEAK, figures


def test_workers_hold_a_bounded_share_of_a_10_mb_input(tmp_path: Path) -> None:
    """Ten 1 MB NDJSON lines of small objects (each under the line limit, each decoding to
    ~22 MB) with --workers 2: at most 300 MB in the parent and in each worker (chunks were cut
    by record count only, so one chunk held all ten: 470 MB in the parent, 530 MB in a
    worker)."""
    line = b'{"visitId": "x", "a": [' + b"{}," * 340_000 + b"{}]}\n"
    source = tmp_path / "wide.ndjson"
    source.write_bytes(line * 10)
    out = tmp_path / "out"
    figures = _run(source, "cardiac-json", out, 2)
    assert figures["exit"] == 1
    assert json.loads((out / "summary.json").read_text())["records"] == 10
    assert figures["self"] <= PEAK, figures
    assert figures["workers"] <= PEAK, figures
