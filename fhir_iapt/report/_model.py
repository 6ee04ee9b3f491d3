"""What the pathway report is made of: the figures (:class:`ReportData`) that the KPI stage
computes and every output (``kpis.csv``, ``measure-reports.ndjson``, ``data-quality.csv``,
``report.html``) is written from. Nothing here holds patient data: ids only.

The figures are published by default: a count under 5 is suppressed (``None``) and every other
count is rounded to the nearest 5; a rate whose numerator or denominator is suppressed is not
shown. ``ReportData.suppressed`` says whether that rule was applied (``--no-suppress`` turns it
off for internal use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

#: The LTC pathways a result is reported for ("other" = another LTC or none recorded).
PATHWAYS: tuple[str, ...] = ("diabetes", "respiratory", "cardiac", "other")

KpiKind = Literal["count", "rate"]


@dataclass(frozen=True, slots=True)
class KpiDefinition:
    """One KPI: a count (the funnel) or a proportion (a Measure in ``profiles/``)."""

    id: str  # stable, kebab-case: "recovery-rate"; the Measure's id and url tail
    title: str  # "Recovery rate"
    kind: KpiKind
    #: the standard it is judged against (0.5 for recovery, 0.75 / 0.95 for waits), or None
    target: float | None
    numerator: str  # what is counted, in words (the Measure's numerator description)
    denominator: str  # "" for a count
    #: who leaves the denominator ("not a case at the start"), "" for none
    exclusion: str
    source: str  # where the definition comes from (tt-dataset.md row, DOMAIN.md line)


@dataclass(frozen=True, slots=True)
class Group:
    """Who and when a figure is about."""

    provider: str  # ODS code: the IAPT service; for referrals sent, the sending clinic
    pathway: str  # one of PATHWAYS
    #: "YYYY-MM": the month of the event the KPI counts, as NHS England's Key Metrics do:
    #: received by the referral date, entered treatment by the first treatment date,
    #: finished treatment and its outcomes and waits by the discharge date (the month the
    #: referral ended); referrals sent by the month authored
    month: str


@dataclass(frozen=True, slots=True)
class KpiValue:
    """One KPI for one group. ``None`` counts are suppressed (published output only)."""

    kpi: str  # KpiDefinition.id
    group: Group
    numerator: int | None  # the count (for kind "count", the figure itself)
    denominator: int | None  # None for a count
    rate: float | None  # 0..1; None when not available or suppressed
    #: why no rate is shown: "" (shown or a count), "not available" (a 0 numerator or
    #: denominator), "suppressed" (from a suppressed count)
    note: str = ""


@dataclass(frozen=True, slots=True)
class QualityValue:
    """One data-quality check for one provider and month."""

    check: str  # stable id: "problem-descriptor-f41.2", "attend-code-invalid", ...
    title: str  # what a reader sees: "Problem descriptor recorded as F41.2"
    provider: str
    month: str  # "YYYY-MM"
    count: int | None  # None = suppressed
    denominator: int | None
    share: float | None
    #: the rows it came from: pathway ids, ledger identifiers or file:row locations; never
    #: patient data. Empty in published figures (a list of ids is an exact count); listed in
    #: full with ``--no-suppress``, for the service that fixes the records.
    ids: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything the outputs are written from."""

    definitions: tuple[KpiDefinition, ...]
    kpis: tuple[KpiValue, ...]
    quality: tuple[QualityValue, ...]
    suppressed: bool  # the publication rule was applied
    generated: date
    inputs: tuple[str, ...] = ()  # what was read, as the user named it (no patient data)
    #: counts of what could not be used (rejected rows by error code), for the report's footer
    rejected: dict[str, int] = field(default_factory=dict)


__all__ = [
    "PATHWAYS",
    "Group",
    "KpiDefinition",
    "KpiKind",
    "KpiValue",
    "QualityValue",
    "ReportData",
]
