"""Derive each referral's pathway from the loaded tables: SQL does the joins and the counts,
one streaming pass in ``(OrgIDProv, ServiceRequestId)`` order does the rest, so only one
pathway's rows are ever in memory.

The rules (tt-dataset.md §5, DOMAIN.md; codes in ``dataset.yaml``):

- **treatment contacts**: attended (AttendOrDNACode 5 / 6, or unplanned) with a treatment
  AppType (02 / 03 / 05), dated inside the referral's received..discharge dates (inclusive);
- **first treatment date** (TherapySession_FirstDate): the earliest treatment contact's date;
- **finished treatment**: a discharge date **and** at least ``finished_treatment_min_contacts``
  treatment contacts (an open pathway has not finished, whatever its contacts);
- **first / last score** per measure (NHS England's pattern, V ES l.18-42): first = ORDER BY
  date, time, id DESC; last = ORDER BY date DESC, time DESC, id DESC over the other scores, so a
  single score has no last. IDS607 is dated by its parent contact (IDS607 -> IDS202 CareActId ->
  IDS201 CareContDate / CareContTime). The id is the submission order (U);
- **problem descriptor**: the IDS603 row NHS England picks (V PDT-2.11 l.52): a valid ICD-10 code
  first, then PresCompCodSig ascending, PresCompDate descending, the id descending;
- **ADSM**: the first measure that fits the descriptor (measures.yaml) with a score;
- **LTC**: the first IDS602 SNOMED (04) row by id (U: no rule for several was read);
- **WSAS**: the five items of one assessment summed when all five are scored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from fhir_iapt.dataset import _values as v
from fhir_iapt.dataset._episode import disagreements
from fhir_iapt.dataset._model import DerivedPathway
from fhir_iapt.dataset._tables import WSAS_ITEMS, DatasetSpec
from fhir_iapt.errors import Location, ReadError
from fhir_iapt.scoring.episode import ScorePair
from fhir_iapt.scoring.measures import OutcomeRules

#: An IDS607 row whose care activity or care contact is not in the data set (it has no date).
UNDATED = "FI156"
#: A score dated outside its referral's received..discharge dates.
OUTSIDE_REFERRAL = "FI157"

_INDEXES = """
CREATE INDEX contact_ref ON contact (prov, srid, treat, date, ltc);
CREATE TABLE score (prov TEXT, srid TEXT, tool TEXT, date TEXT, time TEXT, value TEXT,
  uid INTEGER, grp TEXT, fid INTEGER, row INTEGER, src TEXT);
INSERT INTO score SELECT prov, srid, tool, date, time, value, uid, 'R' || date || time, fid,
  row, 'IDS606CodedScoreAssessmentRefer' FROM s606;
INSERT INTO score SELECT s.prov, c.srid, s.tool, c.date, c.time, s.value, s.uid,
  'A' || s.caid, s.fid, s.row, 'IDS607CodedScoreAssessmentAct'
  FROM s607 s JOIN act a ON a.prov = s.prov AND a.caid = s.caid
  JOIN contact c ON c.prov = a.prov AND c.ccid = a.ccid;
CREATE INDEX score_ref ON score (prov, srid);
"""

_UNDATED = """
SELECT s.fid, s.row FROM s607 s WHERE NOT EXISTS (
  SELECT 1 FROM act a JOIN contact c ON c.prov = a.prov AND c.ccid = a.ccid
  WHERE a.prov = s.prov AND a.caid = s.caid) ORDER BY s.fid, s.row
"""

_REFERRALS = """
SELECT r.prov, r.srid, r.received, r.disch, r.endcode, r.nhsd, r.fid, r.row, m.nhs,
  (SELECT count(*) FROM contact c INDEXED BY contact_ref WHERE c.prov = r.prov AND c.srid = r.srid),
  (SELECT count(*) FROM contact c INDEXED BY contact_ref
     WHERE c.prov = r.prov AND c.srid = r.srid AND c.treat = 1
     AND c.date >= r.received AND (r.disch IS NULL OR c.date <= r.disch)),
  (SELECT min(c.date) FROM contact c INDEXED BY contact_ref
     WHERE c.prov = r.prov AND c.srid = r.srid AND c.treat = 1
     AND c.date >= r.received AND (r.disch IS NULL OR c.date <= r.disch)),
  (SELECT max(ltc) FROM contact c INDEXED BY contact_ref WHERE c.prov = r.prov AND c.srid = r.srid)
FROM ref r LEFT JOIN mpi m ON m.prov = r.prov AND m.lpid = r.lpid
ORDER BY r.prov, r.srid
"""
_SCORES = (
    "SELECT prov, srid, tool, date, time, value, uid, grp, fid, row, src FROM score "
    "ORDER BY prov, srid"
)
_COMPLAINTS = "SELECT prov, srid, scheme, code, sig, date, uid FROM pc ORDER BY prov, srid"
_LTCS = "SELECT prov, srid, scheme, code, uid FROM ltc ORDER BY prov, srid"


class _Children:
    """The rows of one ordered cursor for one ``(prov, srid)`` at a time (a merge join): keys
    asked for must ascend; rows of keys never asked for (orphans) are passed over."""

    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self._rows = rows
        self._next: tuple[Any, ...] | None = next(rows, None)

    def take(self, key: tuple[str, str]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        while self._next is not None and (self._next[0], self._next[1]) < key:
            self._next = next(self._rows, None)
        while self._next is not None and (self._next[0], self._next[1]) == key:
            out.append(self._next)
            self._next = next(self._rows, None)
        return out


@dataclass(frozen=True, slots=True)
class _Score:
    date: str
    time: str
    uid: int
    value: Decimal


def first_and_last(scores: Sequence[_Score]) -> tuple[_Score | None, _Score | None]:
    """NHS England's pattern (V ES l.18-42, 86): first = ORDER BY date, time, id DESC; last =
    ORDER BY date DESC, time DESC (id DESC, ours: U) over the scores that are not the first."""
    if not scores:
        return None, None
    first = min(scores, key=lambda s: (s.date, s.time, -s.uid))
    rest = [s for s in scores if s is not first]
    last = max(rest, key=lambda s: (s.date, s.time, s.uid)) if rest else None
    return first, last


def _pair(scores: Sequence[_Score]) -> tuple[ScorePair, str | None, str | None]:
    first, last = first_and_last(scores)
    return (
        ScorePair(first.value if first else None, last.value if last else None),
        first.date if first else None,
        last.date if last else None,
    )


def _descriptor(rows: list[tuple[Any, ...]], spec: DatasetSpec) -> str | None:
    """The IDS603 row NHS England picks: a valid code first, then PresCompCodSig ascending,
    PresCompDate descending, the id descending (blank significance and date sort last)."""
    best_key: tuple[Any, ...] | None = None
    best: str | None = None
    for _prov, _srid, scheme, code, sig, when, uid in rows:
        icd = v.icd10(code) if scheme == spec.scheme_icd10 else None
        key = (icd is None, sig is None, sig or "", when is None, _neg_date(when), -uid)
        if best_key is None or key < best_key:
            best_key, best = key, icd
    return best


def _neg_date(when: str | None) -> int:
    return -date.fromisoformat(when).toordinal() if when else 0


def _ltc(rows: list[tuple[Any, ...]], spec: DatasetSpec) -> str | None:
    snomed = [(uid, code) for _p, _s, scheme, code, uid in rows if scheme == spec.scheme_snomed]
    return min(snomed)[1] if snomed else None


class Deriver:
    """The streaming pass over the loaded database."""

    def __init__(
        self,
        db: sqlite3.Connection,
        spec: DatasetSpec,
        rules: OutcomeRules,
        files: Sequence[str],
    ) -> None:
        self.db, self.spec, self.rules, self.files = db, spec, rules, files
        self._measure_of = {c: t.measure for c, t in spec.tools.items() if t.measure}
        self._wsas_of = {c: t.wsas_item for c, t in spec.tools.items() if t.wsas_item}

    def run(self) -> Iterator[DerivedPathway | ReadError]:
        self.db.executescript(_INDEXES)
        for fid, row in self.db.execute(_UNDATED):
            yield ReadError(
                "table IDS607CodedScoreAssessmentAct field CareActId names no care activity "
                "with a care contact in the data set, so the score has no date",
                location=Location(file=self.files[fid], row=row, field="CareActId"),
                error_code=UNDATED,
            )
        scores = _Children(self.db.execute(_SCORES))
        complaints = _Children(self.db.execute(_COMPLAINTS))
        ltcs = _Children(self.db.execute(_LTCS))
        for ref in self.db.execute(_REFERRALS):
            key = (ref[0], ref[1])
            yield from self._pathway(ref, scores.take(key), complaints.take(key), ltcs.take(key))

    def _pathway(
        self,
        ref: tuple[Any, ...],
        score_rows: list[tuple[Any, ...]],
        complaint_rows: list[tuple[Any, ...]],
        ltc_rows: list[tuple[Any, ...]],
    ) -> Iterator[DerivedPathway | ReadError]:
        (prov, srid, received, disch, end, nhsd, fid, row, nhs, contacts, treatment, first, ltc) = (
            ref
        )
        by_measure: dict[str, list[_Score]] = {}
        wsas_groups: dict[str, dict[str, _Score]] = {}
        for _p, _s, tool, when, clock, value, uid, grp, sfid, srow, src in score_rows:
            if value is None:
                continue  # NA / N/A / not available: no score
            if when < received or (disch is not None and when > disch):
                field = "CareContDate" if src.startswith("IDS607") else "AssToolCompDate"
                yield ReadError(
                    f"table {src}: the score's date ({field}) is outside its referral's "
                    "ReferralRequestReceivedDate..ServDischDate",
                    location=Location(file=self.files[sfid], row=srow, field=field),
                    error_code=OUTSIDE_REFERRAL,
                )
                continue
            score = _Score(when, clock, uid, Decimal(value))
            measure = self._measure_of.get(tool)
            if measure is not None:
                by_measure.setdefault(measure, []).append(score)
            item = self._wsas_of.get(tool)
            if item is not None:
                wsas_groups.setdefault(grp, {})[item] = score
        wsas_totals = [
            _Score(
                items["work"].date,
                items["work"].time,
                max(s.uid for s in items.values()),
                sum((items[i].value for i in WSAS_ITEMS), Decimal(0)),
            )
            for items in wsas_groups.values()
            if all(i in items for i in WSAS_ITEMS)
        ]
        descriptor = _descriptor(complaint_rows, self.spec)
        pairs: dict[str, tuple[ScorePair, str | None, str | None]] = {
            name: _pair(scores) for name, scores in by_measure.items()
        }
        adsm: str | None = None
        for name in self.rules.anxiety_measures_for(descriptor):
            if name in pairs:
                adsm = name
                break
        wsas = _pair(wsas_totals)
        used = [pairs.get("PHQ-9"), pairs.get("GAD-7"), pairs.get(adsm) if adsm else None, wsas]
        firsts = [p[1] for p in used if p is not None and p[1] is not None]
        lasts = [p[2] for p in used if p is not None and p[2] is not None]
        empty = (ScorePair(), None, None)
        discharge = date.fromisoformat(disch) if disch else None
        pathway = DerivedPathway(
            pathway_id=f"{prov}{srid}",
            provider_ods=prov,
            service_request_id=srid,
            nhs_number=nhs,
            referral_received=date.fromisoformat(received),
            discharge=discharge,
            end_code=end,
            problem_descriptor=descriptor,
            ltc_snomed=_ltc(ltc_rows, self.spec),
            ltc_pathway=bool(ltc),
            care_contacts=contacts,
            treatment_contacts=treatment,
            first_treatment_date=date.fromisoformat(first) if first else None,
            finished_treatment=discharge is not None
            and treatment >= self.rules.finished_treatment_min_contacts,
            phq9=pairs.get("PHQ-9", empty)[0],
            gad7=pairs.get("GAD-7", empty)[0],
            adsm=adsm,
            adsm_scores=pairs[adsm][0] if adsm else ScorePair(),
            wsas=wsas[0],
            first_score_date=date.fromisoformat(min(firsts)) if firsts else None,
            last_score_date=date.fromisoformat(max(lasts)) if lasts else None,
            nhsd_pathway_id=(json.loads(nhsd).get("PathwayID") if nhsd else None),
            location=Location(file=self.files[fid], row=row),
        )
        if nhsd:
            theirs = json.loads(nhsd)
            pathway = replace(
                pathway, disagreements=disagreements(pathway, theirs, self.spec, self.rules)
            )
        yield pathway


__all__ = ["OUTSIDE_REFERRAL", "UNDATED", "Deriver", "first_and_last"]
