"""Validator cost: start-up (fhircraft import + model builds) and ms per resource.

Usage: python bench/validate_bench.py [N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

t0 = time.perf_counter()
from validate_helpers import RESOURCES, transaction_bundle  # noqa: E402

from fhir_iapt.fhir.validate import Validator  # noqa: E402

t1 = time.perf_counter()
validator = Validator()
validator.validate_bundle(transaction_bundle())  # builds every model once
t2 = time.perf_counter()
n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
print(f"import {t1 - t0:.1f}s, first bundle (model builds) {t2 - t1:.1f}s")
for name, resource in RESOURCES.items():
    start = time.perf_counter()
    for _ in range(n):
        validator.validate(resource)
    print(f"{name:24} {(time.perf_counter() - start) / n * 1000:6.2f} ms")
bundle = transaction_bundle()
start = time.perf_counter()
for _ in range(n):
    validator.validate_bundle(bundle)
per = (time.perf_counter() - start) / n * 1000
print(f"bundle of {len(bundle['entry'])}        {per:6.2f} ms ({per / 6:.2f} ms/resource)")
