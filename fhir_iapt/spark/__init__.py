"""Batch conversion on Apache Spark (and Databricks): the ``spark`` extra,
``pip install 'fhir-iapt[spark]'`` (PySpark 4 with pandas and pyarrow; a JRE where Spark runs).

The single-process CLI stays the default; this is for years of exports across dozens of
clinics. Every record goes through the same pipeline as ``fhir-iapt convert`` (read, map, gate,
build, the first-bundle shape check), per partition in ``mapInArrow``, so the output is the
CLI's: the same ids, the same bytes per resource, the same rejects with the same locations::

    from fhir_iapt import spark as fs

    conv = fs.convert_files(spark, ["/Volumes/main/clinics/exports/diabetes.csv"],
                            mapping="diabetes-csv")
    conv.bundles      # DataFrame: key, kind, bundle (JSON), location
    conv.resources    # the Bulk Data layout: resourceType, id, resource (JSON)
    conv.rejects      # OperationOutcome JSON with the record's file, row, line
    fs.write_output(conv, "/Volumes/main/clinics/out", layout="bulk")  # as convert --out

* :func:`convert` takes any DataFrame of records: :func:`read_files`' (the project's readers
  ran in the executors: exact row numbers and read errors), a column per CSV field (e.g.
  ``spark.read.csv``, numbered by :func:`with_row_numbers`), or a column of JSON / XML record
  text. :func:`convert_files` is both steps; :func:`outcome_files` the same for episode
  exports (``fhir-iapt outcomes``); :func:`dataset_outcomes` for the NHS Talking Therapies
  Data Set's tables, one task per provider (``outcomes --dataset tt-v2.1``), and
  :func:`pathway_kpis` for the pathway report's KPIs of them (``kpis.csv`` as a DataFrame).
* The mapping file and the lookup tables beside it travel with the job and are compiled once
  per executor process (a cache keyed by their content); so are the shape check with the
  validator's profiles, a consent register's files and the ledger's snapshot. Nothing is loaded
  per record or per task.
* :func:`write_output` converts once and writes the CLI's files (bundles.ndjson or one
  ``<Type>.ndjson`` per type, rejects.ndjson, summary.json) or Parquet;
  :func:`record_ledger` records the converted referrals in a referral ledger.

Importing :mod:`fhir_iapt` never imports this package (nor PySpark).
"""

from __future__ import annotations

from fhir_iapt.spark._api import (
    OUTCOMES_MAPPING,
    Conversion,
    convert,
    convert_files,
    outcome_files,
    read_files,
)
from fhir_iapt.spark._convert import RESOURCES_DDL, RESULTS_DDL, bundle_resources
from fhir_iapt.spark._dataset import DATASET_OPTIONS, dataset_outcomes
from fhir_iapt.spark._kpis import KPIS_DDL, pathway_kpis
from fhir_iapt.spark._records import RECORDS_DDL, with_row_numbers
from fhir_iapt.spark._worker import MappingSource
from fhir_iapt.spark._write import record_ledger, write_output

__all__ = [
    "DATASET_OPTIONS",
    "KPIS_DDL",
    "OUTCOMES_MAPPING",
    "RECORDS_DDL",
    "RESOURCES_DDL",
    "RESULTS_DDL",
    "Conversion",
    "MappingSource",
    "bundle_resources",
    "convert",
    "convert_files",
    "dataset_outcomes",
    "outcome_files",
    "pathway_kpis",
    "read_files",
    "record_ledger",
    "with_row_numbers",
    "write_output",
]
