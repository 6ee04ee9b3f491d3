"""Load the chosen submissions' tables into a temporary SQLite database, row by row.

Memory stays flat whatever the data set's size: rows are checked one at a time and written in
batches (``executemany``); the database (in a private temporary folder, removed afterwards)
holds them on disk with a bounded page cache. Submissions are loaded oldest first and every
table has the key ``dataset.yaml`` names, so a record submitted again replaces its earlier
version (``INSERT OR REPLACE``): the latest version wins.

A bad row is yielded as a ReadError value naming the table's file, the row, the field and the
rule, never the value; the rest of the table is read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fhir_iapt.dataset import _values as v
from fhir_iapt.dataset._submissions import Submission, table_rows
from fhir_iapt.dataset._tables import DatasetSpec
from fhir_iapt.errors import Location, ReadError
from fhir_iapt.limits import Limits
from fhir_iapt.nhs_number import is_valid_nhs_number

#: A cell breaks its field's rule (blank, date, code); the row is rejected.
BAD_ROW = "FI153"
#: PersScore is not a number / NA / N/A, has too many decimals, or is outside the tool's range.
BAD_SCORE = "FI154"
#: CodedAssToolType is no concept the data set's score checks know.
UNKNOWN_TOOL = "FI155"

_BATCH = 5000
#: Row ids: submission order first, then IDS606 before IDS607, then the row in its file.
_ROW_SPAN = 10**10

SCHEMA = """
CREATE TABLE ref (prov TEXT, srid TEXT, lpid TEXT, received TEXT, disch TEXT, endcode TEXT,
  nhsd TEXT, fid INTEGER, row INTEGER, PRIMARY KEY (prov, srid)) WITHOUT ROWID;
CREATE TABLE mpi (prov TEXT, lpid TEXT, nhs TEXT, PRIMARY KEY (prov, lpid)) WITHOUT ROWID;
CREATE TABLE contact (prov TEXT, ccid TEXT, srid TEXT, date TEXT, time TEXT, treat INTEGER,
  ltc INTEGER, PRIMARY KEY (prov, ccid)) WITHOUT ROWID;
CREATE TABLE act (prov TEXT, caid TEXT, ccid TEXT, PRIMARY KEY (prov, caid)) WITHOUT ROWID;
CREATE TABLE ltc (prov TEXT, srid TEXT, scheme TEXT, code TEXT, uid INTEGER,
  PRIMARY KEY (prov, srid, scheme, code)) WITHOUT ROWID;
CREATE TABLE pc (prov TEXT, srid TEXT, scheme TEXT, code TEXT, sig TEXT, date TEXT,
  uid INTEGER, PRIMARY KEY (prov, srid, scheme, code)) WITHOUT ROWID;
CREATE TABLE s606 (prov TEXT, srid TEXT, tool TEXT, date TEXT, time TEXT, value TEXT,
  uid INTEGER, fid INTEGER, row INTEGER, PRIMARY KEY (prov, srid, tool, date, time)) WITHOUT ROWID;
CREATE TABLE s607 (prov TEXT, caid TEXT, tool TEXT, value TEXT, uid INTEGER, fid INTEGER,
  row INTEGER, PRIMARY KEY (prov, caid, tool)) WITHOUT ROWID;
"""

_INSERT = {
    "IDS101Referral": "INSERT OR REPLACE INTO ref VALUES (?,?,?,?,?,?,?,?,?)",
    "IDS001MPI": "INSERT OR REPLACE INTO mpi VALUES (?,?,?)",
    "IDS201CareContact": "INSERT OR REPLACE INTO contact VALUES (?,?,?,?,?,?,?)",
    "IDS202CareActivity": "INSERT OR REPLACE INTO act VALUES (?,?,?)",
    "IDS602LongTermCondition": "INSERT OR REPLACE INTO ltc VALUES (?,?,?,?,?)",
    "IDS603PresentingComplaints": "INSERT OR REPLACE INTO pc VALUES (?,?,?,?,?,?,?)",
    "IDS606CodedScoreAssessmentRefer": "INSERT OR REPLACE INTO s606 VALUES (?,?,?,?,?,?,?,?,?)",
    "IDS607CodedScoreAssessmentAct": "INSERT OR REPLACE INTO s607 VALUES (?,?,?,?,?,?,?)",
}
_YES_NO = frozenset({"Y", "N"})


def connect(path: Path) -> sqlite3.Connection:
    """A scratch database: no journal, no fsync, an 8 MB page cache, temp data on disk."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-8000")
    db.execute("PRAGMA temp_store=FILE")
    db.executescript(SCHEMA)
    return db


class _Row:
    """One row's checks: ``col`` names the field being checked when a rule breaks."""

    __slots__ = ("col",)

    def __init__(self) -> None:
        self.col = ""


Checker = Callable[[dict[str, str], _Row, int], tuple[Any, ...] | None]


class Loader:
    """Checks and loads every table of the submissions, in order, into ``db``."""

    def __init__(self, db: sqlite3.Connection, spec: DatasetSpec, limits: Limits) -> None:
        self.db = db
        self.spec = spec
        self.limits = limits
        self.files: list[str] = []  # fid -> the file's name as locations show it
        self._prov = ""
        self._rank = 0
        self._fid = 0
        self._derived: tuple[str, ...] = ()
        known = (*spec.derived_fields, "PathwayID")
        self._derived_known = known
        self._checkers: dict[str, Checker] = {
            "IDS001MPI": self._mpi,
            "IDS101Referral": self._referral,
            "IDS201CareContact": self._contact,
            "IDS202CareActivity": self._activity,
            "IDS602LongTermCondition": self._ltc,
            "IDS603PresentingComplaints": self._complaint,
            "IDS606CodedScoreAssessmentRefer": self._score_606,
            "IDS607CodedScoreAssessmentAct": self._score_607,
        }

    def load(self, submissions: Sequence[Submission]) -> Iterator[ReadError]:
        """Load every table of every submission (oldest first); yield each bad row."""
        for rank, sub in enumerate(submissions):
            self._prov, self._rank = sub.provider, rank
            for table, check in self._checkers.items():
                yield from self._load_table(sub, table, check)

    def _load_table(self, sub: Submission, table: str, check: Checker) -> Iterator[ReadError]:
        name = sub.name(table)
        self._fid = len(self.files)
        self.files.append(name)
        sql = _INSERT[table]
        batch: list[tuple[Any, ...]] = []
        first = True
        state = _Row()
        wanted = self.spec.table(table)
        columns = (*wanted.required, *wanted.optional)
        if table == "IDS101Referral":
            columns = (*columns, *self._derived_known)
        rows = table_rows(sub.file(table), name=name, limits=self.limits, columns=columns)
        try:
            for item in rows:
                if isinstance(item, ReadError):
                    yield item
                    continue
                data: dict[str, str] = item.data
                if first:
                    first = False
                    if table == "IDS101Referral":
                        self._derived = tuple(c for c in self._derived_known if c in data)
                row = item.location.row or 0
                try:
                    values = check(data, state, row)
                except v.BadValue as exc:
                    yield ReadError(
                        f"table {table} field {state.col} {exc.rule}",
                        location=item.location.with_field(state.col),
                        error_code=exc.error_code,
                    )
                    continue
                if values is not None:
                    batch.append(values)
                    if len(batch) >= _BATCH:
                        self._write(sql, batch)
                        batch.clear()
        except v.BadValue as exc:
            # the file was usable when the submissions were checked and is not now
            yield ReadError(
                f"table {table}: {exc.rule}",
                location=Location(file=name),
                error_code=exc.error_code,
            )
        if batch:
            self._write(sql, batch)

    def _write(self, sql: str, batch: list[tuple[Any, ...]]) -> None:
        """One batch in one transaction (in autocommit each row would be one)."""
        self.db.execute("BEGIN")
        self.db.executemany(sql, batch)
        self.db.execute("COMMIT")

    def _uid(self, row: int, tab: int = 0) -> int:
        return (self._rank * 2 + tab) * _ROW_SPAN + row

    # -- one checker per table: the insert tuple, or None for a row that adds nothing --------

    def _mpi(self, d: dict[str, str], s: _Row, row: int) -> tuple[Any, ...]:
        s.col = "LocalPatientId"
        lpid = v.required(d.get(s.col))
        s.col = "NHSNumber"
        nhs = v.text(d.get(s.col))
        if nhs is not None:
            nhs = nhs.replace(" ", "")
            if not is_valid_nhs_number(nhs):
                raise v.BadValue("must be 10 digits with a valid modulus 11 check digit")
        return (self._prov, lpid, nhs)

    def _referral(self, d: dict[str, str], s: _Row, row: int) -> tuple[Any, ...]:
        s.col = "ServiceRequestId"
        srid = v.required(d.get(s.col))
        s.col = "LocalPatientId"
        lpid = v.required(d.get(s.col))
        s.col = "ReferralRequestReceivedDate"
        received = v.iso_date(v.required(d.get(s.col)))
        s.col = "ServDischDate"
        disch = v.iso_date(d.get(s.col))
        if disch is not None and received is not None and disch < received:
            raise v.BadValue("must not be before ReferralRequestReceivedDate")
        s.col = "EndCode"
        end = v.text(d.get(s.col))
        if end is not None:
            end = end.zfill(2)
            if end not in self.spec.end_codes:
                raise v.BadValue("must be an EndCode of the data set (tt-dataset.md §4)")
        derived = None
        if self._derived:
            derived = json.dumps({c: v.text(d.get(c)) for c in self._derived}, sort_keys=True)
        assert received is not None
        return (
            self._prov,
            srid,
            lpid,
            received.isoformat(),
            disch.isoformat() if disch else None,
            end,
            derived,
            self._fid,
            row,
        )

    def _contact(self, d: dict[str, str], s: _Row, row: int) -> tuple[Any, ...]:
        spec = self.spec
        s.col = "CareContactId"
        ccid = v.required(d.get(s.col))
        s.col = "ServiceRequestId"
        srid = v.required(d.get(s.col))
        s.col = "CareContDate"
        when = v.iso_date(v.required(d.get(s.col)))
        s.col = "CareContTime"
        clock = v.clock(d.get(s.col))
        s.col = "AttendOrDNACode"
        attend = v.code_in(d.get(s.col), spec.attend_codes, "2-7 (or 02-07)", strip_zeros=True)
        s.col = "PlannedCareContIndicator"
        planned = v.code_in(d.get(s.col), _YES_NO, "Y, N", strip_zeros=False)
        s.col = "AppType"
        app = v.two_digit(d.get(s.col))
        if app is not None and app not in spec.app_types:
            raise v.BadValue("must be an AppType of the data set (tt-dataset.md §2)")
        s.col = "IAPTLTCServiceInd"
        ltc = v.code_in(d.get(s.col), _YES_NO, "Y, N", strip_zeros=False)
        attended = attend in spec.attended_codes or planned == spec.unplanned
        treat = attended and app in spec.treatment_app_types
        assert when is not None
        return (
            self._prov,
            ccid,
            srid,
            when.isoformat(),
            clock,
            int(treat),
            int(ltc == spec.ltc_yes),
        )

    def _activity(self, d: dict[str, str], s: _Row, row: int) -> tuple[Any, ...]:
        s.col = "CareActId"
        caid = v.required(d.get(s.col))
        s.col = "CareContactId"
        return (self._prov, caid, v.required(d.get(s.col)))

    def _scheme(self, d: dict[str, str], s: _Row) -> str:
        s.col = "FindSchemeInUse"
        schemes = frozenset({self.spec.scheme_icd10, self.spec.scheme_snomed})
        scheme = v.two_digit(v.required(d.get(s.col)))
        if scheme not in schemes:
            raise v.BadValue(f"must be one of {', '.join(sorted(schemes))}")
        return scheme

    def _ltc(self, d: dict[str, str], s: _Row, row: int) -> tuple[Any, ...]:
        s.col = "ServiceRequestId"
        srid = v.required(d.get(s.col))
        scheme = self._scheme(d, s)
        s.col = "LongTermCondition"
        code = v.required(d.get(s.col))
        if scheme == self.spec.scheme_snomed and not (code.isascii() and code.isdigit()):
            raise v.BadValue("must be a SNOMED CT concept id (digits) when FindSchemeInUse is 04")
        return (self._prov, srid, scheme, code, self._uid(row))

    def _complaint(self, d: dict[str, str], s: _Row, row: int) -> tuple[Any, ...]:
        s.col = "ServiceRequestId"
        srid = v.required(d.get(s.col))
        scheme = self._scheme(d, s)
        s.col = "PresComp"
        code = v.required(d.get(s.col))
        s.col = "PresCompCodSig"
        sig = v.code_in(d.get(s.col), frozenset(self.spec.significance), "1, 2", strip_zeros=True)
        s.col = "PresCompDate"
        when = v.iso_date(d.get(s.col))
        return (
            self._prov,
            srid,
            scheme,
            code,
            sig,
            when.isoformat() if when else None,
            self._uid(row),
        )

    def _score(self, d: dict[str, str], s: _Row) -> tuple[str, str | None] | None:
        """(tool, score text or None for not available), or None for a tool the episode does
        not use (still checked)."""
        s.col = "CodedAssToolType"
        tool_id = v.required(d.get(s.col))
        tool = self.spec.tools.get(tool_id)
        if tool is None:
            raise v.BadValue(
                "is not a concept the data set's score checks know (tt-dataset.md §3)",
                code=UNKNOWN_TOOL,
            )
        s.col = "PersScore"
        raw = v.text(d.get(s.col))
        value: str | None = None
        if raw is not None and raw.upper() not in self.spec.not_available:
            number = v.decimal(raw)
            if v.decimal_places(number) > tool.decimals:
                rule = (
                    "a whole number" if not tool.decimals else f"at most {tool.decimals} decimals"
                )
                raise v.BadValue(f"must be {rule} for {tool.name}", code=BAD_SCORE)
            if not tool.low <= number <= tool.high:
                raise v.BadValue(
                    f"must be between {tool.low} and {tool.high} for {tool.name}", code=BAD_SCORE
                )
            if number not in tool.not_available:
                value = str(number)
        if tool.measure is None and tool.wsas_item is None:
            return None
        return tool_id, value

    def _score_606(self, d: dict[str, str], s: _Row, row: int) -> tuple[Any, ...] | None:
        s.col = "ServiceRequestId"
        srid = v.required(d.get(s.col))
        s.col = "AssToolCompDate"
        when = v.iso_date(v.required(d.get(s.col)))
        s.col = "AssToolCompTime"
        clock = v.clock(d.get(s.col))
        score = self._score(d, s)
        if score is None:
            return None
        assert when is not None
        tool, value = score
        return (
            self._prov,
            srid,
            tool,
            when.isoformat(),
            clock,
            value,
            self._uid(row),
            self._fid,
            row,
        )

    def _score_607(self, d: dict[str, str], s: _Row, row: int) -> tuple[Any, ...] | None:
        s.col = "CareActId"
        caid = v.required(d.get(s.col))
        score = self._score(d, s)
        if score is None:
            return None
        tool, value = score
        return (self._prov, caid, tool, value, self._uid(row, 1), self._fid, row)


def location(files: Sequence[str], fid: int, row: int, field: str) -> Location:
    return Location(file=files[fid], row=row, field=field)


__all__ = ["BAD_ROW", "BAD_SCORE", "SCHEMA", "UNKNOWN_TOOL", "Loader", "connect", "location"]
