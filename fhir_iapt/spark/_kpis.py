"""The pathway report's KPIs as a DataFrame: ``fhir-iapt report DIR --dataset tt-v2.1``'s
``kpis.csv`` on Spark, one task per Talking Therapies provider.

Each task reads its provider's submissions (mirrored as for :mod:`fhir_iapt.spark._dataset`),
turns every pathway into the report's facts (:func:`~fhir_iapt.report._facts.facts_of_pathway`,
matched to the ledger's snapshot) and tallies them by provider, LTC pathway and month
(:class:`~fhir_iapt.report._kpis.PathwayTallies`); it sends back its tallies and the referrals
its pathways answered, never a pathway. The driver adds them up and computes the KPIs with the
report's own :func:`~fhir_iapt.report._kpis.counts_of` (the referral loop from the ledger's
referrals) and :func:`~fhir_iapt.report._kpis.kpi_value` (NHS England's publication rule), so
the figures are the report's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import astuple, fields
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pyarrow as pa  # type: ignore[import-untyped]

from fhir_iapt.dataset import DerivedPathway, dataset_spec, read_dataset
from fhir_iapt.dataset._submissions import find_submissions
from fhir_iapt.ledger import DEFAULT_WINDOW_DAYS, Ledger
from fhir_iapt.limits import Limits, current
from fhir_iapt.report._facts import facts_of_pathway
from fhir_iapt.report._kpis import PathwayTallies, _PathwayTally, counts_of, kpi_value
from fhir_iapt.report._model import Group
from fhir_iapt.spark import _worker
from fhir_iapt.spark._dataset import _mirror, _ship_ledger, _spark_file, ledger_file

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The tally fields, in order (the counts column of a group row).
_TALLY: Final = tuple(f.name for f in fields(_PathwayTally))
#: What a task sends back: a group's tally (``kind`` "group") or a ledger referral one of its
#: pathways answered (``kind`` "matched", ``outcome``: its outcome goes back).
TALLIES_ARROW: Final = pa.schema(
    [
        ("kind", pa.string()),
        ("provider", pa.string()),
        ("pathway", pa.string()),
        ("month", pa.string()),
        ("counts", pa.list_(pa.int64())),
        ("system", pa.string()),
        ("identifier", pa.string()),
        ("outcome", pa.bool_()),
    ]
)
TALLIES_DDL: Final = (
    "kind string, provider string, pathway string, month string, counts array<long>, "
    "system string, identifier string, outcome boolean"
)
#: The KPI DataFrame: ``kpis.csv``'s columns.
KPIS_DDL: Final = (
    "kpi string, provider string, pathway string, month string, numerator long, "
    "denominator long, rate double, note string, figures string"
)


class KpiTask:
    """mapInArrow over ``spark.range(len(groups))``: each id tallies one provider."""

    def __init__(
        self,
        root: str,
        groups: list[tuple[str, list[str]]],
        ledger_name: str | None,
        *,
        window_days: int,
        limits: Limits,
    ) -> None:
        self.root = root
        self.groups = groups
        self.ledger_name = ledger_name
        self.window_days = window_days
        self.limits = limits

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        _worker.task_started()
        for batch in batches:
            for index in batch.column(0).to_pylist():
                yield self._provider(int(index))

    def _provider(self, index: int) -> pa.RecordBatch:
        name = self.ledger_name
        ledger = _worker.ledger(name, lambda: _spark_file(name)) if name is not None else None
        tallies = PathwayTallies()
        _, labels = self.groups[index]
        with tempfile.TemporaryDirectory(prefix="fhir-iapt-kpis-") as scratch:
            mirror = _mirror(Path(self.root), labels, Path(scratch))
            for item in read_dataset(mirror, workdir=scratch, limits=self.limits):
                if isinstance(item, DerivedPathway):
                    facts = facts_of_pathway(item, ledger=ledger, window_days=self.window_days)
                    tallies.add(facts)
        rows: list[dict[str, object]] = [
            {
                "kind": "group",
                "provider": group.provider,
                "pathway": group.pathway,
                "month": group.month,
                "counts": list(astuple(tally)),
            }
            for group, tally in tallies.groups.items()
        ]
        rows += [
            {
                "kind": "matched",
                "system": system,
                "identifier": identifier,
                "outcome": (system, identifier) in tallies.outcomes,
            }
            for system, identifier in sorted(tallies.matched)
        ]
        return pa.RecordBatch.from_pylist(rows, schema=TALLIES_ARROW)


def _merged(rows: list[dict[str, object]]) -> PathwayTallies:
    tallies = PathwayTallies()
    for row in rows:
        if row["kind"] == "matched":
            key = (str(row["system"]), str(row["identifier"]))
            tallies.matched.add(key)
            if row["outcome"]:
                tallies.outcomes.add(key)
            continue
        group = Group(str(row["provider"]), str(row["pathway"]), str(row["month"]))
        counts = [int(n) for n in row["counts"]]  # type: ignore[attr-defined]
        known = tallies.groups.get(group)
        if known is not None:
            counts = [a + b for a, b in zip(astuple(known), counts, strict=True)]
        tallies.groups[group] = _PathwayTally(**dict(zip(_TALLY, counts, strict=True)))
    return tallies


def pathway_kpis(
    spark: SparkSession,
    directory: str | os.PathLike[str],
    *,
    ledger: str | os.PathLike[str] | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
    suppress: bool = True,
    limits: Limits | None = None,
) -> DataFrame:
    """The pathway report's KPIs of a NHS Talking Therapies Data Set v2.1 directory: one row
    per KPI and provider (for the referral loop, sending clinic), LTC pathway and month, with
    ``kpis.csv``'s columns, in its order. ``suppress`` applies NHS England's publication rule
    (the default, as ``fhir-iapt report``); with a referral ``ledger`` each pathway is matched
    to the referral it answers and the referral-loop KPIs are there (without one they are
    left out, not zero).

    Runs now (one task per provider; the figures are small) and returns them as a DataFrame.
    A file error in the data set (a missing table or column) raises its
    :class:`~fhir_iapt.errors.ReadError`: the report refuses a data set it cannot read whole;
    a ``ledger`` that is no file raises :class:`~fhir_iapt.errors.ConfigError`.
    """
    root = Path(directory)
    bounds = limits if limits is not None else current()
    used, _, errors = find_submissions(root, dataset_spec(), bounds)
    if errors:
        raise errors[0]
    providers: dict[str, list[str]] = {}
    for submission in used:
        providers.setdefault(submission.provider, []).append(submission.label)
    groups = sorted(providers.items())
    name = _ship_ledger(spark, ledger_file(ledger)) if ledger is not None else None
    task = KpiTask(str(root.resolve()), groups, name, window_days=window_days, limits=bounds)
    ids = spark.range(0, len(groups), 1, max(1, len(groups)))
    rows = [row.asDict() for row in ids.mapInArrow(task, TALLIES_DDL).collect()]
    sent = None
    if ledger is not None:
        with Ledger(ledger) as opened:
            sent = list(opened.entries())
    figures = "published" if suppress else "exact"
    values = [kpi_value(c, suppress=suppress) for c in counts_of(_merged(rows), sent)]
    table = [
        (
            v.kpi,
            v.group.provider,
            v.group.pathway,
            v.group.month,
            v.numerator,
            v.denominator,
            v.rate,
            v.note,
            figures,
        )
        for v in values
    ]
    return spark.createDataFrame(table, KPIS_DDL)


__all__ = ["KPIS_DDL", "KpiTask", "pathway_kpis"]
