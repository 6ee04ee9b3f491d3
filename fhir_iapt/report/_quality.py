"""Data quality per provider and month: the drift issue 12 names (problem descriptors recorded
as F41.2 "mixed anxiety and depression" for everyone, measures never paired), the referrals
that left without a screening or a consent answer, and codes outside their lists.

Each check is a count, a share and the ids it came from (pathway ids, ledger referral
identifiers, or ``file:row`` of a rejected row; never patient data), for each provider and
month where it found something:

- **pathway checks** count the pathways that **ended** (ServDischDate) in the month at the
  Talking Therapies provider, out of all that ended there then (a pathway's descriptor and
  measures are final once it ends): F41.2 as the problem descriptor; none recorded; the
  descriptor calls for a disorder-specific anxiety measure that was never recorded, is not the
  one it calls for, or is unpaired, so GAD-7 stood in
  (:func:`~fhir_iapt.scoring.recovery.choose_anxiety_measure`'s fallback); and, out of those
  that finished treatment, finished without a first and a last PHQ-9;
- **referral checks** count the ledger's referrals per sending clinic and the month authored:
  sent without a screening (out of those whose entry knows: rows recorded before the ledger's
  schema 2 do not) and with no recorded choice on sharing outcomes;
- **code checks** count the rows the data-set reader rejected because AttendOrDNACode,
  AppType, EndCode (IDS101) or CodedAssToolType (IDS606 / IDS607) is outside its list, out of
  the rows of that table in the provider's submission for the month; an episode export's
  EndCode outside the data set's list is counted against the export's pathways that ended in
  the month.

Published (``suppress=True``) the counts follow the KPIs' rule (under 5 suppressed, else
rounded to 5; a share from counts under 5 not shown) and the ids are withheld: a list of ids
is an exact count, and would undo the rounding and suppression. ``suppress=False`` (the CLI's
``--no-suppress``, for the service that has to fix the records) lists every id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fhir_iapt.dataset._tables import dataset_spec
from fhir_iapt.ledger import LedgerEntry
from fhir_iapt.report._facts import PathwayFacts
from fhir_iapt.report._kpis import (
    SUPPRESS_UNDER,
    SUPPRESSED,
    month_of,
    published_count,
    sent_group,
)
from fhir_iapt.report._model import QualityValue


@dataclass(frozen=True, slots=True)
class Check:
    """One data-quality check: its stable id, what a reader sees, and what it is a share of."""

    id: str
    title: str
    out_of: str


CHECKS: tuple[Check, ...] = (
    Check(
        "problem-descriptor-f41.2",
        "Problem descriptor recorded as F41.2 (mixed anxiety and depression)",
        "pathways that ended in the month",
    ),
    Check(
        "problem-descriptor-missing",
        "No problem descriptor recorded",
        "pathways that ended in the month",
    ),
    Check(
        "adsm-not-recorded-or-unpaired",
        "Disorder-specific anxiety measure never recorded, not the descriptor's, or unpaired "
        "(GAD-7 stood in)",
        "pathways that ended in the month",
    ),
    Check(
        "phq9-not-paired",
        "Finished treatment without a paired PHQ-9",
        "pathways that finished treatment in the month",
    ),
    Check(
        "referral-without-screening",
        "Referral sent without a PHQ / GAD screening",
        "referrals sent in the month whose ledger entry records it",
    ),
    Check(
        "consent-not-recorded",
        "Referral sent with no recorded choice on sharing outcomes",
        "referrals sent in the month",
    ),
    Check(
        "attend-code-invalid",
        "AttendOrDNACode outside its list (row rejected)",
        "IDS201CareContact rows of the month's submission",
    ),
    Check(
        "app-type-invalid",
        "AppType outside its list (row rejected)",
        "IDS201CareContact rows of the month's submission",
    ),
    Check(
        "end-code-invalid",
        "EndCode outside its list",
        "IDS101Referral rows of the month's submission, or an export's pathways that ended in "
        "the month",
    ),
    Check(
        "assessment-tool-invalid",
        "CodedAssToolType outside its list (row rejected)",
        "IDS606 and IDS607 rows of the month's submission",
    ),
)
BY_ID = {c.id: c for c in CHECKS}
#: field of a rejected data-set row -> its code check; error code FI153 (a code outside its
#: list) or FI155 (a CodedAssToolType the score checks do not know)
CODE_FIELDS: Mapping[str, tuple[str, str]] = {
    "AttendOrDNACode": ("attend-code-invalid", "FI153"),
    "AppType": ("app-type-invalid", "FI153"),
    "EndCode": ("end-code-invalid", "FI153"),
    "CodedAssToolType": ("assessment-tool-invalid", "FI155"),
}
#: the tables each code check's denominator counts the rows of
CODE_TABLES: Mapping[str, tuple[str, ...]] = {
    "attend-code-invalid": ("IDS201CareContact",),
    "app-type-invalid": ("IDS201CareContact",),
    "end-code-invalid": ("IDS101Referral",),
    "assessment-tool-invalid": ("IDS606CodedScoreAssessmentRefer", "IDS607CodedScoreAssessmentAct"),
}


@dataclass(frozen=True, slots=True)
class CodeFinding:
    """One rejected data-set row whose code is outside its list."""

    check: str
    provider: str
    month: str
    where: str  # file:row


#: (check, provider, month) -> the ids found and the denominator
_Found = dict[tuple[str, str, str], tuple[list[str], int]]


def _is_f41_2(descriptor: str | None) -> bool:
    return descriptor is not None and descriptor.strip().upper().replace(".", "") == "F412"


@dataclass(slots=True)
class _Ended:
    """The pathways of one provider that ended in one month, and what the checks found."""

    ended: int = 0
    finished: int = 0
    exported: int = 0  # of them, read from an episode export
    found: dict[str, list[str]] = field(default_factory=dict)

    def note(self, check: str, where: str) -> None:
        self.found.setdefault(check, []).append(where)


class QualityTally:
    """The pathway checks, one pathway at a time (only what was found is kept per pathway)."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str], _Ended] = {}
        self._end_codes = dataset_spec().end_codes

    def add(self, f: PathwayFacts) -> None:
        if f.discharge is None:
            return
        key = (f.provider, month_of(f.discharge))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Ended()
        group.ended += 1
        if _is_f41_2(f.descriptor):
            group.note("problem-descriptor-f41.2", f.pathway_id)
        if f.descriptor is None:
            group.note("problem-descriptor-missing", f.pathway_id)
        if f.anxiety_fallback is not None:
            group.note("adsm-not-recorded-or-unpaired", f.pathway_id)
        if f.finished:
            group.finished += 1
            if not f.phq9_paired:
                group.note("phq9-not-paired", f.pathway_id)
        if f.source == "export":  # the data set's reader rejects such rows itself
            group.exported += 1
            if f.end_code is not None and f.end_code.strip().zfill(2) not in self._end_codes:
                group.note("end-code-invalid", f.where)

    def found(self, into: _Found) -> None:
        for (provider, month), group in self.groups.items():
            out_of = {
                "phq9-not-paired": group.finished,
                "end-code-invalid": group.exported,
            }
            for check, ids in group.found.items():
                into[(check, provider, month)] = (ids, out_of.get(check, group.ended))


def _referral_checks(sent: Iterable[LedgerEntry], found: _Found) -> None:
    groups: dict[tuple[str, str], list[LedgerEntry]] = {}
    for entry in sent:
        group = sent_group(entry)
        groups.setdefault((group.provider, group.month), []).append(entry)
    for (clinic, month), entries in groups.items():
        known = [e for e in entries if e.screening_sent is not None]
        unscreened = [e.identifier for e in known if e.screening_sent is False]
        if unscreened:
            found[("referral-without-screening", clinic, month)] = (unscreened, len(known))
        no_consent = [e.identifier for e in entries if e.share_outcomes is None]
        if no_consent:
            found[("consent-not-recorded", clinic, month)] = (no_consent, len(entries))


def _code_checks(
    findings: Iterable[CodeFinding], rows: Mapping[tuple[str, str, str], int], found: _Found
) -> None:
    by_key: dict[tuple[str, str, str], list[str]] = {}
    for item in findings:
        by_key.setdefault((item.check, item.provider, item.month), []).append(item.where)
    for key, ids in by_key.items():
        previous, of_rows = found.get(key, ([], 0))
        # rejected rows were read too: a table's rows include them
        found[key] = ([*previous, *ids], of_rows + max(rows.get(key, 0), len(ids)))


def _value(
    check: Check, provider: str, month: str, ids: list[str], of: int, *, suppress: bool
) -> QualityValue:
    count = len(ids)
    listed = tuple(sorted(ids))
    if not suppress:
        return QualityValue(
            check.id, check.title, provider, month, count, of, count / of if of else None, listed
        )
    shown, shown_of = published_count(count), published_count(of)
    if count < SUPPRESS_UNDER or of < SUPPRESS_UNDER:
        return QualityValue(
            check.id, check.title, provider, month, shown, shown_of, None, (), SUPPRESSED
        )
    return QualityValue(check.id, check.title, provider, month, shown, shown_of, count / of, ())


def values_of(
    tally: QualityTally,
    sent: Iterable[LedgerEntry] | None = None,
    findings: Iterable[CodeFinding] = (),
    rows: Mapping[tuple[str, str, str], int] | None = None,
    *,
    suppress: bool = True,
) -> list[QualityValue]:
    """Every check that found something, per provider (or sending clinic) and month, in
    :data:`CHECKS` order, then by provider and month. ``rows`` gives each code check's
    denominator (the table rows of that provider's submission for the month)."""
    found: _Found = {}
    tally.found(found)
    if sent is not None:
        _referral_checks(sent, found)
    _code_checks(findings, rows or {}, found)
    order = {c.id: i for i, c in enumerate(CHECKS)}
    return [
        _value(BY_ID[check], provider, month, ids, of, suppress=suppress)
        for (check, provider, month), (ids, of) in sorted(
            found.items(), key=lambda item: (order[item[0][0]], item[0][1], item[0][2])
        )
    ]


def quality_values(
    facts: Iterable[PathwayFacts],
    sent: Iterable[LedgerEntry] | None = None,
    findings: Iterable[CodeFinding] = (),
    rows: Mapping[tuple[str, str, str], int] | None = None,
    *,
    suppress: bool = True,
) -> list[QualityValue]:
    """:func:`values_of` the checks of ``facts``."""
    tally = QualityTally()
    for f in facts:
        tally.add(f)
    return values_of(tally, sent, findings, rows, suppress=suppress)


__all__ = [
    "BY_ID",
    "CHECKS",
    "CODE_FIELDS",
    "CODE_TABLES",
    "Check",
    "CodeFinding",
    "QualityTally",
    "quality_values",
    "values_of",
]
