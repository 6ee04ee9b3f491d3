"""Consent to share outcomes, looked up for inputs that do not carry it (QuestionnaireResponses).

An episode row of an IAPT export carries ``consent_share_outcomes`` itself; a
QuestionnaireResponse (a session measure) does not. A :class:`ConsentRegister` answers "may this
response's outcome leave the adapter?" from the recorded consent, read from one or more CSV
files with at least the columns ``nhs_number`` and ``consent_share_outcomes`` (``Y`` agreed,
``N`` did not agree, ``W`` withdrew, blank not recorded; any case). The IAPT episode export
itself (``examples/iapt-outcomes.csv``) qualifies. When a file also has
``referral_identifier_system`` and ``referral_identifier``, each row is registered under that
referral too.

Lookup (:meth:`ConsentRegister.decide`):

1. the response's ``basedOn`` identifiers (the referral's ``system|value``): when the register
   knows any of them, their consent decides, and the NHS number is not consulted — consent is
   recorded per care pathway, and the referral names the pathway;
2. otherwise the NHS number of ``subject.identifier``;
3. otherwise nothing is recorded.

Several rows for the same key (a patient with several pathways, the same patient in two files):
**the most restrictive wins**, in the order ``W`` > ``N`` > not recorded (blank) > ``Y``. So one
withdrawal anywhere withholds every response matched only by that NHS number, and a single
``Y`` never outweighs a blank or a refusal.

Loading is strict and streamed: the file is read row by row (only the keys are kept) and any bad
row — an NHS number that is not 10 digits or fails modulus 11, a consent value other than
Y/N/W/blank, half a referral identifier, unreadable CSV — fails the whole load with a
:class:`~fhir_iapt.errors.ReadError` listing every bad row by file, row and field. A register
that silently dropped a ``W`` row could let another row's ``Y`` through, so a partial register is
never returned.

For a long-running caller (the relay), :class:`ConsentFiles` re-reads the files when they change,
so a withdrawal takes effect without a restart, and fails closed when they break.

Privacy: the register holds NHS numbers and referral identifiers as plain strings in memory and
nothing else; its ``repr`` shows counts only, and no message names a value.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final

from fhir_iapt.errors import ConfigError, Issue, Location, ReadError
from fhir_iapt.nhs_number import normalise_nhs_number
from fhir_iapt.scoring.episode import OutcomeConsent
from fhir_iapt.scoring.responses import ScoredResponse
from fhir_iapt.sources import SourceRecord, read_records
from fhir_iapt.systems import NHS_NUMBER

NHS_COLUMN: Final = "nhs_number"
CONSENT_COLUMN: Final = "consent_share_outcomes"
REFERRAL_SYSTEM_COLUMN: Final = "referral_identifier_system"
REFERRAL_VALUE_COLUMN: Final = "referral_identifier"

#: A consent register file has a bad header or row (the issues say which and where).
BAD_REGISTER: Final = "FI110"
#: A consent register file named by an option or a setting cannot be opened.
UNREADABLE_REGISTER: Final = "FI810"

#: Restrictiveness: the higher wins when rows disagree. "" is "not recorded".
_RANK: Final[Mapping[str, int]] = {"Y": 0, "": 1, "N": 2, "W": 3}
_CONSENT: Final[Mapping[str, str]] = {"Y": "Y", "N": "N", "W": "W", "": ""}
#: Issues kept in one load error; the rest are counted.
_MAX_ISSUES: Final = 50


def _checked(code: str) -> str:
    if code not in _RANK:
        raise ValueError("consent codes are Y, N, W or '' (not recorded)")
    return code


def _keep(table: dict[str, str], key: str, code: str) -> None:
    held = table.get(key)
    if held is None or _RANK[code] > _RANK[held]:
        table[key] = code


class ConsentRegister:
    """Recorded consent to share outcomes, by referral identifier and by NHS number.

    Build one with :func:`load_consent_register` (files) or :meth:`from_csv` (a stream); combine
    with :meth:`merged`. Immutable once built.
    """

    __slots__ = ("_patients", "_referrals", "sources")

    def __init__(
        self,
        patients: Mapping[str, str] | None = None,
        referrals: Mapping[str, str] | None = None,
        sources: Iterable[str] = (),
    ) -> None:
        self._patients: dict[str, str] = {}
        self._referrals: dict[str, str] = {}
        for nhs_number, code in (patients or {}).items():
            digits = normalise_nhs_number(nhs_number)
            if digits is None:
                raise ValueError("a register key is not a valid NHS number")
            _keep(self._patients, digits, _checked(code))
        for referral, code in (referrals or {}).items():
            _keep(self._referrals, referral, _checked(code))
        #: Names of the files the register was read from (no patient data).
        self.sources: tuple[str, ...] = tuple(sources)

    def __repr__(self) -> str:
        return (
            f"ConsentRegister({len(self._patients)} NHS numbers, "
            f"{len(self._referrals)} referrals, sources={list(self.sources)!r})"
        )

    @property
    def counts(self) -> dict[str, int]:
        """How many NHS numbers and referrals it knows (for logs and health checks)."""
        return {"nhs_numbers": len(self._patients), "referrals": len(self._referrals)}

    @classmethod
    def from_csv(cls, stream: BinaryIO, *, name: str) -> ConsentRegister:
        """Read one consent CSV (streamed). Raises ReadError listing every bad row."""
        patients: dict[str, str] = {}
        referrals: dict[str, str] = {}
        issues: list[Issue] = []
        bad_rows = 0
        options = {"required_columns": (NHS_COLUMN, CONSENT_COLUMN)}
        for item in read_records(stream, name=name, fmt="csv", options=options):
            if isinstance(item, ReadError):
                bad_rows += 1
                issues.extend(_relabel(item.issues))
                continue
            row_issues = _register_row(item, patients, referrals)
            if row_issues:
                bad_rows += 1
                issues.extend(row_issues)
        if issues:
            shown = issues[:_MAX_ISSUES]
            more = len(issues) - len(shown)
            message = (
                f"consent register {name} cannot be used: {bad_rows} bad row(s) or header; "
                "nothing from it is trusted"
            )
            if more:
                message += f" ({more} further issue(s) not listed)"
            raise ReadError(
                message, issues=shown, location=Location(file=name), error_code=BAD_REGISTER
            )
        return cls(patients, referrals, (name,))

    def merged(self, other: ConsentRegister) -> ConsentRegister:
        """One register holding both; where they disagree the most restrictive consent wins."""
        out = ConsentRegister(self._patients, self._referrals, self.sources + other.sources)
        for key, code in other._patients.items():
            _keep(out._patients, key, code)
        for key, code in other._referrals.items():
            _keep(out._referrals, key, code)
        return out

    def lookup(
        self, *, nhs_number: str | None, referrals: Iterable[tuple[str, str]] = ()
    ) -> str | None:
        """What the register recorded for this record: ``Y``/``N``/``W``/``""`` (blank), or
        None when it holds no row for it. Referral identifiers first, then the NHS number."""
        found = [
            self._referrals[key]
            for key in (f"{system}|{value}" for system, value in referrals)
            if key in self._referrals
        ]
        if found:
            return max(found, key=_RANK.__getitem__)
        digits = normalise_nhs_number(nhs_number) if nhs_number else None
        return self._patients.get(digits) if digits else None

    def decide(
        self, *, nhs_number: str | None, referrals: Iterable[tuple[str, str]] = ()
    ) -> OutcomeConsent | None:
        """The recorded consent (module doc); None means not recorded.

        ``referrals`` are ``(system, value)`` pairs.
        """
        return _as_consent(self.lookup(nhs_number=nhs_number, referrals=referrals) or "")

    def for_response(self, scored: ScoredResponse) -> OutcomeConsent | None:
        """The recorded consent for a read QuestionnaireResponse (basedOn, then subject)."""
        return self.decide(
            nhs_number=nhs_number_of(scored.subject), referrals=referrals_of(scored.based_on)
        )


def _as_consent(code: str) -> OutcomeConsent | None:
    if code == "Y":
        return "Y"
    if code == "N":
        return "N"
    if code == "W":
        return "W"
    return None


def _identifier(reference: Mapping[str, Any]) -> tuple[str, str] | None:
    ident = reference.get("identifier")
    if not isinstance(ident, dict):
        return None
    system, value = ident.get("system"), ident.get("value")
    if isinstance(system, str) and system and isinstance(value, str) and value:
        return system, value
    return None


def referrals_of(based_on: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The ``(system, value)`` referral identifiers of a resource's ``basedOn`` references."""
    return [pair for ref in based_on if (pair := _identifier(ref))]


def nhs_number_of(subject: Mapping[str, Any]) -> str | None:
    """The NHS number of a logical ``subject`` reference, if it is one."""
    pair = _identifier(subject)
    if pair is None or pair[0] != NHS_NUMBER:
        return None
    return pair[1]


def _relabel(issues: Iterable[Issue]) -> list[Issue]:
    """Reader issues keep their location and code; the severity says the load failed."""
    return [
        Issue(
            diagnostics=i.diagnostics,
            code=i.code,
            severity="error",
            location=i.location,
            expression=i.expression,
            error_code=i.error_code or BAD_REGISTER,
        )
        for i in issues
    ]


def _register_row(
    record: SourceRecord, patients: dict[str, str], referrals: dict[str, str]
) -> list[Issue]:
    """Add one row to the tables, or return what is wrong with it (nothing is added then)."""
    data: Mapping[str, str] = record.data
    at = record.location
    issues: list[Issue] = []

    def bad(field: str, rule: str) -> None:
        issues.append(
            Issue(
                diagnostics=f"{field} {rule}",
                code="value",
                location=at.with_field(field),
                error_code=BAD_REGISTER,
            )
        )

    digits = normalise_nhs_number(data[NHS_COLUMN])
    if digits is None:
        bad(NHS_COLUMN, "is not a valid NHS number (10 digits, modulus 11)")
    code = _CONSENT.get(data[CONSENT_COLUMN].strip().upper())
    if code is None:
        bad(CONSENT_COLUMN, "must be Y, N, W or blank")
    has_system = REFERRAL_SYSTEM_COLUMN in data
    if has_system != (REFERRAL_VALUE_COLUMN in data):
        missing = REFERRAL_VALUE_COLUMN if has_system else REFERRAL_SYSTEM_COLUMN
        bad(missing, "is missing: referral_identifier_system and referral_identifier go together")
    referral: str | None = None
    if has_system and REFERRAL_VALUE_COLUMN in data:
        system = data[REFERRAL_SYSTEM_COLUMN].strip()
        value = data[REFERRAL_VALUE_COLUMN].strip()
        if bool(system) != bool(value):
            empty = REFERRAL_VALUE_COLUMN if system else REFERRAL_SYSTEM_COLUMN
            bad(empty, "is blank while the other half of the referral identifier is not")
        elif system:
            referral = f"{system}|{value}"
    if issues or digits is None or code is None:
        return issues
    _keep(patients, digits, code)
    if referral is not None:
        _keep(referrals, referral, code)
    return []


def load_consent_register(paths: Iterable[str | os.PathLike[str]]) -> ConsentRegister:
    """Read and merge consent CSV files (most restrictive wins across files too).

    For the CLI (``--consent``) and the relay (a settings path). Raises ConfigError when a file
    cannot be opened or any file has a bad header or row; its issues locate each problem by
    file, row and field, never by value.
    """
    register = ConsentRegister()
    for path in paths:
        name = Path(path).name
        try:
            fh = Path(path).open("rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise ConfigError(
                f"consent register cannot be opened: {exc.strerror or type(exc).__name__}",
                location=Location(file=str(path)),
                error_code=UNREADABLE_REGISTER,
            ) from None
        with fh:
            try:
                register = register.merged(ConsentRegister.from_csv(fh, name=name))
            except ReadError as exc:
                raise ConfigError(
                    exc.message, issues=exc.issues, location=exc.location, error_code=exc.error_code
                ) from None
    return register


class ConsentFiles:
    """Consent register files that are re-read when they change (for a long-running relay).

    A withdrawal must take effect without a restart: :meth:`current` checks every file's size,
    modification time and inode (one ``stat`` each) and reloads all of them when any changed.
    It fails closed: when a file has gone or become malformed it raises ConfigError (and keeps
    raising until the files are fixed) rather than answering from a register that may lack a
    withdrawal. The first load happens in the constructor, so bad settings fail at startup.
    Thread-safe.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        self.paths: tuple[Path, ...] = tuple(Path(p) for p in paths)
        self._lock = threading.Lock()
        self._stamp = self._stamps()
        self._register = load_consent_register(self.paths)

    def __repr__(self) -> str:
        return f"ConsentFiles({[p.name for p in self.paths]!r})"

    def __reduce__(self) -> tuple[Any, tuple[tuple[Path, ...]]]:
        # A worker process gets the paths and reads the files itself (still live there), on
        # first use: a register broken meanwhile is that task's ConfigError, never a failure
        # to unpickle the task (which would end the worker process).
        return (_unloaded_consent_files, (self.paths,))

    def _stamps(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in self.paths:
            try:
                st = path.stat()
            except OSError as exc:
                raise ConfigError(
                    f"consent register cannot be opened: {exc.strerror or type(exc).__name__}",
                    location=Location(file=str(path)),
                    error_code=UNREADABLE_REGISTER,
                ) from None
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)

    def current(self) -> ConsentRegister:
        """The register as the files now say (re-read if any changed; ConfigError if broken)."""
        with self._lock:
            stamp = self._stamps()
            if stamp != self._stamp:
                self._register = load_consent_register(self.paths)
                self._stamp = stamp
            return self._register


def _unloaded_consent_files(paths: tuple[Path, ...]) -> ConsentFiles:
    """ConsentFiles for ``paths`` that reads them on the first :meth:`~ConsentFiles.current`."""
    made = ConsentFiles.__new__(ConsentFiles)
    made.paths = paths
    made._lock = threading.Lock()
    made._stamp = ()  # no file's stamp: the first current() loads
    made._register = ConsentRegister({})
    return made


# --- the one consent gate ------------------------------------------------------------------

#: Skipped.reason codes (and words) for an outcome that may not be shared.
OUTCOME_CONSENT_SKIPS: Final[Mapping[OutcomeConsent | None, tuple[str, str]]] = {
    "N": ("outcomes-consent-withheld", "the patient did not agree to share outcomes"),
    "W": ("outcomes-consent-withdrawn", "the patient withdrew consent to share outcomes"),
    None: ("outcomes-consent-not-recorded", "consent to share outcomes was not recorded"),
}
#: Said instead of the plain "not recorded" detail when no register was given at all.
NO_REGISTER_DETAIL: Final = (
    "consent to share outcomes was not recorded: no consent register was given (a "
    "QuestionnaireResponse carries no consent of its own)"
)


class _NotCarried:
    """Marker: the record carries no consent of its own (a QuestionnaireResponse)."""

    def __repr__(self) -> str:
        return "NOT_CARRIED"


NOT_CARRIED: Final = _NotCarried()

#: Where recorded consent comes from: a register read once, or files re-read when they change.
ConsentSource = ConsentRegister | ConsentFiles


def current_register(source: ConsentSource | None) -> ConsentRegister | None:
    """The register as it is now (files re-read if changed; ConfigError if they broke)."""
    if isinstance(source, ConsentFiles):
        return source.current()
    return source


def outcome_consent_gate(
    register: ConsentRegister | None,
    *,
    carried: OutcomeConsent | _NotCarried | None,
    nhs_number: str | None,
    referrals: Iterable[tuple[str, str]] = (),
) -> tuple[str, str] | None:
    """May this outcome leave the adapter? None if yes; else the Skipped ``(reason, detail)``.

    The one rule, for every record kind and every caller (library, CLI, relay):

    * a record that carries its own consent (an episode row's ``consent_share_outcomes``) is
      decided by it, unless the register holds a row for the same referral or patient, in which
      case the more restrictive of the two wins (a withdrawal recorded in the register stops an
      episode whose export still says ``Y``);
    * a record that carries none (``NOT_CARRIED``: a QuestionnaireResponse) is decided by the
      register alone; with no register, or no row for it, nothing is sent.

    Only ``Y`` lets an outcome through.
    """
    known = (
        register.lookup(nhs_number=nhs_number, referrals=referrals)
        if register is not None
        else None
    )
    if isinstance(carried, _NotCarried):
        if register is None:
            return OUTCOME_CONSENT_SKIPS[None][0], NO_REGISTER_DETAIL
        code = known or ""
    else:
        code = carried or ""
        if known is not None and _RANK[known] > _RANK[code]:
            code = known
    decision = _as_consent(code)
    return None if decision == "Y" else OUTCOME_CONSENT_SKIPS[decision]


__all__ = [
    "BAD_REGISTER",
    "CONSENT_COLUMN",
    "NHS_COLUMN",
    "NOT_CARRIED",
    "NO_REGISTER_DETAIL",
    "OUTCOME_CONSENT_SKIPS",
    "REFERRAL_SYSTEM_COLUMN",
    "REFERRAL_VALUE_COLUMN",
    "UNREADABLE_REGISTER",
    "ConsentFiles",
    "ConsentRegister",
    "ConsentSource",
    "current_register",
    "load_consent_register",
    "nhs_number_of",
    "outcome_consent_gate",
    "referrals_of",
]
