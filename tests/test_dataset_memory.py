"""Data set reading streams: 20k pathways read with the same peak memory as 2k (flat)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

_BENCH = Path(__file__).resolve().parents[1] / "bench" / "dataset.py"
# The child's own peak is VmHWM (ru_maxrss would also hold the forking pytest's peak).
_CHILD = """
import json, sys
from fhir_iapt.dataset import read_dataset
from fhir_iapt.results import Rejected
n = bad = 0
for item in read_dataset(sys.argv[1]):
    if isinstance(item, Rejected):
        bad += 1
    else:
        n += 1
with open("/proc/self/status") as status:
    peak = int(next(l for l in status if l.startswith("VmHWM:")).split()[1]) * 1024
print(json.dumps({"pathways": n, "rejected": bad, "peak": peak}))
"""


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_dataset", _BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _peak(directory: Path) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(directory)], check=True, capture_output=True, text=True
    )
    result: dict[str, int] = json.loads(out.stdout)
    return result


def test_twenty_thousand_pathways_read_in_flat_memory(tmp_path: Path) -> None:
    """Peak RSS reading 20k pathways is within 16 MB of 2k (the 8 MB SQLite page cache fills)."""
    bench = _bench()
    small, large = tmp_path / "small", tmp_path / "large"
    bench.generate(small, pathways=2_000, months=3, max_sessions=2)
    bench.generate(large, pathways=20_000, months=3, max_sessions=2)
    base, big = _peak(small), _peak(large)
    assert (base["pathways"], big["pathways"]) == (2_000, 20_000)
    assert base["rejected"] == big["rejected"] == 0
    growth = big["peak"] - base["peak"]
    print(f"peak RSS 2k: {base['peak'] / 2**20:.1f} MB, 20k: {big['peak'] / 2**20:.1f} MB")
    assert growth < 16 * 2**20, f"peak grew by {growth / 2**20:.1f} MB"
