"""Read: the NHS Talking Therapies Data Set v2.1 (the month's tables every service submits to
NHS England) and derive one :class:`DerivedPathway` per referral.

Input: a directory holding one file per table, named by the table (``IDS000Header``,
``IDS001MPI``, ``IDS101Referral``, ``IDS201CareContact``, ``IDS202CareActivity``,
``IDS602LongTermCondition``, ``IDS603PresentingComplaints``,
``IDS606CodedScoreAssessmentRefer``, ``IDS607CodedScoreAssessmentAct``), each a CSV (``.csv``,
header = the official field names) or Parquet (``.parquet``, columns = the field names; needs
the ``parquet`` extra, pyarrow), in any mix. Several months at once: one folder per submission
below the directory. A Refresh replaces the Primary of its provider and month; a record
submitted again (its key in ``mappings/tables/dataset.yaml``) keeps its latest version.

:func:`read_dataset` yields, in this order:

1. file errors (a table or a required column missing, an unusable header table, two
   submissions nothing orders) as :class:`~fhir_iapt.results.Rejected` - and if there is any,
   nothing else: no pathway is derived from an incomplete data set;
2. bad rows, each a Rejected naming the table's file, the row, the field and the rule (never
   the value), while the tables load;
3. per referral in ``(OrgIDProv, ServiceRequestId)`` order, its :class:`DerivedPathway`, after
   any of its scores rejected at derivation (an IDS607 with no parent contact, a score outside
   the referral's dates).

Memory is flat: the tables stream into a temporary SQLite database (private, removed when the
iterator ends or is closed) and pathways are derived one at a time. Error codes::

    FI150  a table is missing or its file cannot be used (empty, not UTF-8, header table)
    FI151  a table lacks a required column
    FI152  two submissions of one provider and month that nothing orders
    FI153  a row's field breaks its rule (blank, date, code)
    FI154  a PersScore is not a number / NA / N/A, or outside its tool's range
    FI155  a CodedAssToolType the data set's score checks do not know
    FI156  an IDS607 score whose care activity or contact is not in the data set (no date)
    FI157  a score dated outside its referral's received..discharge dates
    FI158  (episode_record) a pathway with no NHS number

plus the readers' own row errors (FI101 wrong field count or a Parquet list / struct cell,
FI103 not UTF-8, FI104 a Parquet file broken part-way, FI105 limits).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fhir_iapt.dataset._derive import Deriver, first_and_last
from fhir_iapt.dataset._episode import (
    DATASET_PATHWAY_SYSTEM,
    disagreements,
    episode_record,
    no_nhs_number,
    probe_episode,
)
from fhir_iapt.dataset._model import DerivedPathway, Disagreement
from fhir_iapt.dataset._store import Loader, connect
from fhir_iapt.dataset._submissions import Submission, find_submissions
from fhir_iapt.dataset._tables import DatasetSpec, dataset_spec
from fhir_iapt.errors import Location, ReadError
from fhir_iapt.limits import Limits, current
from fhir_iapt.results import Rejected
from fhir_iapt.scoring.measures import OutcomeRules, outcome_rules


@dataclass(slots=True)
class DatasetRun:
    """What a read used: the submissions whose records count (in the order they apply) and
    those a later one replaced (a Primary under its Refresh). Filled as the read starts."""

    used: list[Submission] = field(default_factory=list)
    replaced: list[Submission] = field(default_factory=list)


def _rejected(error: ReadError, fallback: str) -> Rejected:
    return Rejected(error, error.location or Location(file=fallback))


def read_dataset(
    directory: str | Path,
    *,
    workdir: str | Path | None = None,
    rules: OutcomeRules | None = None,
    spec: DatasetSpec | None = None,
    limits: Limits | None = None,
    run: DatasetRun | None = None,
) -> Iterator[DerivedPathway | Rejected]:
    """Every referral of the data set under ``directory`` as a DerivedPathway, and every file
    error or bad row as a Rejected (see the module docstring for the order). ``workdir`` is
    where the temporary database goes (default: the system's temporary folder); it holds
    patient data while the iterator runs, in a folder only this user can read."""
    root = Path(directory)
    spec = spec or dataset_spec()
    rules = rules or outcome_rules()
    bounds = limits if limits is not None else current()
    used, replaced, errors = find_submissions(root, spec, bounds)
    if run is not None:
        run.used[:] = used
        run.replaced[:] = replaced
    if errors:
        for error in errors:
            yield _rejected(error, root.name)
        return
    with tempfile.TemporaryDirectory(prefix="fhir-iapt-dataset-", dir=workdir) as scratch:
        db = connect(Path(scratch) / "dataset.sqlite")
        try:
            loader = Loader(db, spec, bounds)
            for error in loader.load(used):
                yield _rejected(error, root.name)
            for item in Deriver(db, spec, rules, loader.files).run():
                yield _rejected(item, root.name) if isinstance(item, ReadError) else item
        finally:
            db.close()


__all__ = [
    "DATASET_PATHWAY_SYSTEM",
    "DatasetRun",
    "DatasetSpec",
    "DerivedPathway",
    "Disagreement",
    "Submission",
    "dataset_spec",
    "disagreements",
    "episode_record",
    "first_and_last",
    "no_nhs_number",
    "probe_episode",
    "read_dataset",
]
