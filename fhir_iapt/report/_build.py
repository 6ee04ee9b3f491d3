"""Read the report's inputs and build its figures: data-set directories (``read_dataset``) and
episode exports (a mapping with target ``episode``) become :class:`PathwayFacts`, one at a
time, and are tallied as they come (memory holds one tally per group and what the checks found,
not the pathways); the ledger's referrals are read once at the end.

:class:`ReportBuilder` is the library entry point the ``fhir-iapt report`` command calls::

    builder = ReportBuilder(ledger=ledger)
    builder.add_dataset(Path("tt-dataset"))
    builder.add_export(Path("episodes.csv"))
    data, counts = builder.build(suppress=True)

Rows that cannot be used are kept as :class:`~fhir_iapt.results.Rejected` (located, no values:
the command writes them to ``rejects.ndjson``); a file the reader cannot use at all (a missing
table or column, an unusable header) is in :attr:`ReportBuilder.unusable`, and a report over
it would be a report of nothing: the command refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from fhir_iapt.dataset import DatasetRun, DerivedPathway, read_dataset
from fhir_iapt.dataset._submissions import Submission, table_rows
from fhir_iapt.dataset._tables import TABLE_NAMES
from fhir_iapt.errors import FhirIaptError, Location, MappingError
from fhir_iapt.ledger import DEFAULT_WINDOW_DAYS, Ledger, LedgerEntry
from fhir_iapt.limits import Limits, current
from fhir_iapt.mapping import Mapping, load_mapping, map_record, read_source
from fhir_iapt.report._facts import PathwayFacts, facts_of_episode, facts_of_pathway, where
from fhir_iapt.report._kpis import DEFINITIONS, Counts, PathwayTallies, counts_of, kpi_value
from fhir_iapt.report._model import ReportData
from fhir_iapt.report._quality import (
    CODE_FIELDS,
    CODE_TABLES,
    CodeFinding,
    QualityTally,
    values_of,
)
from fhir_iapt.results import Rejected
from fhir_iapt.scoring.episode import EpisodeRecord
from fhir_iapt.scoring.measures import OutcomeRules, outcome_rules

#: The default mapping of an episode export.
EPISODE_MAPPING = "iapt-outcomes"


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@dataclass(slots=True)
class _Tables:
    """Which submission each of a data set's table files belongs to."""

    by_name: dict[str, tuple[Submission, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, run: DatasetRun) -> _Tables:
        tables = cls()
        for sub in run.used:
            for table in TABLE_NAMES:
                tables.by_name[sub.name(table)] = (sub, table)
        return tables


class ReportBuilder:
    """Collects pathways from the inputs, then :meth:`build` makes the report's figures."""

    def __init__(
        self,
        *,
        ledger: Ledger | None = None,
        window_days: int = DEFAULT_WINDOW_DAYS,
        rules: OutcomeRules | None = None,
        limits: Limits | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.ledger = ledger
        self.window_days = window_days
        self.rules = rules or outcome_rules()
        self.limits = limits if limits is not None else current()
        self.workdir = workdir
        self.inputs: list[str] = []
        #: rows (or records) that could not be used, located, in input order
        self.rejected: list[Rejected] = []
        #: file errors: an input nothing could be read from
        self.unusable: list[Rejected] = []
        self.pathways = 0
        self._tallies = PathwayTallies()
        self._quality = QualityTally()
        self._findings: list[CodeFinding] = []
        #: (check, provider, month) -> the table files whose rows are its denominator
        self._tables_of: dict[tuple[str, str, str], set[tuple[Path, str]]] = {}

    # -- inputs --------------------------------------------------------------------------

    def add(self, facts: PathwayFacts) -> None:
        """Count one pathway."""
        self.pathways += 1
        self._tallies.add(facts)
        self._quality.add(facts)

    def add_dataset(self, directory: Path, *, label: str | None = None) -> None:
        """Every pathway of one data-set directory (``read_dataset``), matched to the ledger."""
        self.inputs.append(label or directory.name)
        run = DatasetRun()
        tables: _Tables | None = None
        for item in read_dataset(
            directory, workdir=self.workdir, rules=self.rules, limits=self.limits, run=run
        ):
            if isinstance(item, DerivedPathway):
                self.add(
                    facts_of_pathway(
                        item, ledger=self.ledger, window_days=self.window_days, rules=self.rules
                    )
                )
                continue
            if item.location.row is None:
                self.unusable.append(item)
                continue
            self.rejected.append(item)
            tables = tables or _Tables.of(run)
            self._code_finding(item, tables)

    def _code_finding(self, item: Rejected, tables: _Tables) -> None:
        found = CODE_FIELDS.get(item.location.field or "")
        located = tables.by_name.get(item.location.file or "")
        if found is None or located is None or item.error.error_code != found[1]:
            return
        check = found[0]
        sub, _table = located
        key = (check, sub.provider, _month(sub.period_start))
        self._findings.append(CodeFinding(check, key[1], key[2], where(item.location)))
        self._tables_of.setdefault(key, set()).update(
            (sub.file(t), sub.name(t)) for t in CODE_TABLES[check]
        )

    def add_export(
        self,
        path: Path,
        mapping: Mapping[Any] | str = EPISODE_MAPPING,
        *,
        label: str | None = None,
    ) -> None:
        """Every row of one episode export (``mapping``'s target must be ``episode``)."""
        resolved = load_mapping(mapping) if isinstance(mapping, str) else mapping
        if resolved.target != "episode":
            raise MappingError(
                f"mapping {resolved.name!r} has target {resolved.target!r}; the report reads "
                "episode exports with an 'episode' mapping"
            )
        self.inputs.append(label or path.name)
        for record in self._episodes(path, resolved):
            self.add(facts_of_episode(record, ledger=self.ledger, rules=self.rules))

    def _episodes(self, path: Path, mapping: Mapping[Any]) -> Iterator[EpisodeRecord]:
        with path.open("rb") as fh:
            for item in read_source(fh, name=path.name, mapping=mapping):
                if isinstance(item, FhirIaptError):
                    rejected = Rejected(item, item.location or Location(file=path.name))
                    if rejected.location.row is None:
                        self.unusable.append(rejected)
                    else:
                        self.rejected.append(rejected)
                    continue
                try:
                    record = map_record(item, mapping)
                except FhirIaptError as exc:
                    self.rejected.append(Rejected(exc, exc.location or item.location))
                    continue
                if isinstance(record, EpisodeRecord):
                    yield record

    # -- the figures ---------------------------------------------------------------------

    def _rows(self) -> dict[tuple[str, str, str], int]:
        """Each code check's denominator: the rows of the tables it checks in that
        submission (read again only for the checks that found something)."""
        out: dict[tuple[str, str, str], int] = {}
        for key, files in self._tables_of.items():
            total = 0
            for path, name in sorted(files):
                for item in table_rows(path, name=name, limits=self.limits):
                    if not isinstance(item, FhirIaptError):
                        total += 1
                    elif item.location is not None and item.location.row is not None:
                        total += 1  # a row the reader could not read is a row too
            out[key] = total
        return out

    def sent(self) -> list[LedgerEntry] | None:
        """The ledger's referrals (None without a ledger)."""
        return list(self.ledger.entries()) if self.ledger is not None else None

    def build(
        self, *, suppress: bool = True, generated: date | None = None
    ) -> tuple[ReportData, list[Counts]]:
        """The report's figures, and each KPI's exact populations (the MeasureReports')."""
        sent = self.sent()
        counts = counts_of(self._tallies, sent)
        quality = values_of(self._quality, sent, self._findings, self._rows(), suppress=suppress)
        rejected: dict[str, int] = {}
        for item in [*self.unusable, *self.rejected]:
            code = item.error.error_code
            rejected[code] = rejected.get(code, 0) + 1
        data = ReportData(
            definitions=DEFINITIONS,
            kpis=tuple(kpi_value(c, suppress=suppress) for c in counts),
            quality=tuple(quality),
            suppressed=suppress,
            generated=generated or date.today(),
            inputs=tuple(self.inputs),
            rejected=dict(sorted(rejected.items())),
        )
        return data, counts


__all__ = ["EPISODE_MAPPING", "ReportBuilder"]
