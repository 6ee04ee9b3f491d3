"""One local Spark session for the whole test run (``local[2]``, small shuffles, no UI), and
the single-process CLI run the Spark outputs are compared with.

Spark needs a JRE (``java`` on PATH; ``.ci/run`` installs OpenJDK 17 when it is missing). The
Python workers run this interpreter, so they import the package under test.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
from click.testing import CliRunner

from fhir_iapt.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@cache
def session() -> Any:
    """The test run's SparkSession (started once, stopped at exit)."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("fhir-iapt-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.python.worker.reuse", "true")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    atexit.register(spark.stop)
    return spark


def cli(*args: str) -> int:
    """Run ``fhir-iapt ARGS`` in this process; its exit code."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code


def lines(path: Path) -> list[bytes]:
    """The lines of an NDJSON file, each with its line end."""
    return path.read_bytes().splitlines(keepends=True)


def summary(path: Path) -> dict[str, Any]:
    """summary.json's counts, inputs and data-set section (the keys both runs write)."""
    data = orjson.loads((path / "summary.json").read_bytes())
    keys = (
        "records",
        "converted",
        "skipped",
        "skipped_total",
        "rejected",
        "rejected_total",
        "inputs",
        "dataset",
    )
    return {k: data[k] for k in keys if k in data}


@cache
def bench_convert() -> ModuleType:
    """bench/convert.py (its export generator: every row referred and consented)."""
    spec = importlib.util.spec_from_file_location("bench_convert", ROOT / "bench" / "convert.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
