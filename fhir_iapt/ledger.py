"""The referral ledger: what referrals the adapter sent, so outcomes can be matched back to them.

The NHS Talking Therapies data set carries no referrer identifier, so the adapter remembers each
referral it converts or delivers (``fhir-iapt convert``, the relay, a library caller) in a
SQLite file. The outcomes run matches every data-set pathway to one of these referrals; its
outcome is then ``basedOn`` that ServiceRequest, and consent comes from the entry unless a
later consent register withdraws it.

**What an entry holds** (and nothing else: no names, birth dates, addresses, scores or free
text): the ServiceRequest's identifier (system and value), the patient's NHS number, the
ServiceRequest's ``authoredOn`` date, the ODS code of its performer (the Talking Therapies
service), the SNOMED code of the referral's long-term condition (the bundle's first
Condition), the patient's choice on sharing outcomes (the bundle's Consent:
``permit`` True, ``deny`` False, no Consent None), and for the pathway report the sending
clinic's ODS code (the ServiceRequest's requester: the clinic itself, or the PractitionerRole's
organization) and whether a screening went with it (a QuestionnaireResponse to one of the
shipped PHQ / GAD Questionnaires). Entries are keyed by the ServiceRequest's identifier:
recording a re-sent or corrected referral updates its entry, never adds a second.

**Schema.** ``PRAGMA user_version`` says which schema a file has; opening an older file runs
the missing steps (:data:`SCHEMA_VERSION`). Schema 2 added the clinic and the screening: rows
recorded before read them as None (unknown), never as "none sent".

**Matching rule** (:meth:`Ledger.match`): a pathway matches a ledger referral when

* the NHS numbers are equal,
* the provider agrees: the referral's performer ODS code equals the pathway's provider ODS
  code (case-insensitive) when both are known; an unknown one on either side does not
  exclude, and
* the pathway's referral received date is on or after ``authoredOn`` and at most
  ``window_days`` days after it (``0 <= received - authored_on <= window_days``; default 90).

Exactly one such referral: matched. None: ``no-referral-in-ledger``; more than one:
``several-referrals-in-ledger``. Either way nothing is sent for that pathway, and the reason is
counted like a Skipped record's.

**Retention.** An entry is needed until the outcomes of its referral have come back: a data-set
pathway starts within the matching window and may run for many months. Entries are kept until
purged: ``fhir-iapt ledger purge --ledger PATH --before YYYY-MM-DD`` (or
:meth:`Ledger.purge`) removes every entry authored before that date; the deleted rows are
overwritten in the file (``secure_delete``) and the write-ahead log is truncated, so purged NHS
numbers do not linger in the file's free pages. A service's records-management policy sets the
date; purging entries older than the longest pathway the service reports on (e.g. two years)
keeps every match possible.

The file is SQLite in WAL mode (readers, e.g. an outcomes run, do not block a converting
writer); one :class:`Ledger` may be shared by several threads. Nothing here logs, and no
error message carries an NHS number or any other value from a bundle.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import orjson

from fhir_iapt.errors import ConfigError, Location
from fhir_iapt.scoring.instruments import instrument_specs
from fhir_iapt.systems import NHS_NUMBER, ODS_ORGANIZATION, SNOMED, project_url

#: Match reasons, in the style of a Skipped record's reason codes.
NO_REFERRAL: Final = "no-referral-in-ledger"
SEVERAL_REFERRALS: Final = "several-referrals-in-ledger"

#: The default matching window: a pathway's referral received up to this many days after the
#: referral was authored.
DEFAULT_WINDOW_DAYS: Final = 90

#: Marks a file as a ledger (``PRAGMA application_id``; "FIRL").
APPLICATION_ID: Final = 0x4649524C
#: The schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION: Final = 2

#: Schema steps: ``_MIGRATIONS[n]`` takes a ledger from version n to n + 1.
_MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE referral (
        identifier_system TEXT NOT NULL,
        identifier        TEXT NOT NULL,
        nhs_number        TEXT NOT NULL,
        authored_on       TEXT NOT NULL,  -- ISO 8601 date
        performer_ods     TEXT,
        ltc_snomed        TEXT,
        share_outcomes    INTEGER,        -- 1 permit, 0 deny, NULL no Consent
        PRIMARY KEY (identifier_system, identifier)
    );
    CREATE INDEX referral_by_patient ON referral (nhs_number, authored_on);
    """,
    # 2: for the pathway report; rows recorded before hold NULL (unknown)
    """
    ALTER TABLE referral ADD COLUMN requester_ods TEXT;
    ALTER TABLE referral ADD COLUMN screening_sent INTEGER
    """,
)

_UPSERT: Final = """
    INSERT INTO referral (identifier_system, identifier, nhs_number, authored_on,
                          performer_ods, ltc_snomed, share_outcomes, requester_ods,
                          screening_sent)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (identifier_system, identifier) DO UPDATE SET
        nhs_number = excluded.nhs_number,
        authored_on = excluded.authored_on,
        performer_ods = excluded.performer_ods,
        ltc_snomed = excluded.ltc_snomed,
        share_outcomes = excluded.share_outcomes,
        requester_ods = excluded.requester_ods,
        screening_sent = excluded.screening_sent
"""
_SELECT_ONE: Final = """
    SELECT identifier_system, identifier, nhs_number, authored_on, performer_ods, ltc_snomed,
           share_outcomes, requester_ods, screening_sent
    FROM referral WHERE identifier_system = ? AND identifier = ?
"""
_SELECT_PATIENT: Final = """
    SELECT identifier_system, identifier, nhs_number, authored_on, performer_ods, ltc_snomed,
           share_outcomes, requester_ods, screening_sent
    FROM referral WHERE nhs_number = ? AND authored_on >= ? AND authored_on <= ?
"""
_SELECT_ALL: Final = """
    SELECT identifier_system, identifier, nhs_number, authored_on, performer_ods, ltc_snomed,
           share_outcomes, requester_ods, screening_sent
    FROM referral WHERE (identifier_system, identifier) > (?, ?)
    ORDER BY identifier_system, identifier LIMIT ?
"""

#: The ledger file cannot be used.
UNUSABLE: Final = "FI830"
#: A referral bundle lacks what the ledger records.
NOT_RECORDABLE: Final = "FI831"


class LedgerError(ConfigError):
    """The ledger file cannot be opened, created, migrated or written (FI830), or a referral
    bundle lacks what an entry needs (FI831). Messages name the file or the element, never a
    value from the bundle."""

    code = UNUSABLE


#: An entry as stored: identifier system and value, NHS number, authoredOn (ISO date),
#: performer ODS, LTC SNOMED code, share outcomes (1, 0 or None), requester ODS, screening
#: sent (1, 0 or None).
LedgerRow = tuple[str, str, str, str, str | None, str | None, int | None, str | None, int | None]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One referral the adapter sent: only what matching and consent need."""

    #: the ServiceRequest's identifier (system|value)
    identifier_system: str
    identifier: str
    nhs_number: str
    #: ServiceRequest.authoredOn
    authored_on: date
    #: ServiceRequest.performer's ODS code (the Talking Therapies service)
    performer_ods: str | None
    #: the referral's long-term condition (the bundle's first Condition's SNOMED code)
    ltc_snomed: str | None
    #: the bundle's Consent: permit True, deny False, no Consent None
    share_outcomes: bool | None
    #: the sending clinic: ServiceRequest.requester's ODS code (the clinic itself, or the
    #: PractitionerRole's organization); None when it names none, or recorded before schema 2
    requester_ods: str | None = None
    #: a screening went with the referral: a QuestionnaireResponse to a shipped PHQ / GAD
    #: Questionnaire (True / False); None = unknown (recorded before schema 2)
    screening_sent: bool | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """What :meth:`Ledger.match` found for one pathway."""

    entry: LedgerEntry | None
    #: None when matched; else ``no-referral-in-ledger`` or ``several-referrals-in-ledger``
    reason: str | None
    #: the finding in words (no patient data)
    detail: str


# --- reading a referral bundle -------------------------------------------------------------


def _not_recordable(element: str, rule: str) -> LedgerError:
    return LedgerError(
        f"the referral cannot be recorded in the ledger: {element} {rule}",
        location=Location(element=element),
        error_code=NOT_RECORDABLE,
    )


def _identifier_value(identifier: Any, system: str) -> str | None:
    if isinstance(identifier, Mapping) and identifier.get("system") == system:
        value = identifier.get("value")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _resources(bundle: Mapping[str, Any]) -> list[tuple[str | None, Mapping[str, Any]]]:
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return []
    out: list[tuple[str | None, Mapping[str, Any]]] = []
    for entry in entries:
        if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping):
            full_url = entry.get("fullUrl")
            out.append((full_url if isinstance(full_url, str) else None, entry["resource"]))
    return out


def _resolve(
    reference: Any,
    by_url: Mapping[str, Mapping[str, Any]],
    resource_type: str,
) -> Mapping[str, Any] | None:
    """The bundle entry a ``{"reference": ...}`` points at (fullUrl or Type/id)."""
    if not isinstance(reference, Mapping):
        return None
    target = reference.get("reference")
    if not isinstance(target, str):
        return None
    found = by_url.get(target)
    if found is None and target.startswith(f"{resource_type}/"):
        wanted = target.split("/", 1)[1]
        found = next(
            (
                r
                for r in by_url.values()
                if r.get("resourceType") == resource_type and r.get("id") == wanted
            ),
            None,
        )
    return found if found is not None and found.get("resourceType") == resource_type else None


def _nhs_number(
    subject: Any, by_url: Mapping[str, Mapping[str, Any]], resources: list[Mapping[str, Any]]
) -> str | None:
    """The NHS number of the ServiceRequest's subject (a logical identifier or the Patient it
    references; a bundle with one Patient and no resolvable subject: that Patient's)."""
    if isinstance(subject, Mapping):
        direct = _identifier_value(subject.get("identifier"), NHS_NUMBER)
        if direct is not None:
            return direct
    patient = _resolve(subject, by_url, "Patient")
    if patient is None:
        patients = [r for r in resources if r.get("resourceType") == "Patient"]
        patient = patients[0] if len(patients) == 1 else None
    if patient is None:
        return None
    identifiers = patient.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else ():
        value = _identifier_value(identifier, NHS_NUMBER)
        if value is not None:
            return value
    return None


def _performer_ods(performers: Any, by_url: Mapping[str, Mapping[str, Any]]) -> str | None:
    for performer in performers if isinstance(performers, list) else ():
        if not isinstance(performer, Mapping):
            continue
        value = _identifier_value(performer.get("identifier"), ODS_ORGANIZATION)
        if value is not None:
            return value
        organization = _resolve(performer, by_url, "Organization")
        identifiers = organization.get("identifier") if organization is not None else None
        for identifier in identifiers if isinstance(identifiers, list) else ():
            value = _identifier_value(identifier, ODS_ORGANIZATION)
            if value is not None:
                return value
    return None


def _ods_of(resource: Mapping[str, Any] | None) -> str | None:
    identifiers = resource.get("identifier") if resource is not None else None
    for identifier in identifiers if isinstance(identifiers, list) else ():
        value = _identifier_value(identifier, ODS_ORGANIZATION)
        if value is not None:
            return value
    return None


def _organization_ods(reference: Any, by_url: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The ODS code of an Organization reference: a logical one, or the entry it names."""
    if not isinstance(reference, Mapping):
        return None
    direct = _identifier_value(reference.get("identifier"), ODS_ORGANIZATION)
    if direct is not None:
        return direct
    return _ods_of(_resolve(reference, by_url, "Organization"))


def _requester_ods(requester: Any, by_url: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The sending clinic: the requester's ODS code when it is the clinic (an Organization), or
    its organization's when it is a PractitionerRole."""
    found = _organization_ods(requester, by_url)
    if found is not None:
        return found
    role = _resolve(requester, by_url, "PractitionerRole")
    return _organization_ods(role.get("organization"), by_url) if role is not None else None


@cache
def screening_questionnaires() -> frozenset[str]:
    """The canonical URLs (no version) of the shipped screening Questionnaires: PHQ-9, GAD-7,
    PHQ-2, GAD-2 (``instruments.yaml``)."""
    return frozenset(project_url("Questionnaire", s.slug) for s in instrument_specs().values())


def _is_screening(canonical: Any) -> bool:
    return isinstance(canonical, str) and canonical.split("|", 1)[0] in screening_questionnaires()


def _snomed(concept: Any) -> str | None:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    for coding in codings if isinstance(codings, list) else ():
        if isinstance(coding, Mapping) and coding.get("system") == SNOMED:
            code = coding.get("code")
            if isinstance(code, str) and code:
                return code
    return None


def _share_outcomes(resources: list[Mapping[str, Any]]) -> bool | None:
    consents = [r for r in resources if r.get("resourceType") == "Consent"]
    consent = consents[-1] if consents else None
    if consent is None:
        return None
    provision = consent.get("provision")
    kind = provision.get("type") if isinstance(provision, Mapping) else None
    if kind == "permit":
        return True
    if kind == "deny":
        return False
    return None


def _authored_on(value: Any) -> date:
    if not isinstance(value, str):
        raise _not_recordable("ServiceRequest.authoredOn", "is missing")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise _not_recordable("ServiceRequest.authoredOn", "is not a date") from None


def entry_from_bundle(bundle: Mapping[str, Any]) -> LedgerEntry | None:
    """The ledger entry of a referral transaction Bundle; None when it holds no ServiceRequest.

    A referral bundle holds one ServiceRequest and at most one Consent (the builder's do); in
    a bundle with more, the last of each is read. The LTC is the first Condition's SNOMED code.

    Raises :class:`LedgerError` (FI831) when the ServiceRequest lacks an identifier, its
    patient's NHS number or ``authoredOn``.
    """
    located = _resources(bundle)
    resources = [resource for _, resource in located]
    requests = [r for r in resources if r.get("resourceType") == "ServiceRequest"]
    request = requests[-1] if requests else None
    if request is None:
        return None
    by_url = {url: resource for url, resource in located if url is not None}
    identifiers = request.get("identifier")
    found = next(
        (
            (i["system"], i["value"])
            for i in (identifiers if isinstance(identifiers, list) else ())
            if isinstance(i, Mapping)
            and isinstance(i.get("system"), str)
            and isinstance(i.get("value"), str)
            and i["system"]
            and i["value"]
        ),
        None,
    )
    if found is None:
        raise _not_recordable("ServiceRequest.identifier", "has no system and value")
    nhs_number = _nhs_number(request.get("subject"), by_url, resources)
    if nhs_number is None:
        raise _not_recordable("ServiceRequest.subject", "has no NHS number")
    condition = next((r for r in resources if r.get("resourceType") == "Condition"), None)
    return LedgerEntry(
        identifier_system=found[0],
        identifier=found[1],
        nhs_number=nhs_number,
        authored_on=_authored_on(request.get("authoredOn")),
        performer_ods=_performer_ods(request.get("performer"), by_url),
        ltc_snomed=_snomed(condition.get("code")) if condition is not None else None,
        share_outcomes=_share_outcomes(resources),
        requester_ods=_requester_ods(request.get("requester"), by_url),
        screening_sent=any(
            r.get("resourceType") == "QuestionnaireResponse"
            and _is_screening(r.get("questionnaire"))
            for r in resources
        ),
    )


#: Where the builder writes each field (compact JSON, its key order). A quote inside a JSON
#: string is always escaped, so none of these can be found inside a string value.
_SEAM: Final = b'},{"fullUrl":"'
_REQUEST: Final = b'"resource":{"resourceType":"ServiceRequest",'
_CONDITION: Final = b'"resource":{"resourceType":"Condition",'
_CONSENT: Final = b'"resource":{"resourceType":"Consent",'
_REQUEST_ID: Final = re.compile(rb'"identifier":\[\{"system":"([^"\\]+)","value":"([^"\\]+)"')
_SUBJECT_AUTHORED: Final = re.compile(
    rb'"subject":\{"reference":"([^"\\]+)"\},"authoredOn":"(\d{4}-\d{2}-\d{2})(?:T[^"\\]*)?"'
)
_ODS_IDENTIFIER: Final = (
    rb'"type":"Organization","identifier":\{"system":"'
    + re.escape(ODS_ORGANIZATION.encode())
    + rb'","value":"([^"\\]+)"\}'
)
_REQUESTER_REFERENCE: Final = re.compile(rb',"requester":\{"reference":"([^"\\]+)"\}')
_REQUESTER_CLINIC: Final = re.compile(rb',"requester":\{' + _ODS_IDENTIFIER + rb"\}")
_PERFORMER: Final = re.compile(rb',"performer":\[\{' + _ODS_IDENTIFIER)
_ROLE_ORGANIZATION: Final = re.compile(rb'"organization":\{' + _ODS_IDENTIFIER + rb"\}")
_RESPONSE: Final = b'"resource":{"resourceType":"QuestionnaireResponse",'
_QUESTIONNAIRE: Final = b'"questionnaire":'
_NHS: Final = b'"system":"' + NHS_NUMBER.encode() + b'","value":"'
_LTC: Final = b'"code":{"coding":[{"system":"' + SNOMED.encode() + b'","code":"'
_PROVISION: Final = b'"provision":{"type":"'


def _span(data: bytes, start: int) -> int:
    """Where the bundle entry holding ``start`` ends."""
    end = data.find(_SEAM, start)
    return len(data) if end < 0 else end


def _after(data: bytes, key: bytes, start: int, end: int) -> tuple[str | None, int]:
    """The string value that follows ``key`` in ``data[start:end]``, and where it ends; None
    (and ``start``) when the key is not there or the value is blank or has an escape in it."""
    at = data.find(key, start, end)
    if at < 0:
        return None, start
    at += len(key)
    close = data.find(b'"', at, end)
    if close < 0:
        return None, start
    raw = data[at:close]
    if b"\\" in raw:
        return None, start
    return raw.decode("utf-8").strip() or None, close


def _text(raw: bytes) -> str | None:
    return raw.decode("utf-8").strip() or None


def _fast_row(data: bytes) -> LedgerRow | None:
    """The entry read straight from the bytes the builder made (a referral bundle is ~14 kB;
    parsing it whole would cost a fifth of converting its record). None when anything is not
    where the builder puts it (the ServiceRequest's fields are matched in the builder's key
    order): the caller then parses the bundle. What is found here is what
    :func:`entry_from_bundle` finds; an optional value is taken as absent only when its
    element (or resource) is not in the bytes at all."""
    request = data.rfind(_REQUEST)
    if request < 0:
        return None
    end = _span(data, request)
    if data.find(b'"contained":', request, end) >= 0:  # its fields may be a contained one's
        return None
    at = data.find(b'"identifier":[{', request, end)
    head = _REQUEST_ID.match(data, at) if at >= 0 else None
    if head is None:
        return None
    at = data.find(b'"subject":{', head.end(), end)
    subject = _SUBJECT_AUTHORED.match(data, at) if at >= 0 else None
    if subject is None:
        return None
    system, value, reference = _text(head[1]), _text(head[2]), _text(subject[1])
    if system is None or value is None or reference is None:
        return None
    at = subject.end()
    requester: str | None = None
    by_reference = _REQUESTER_REFERENCE.match(data, at)
    by_clinic = _REQUESTER_CLINIC.match(data, at) if by_reference is None else None
    if by_reference is not None:
        role = _role_clinic(data, by_reference[1])
        if role is None:
            return None
        requester, at = role[0], by_reference.end()
    elif by_clinic is not None:
        requester, at = _text(by_clinic[1]), by_clinic.end()
    elif data.find(b'"requester":', request, end) >= 0:
        return None
    performed = _PERFORMER.match(data, at)
    performer = _text(performed[1]) if performed is not None else None
    if performer is None and data.find(b'"performer":', request, end) >= 0:
        return None
    patient = data.find(
        b'{"fullUrl":"' + reference.encode() + b'","resource":{"resourceType":"Patient",'
    )
    if patient < 0:
        return None
    nhs_number, _ = _after(data, _NHS, patient, _span(data, patient))
    if nhs_number is None:
        return None
    ltc: str | None = None
    condition = data.find(_CONDITION)
    if condition >= 0:
        ltc, _ = _after(data, _LTC, condition, _span(data, condition))
        if ltc is None:
            return None
    elif data.find(b'"resourceType":"Condition"') >= 0:
        return None
    share: bool | None = None
    consent = data.rfind(_CONSENT)  # the last, as entry_from_bundle reads
    if consent >= 0:
        provision, _ = _after(data, _PROVISION, consent, _span(data, consent))
        share = {"permit": True, "deny": False}.get(provision or "")
        if share is None:
            return None
    elif data.find(b'"resourceType":"Consent"') >= 0:
        return None
    screening = _screening(data)
    if screening is None:
        return None
    authored = subject[2].decode()
    try:
        date.fromisoformat(authored)
    except ValueError:
        return None
    return (
        system,
        value,
        nhs_number,
        authored,
        performer,
        ltc,
        None if share is None else int(share),
        requester,
        int(screening),
    )


def _role_clinic(data: bytes, reference: bytes) -> tuple[str | None] | None:
    """(the clinic ODS code, or None when the role names no organization) of the
    PractitionerRole entry ``reference`` names, as the builder writes it; None when the
    reference is not one such entry (another type, two entries with that fullUrl, another
    layout): the caller then parses."""
    full_url = b'{"fullUrl":"' + reference + b'"'
    at = data.find(full_url + b',"resource":{"resourceType":"PractitionerRole",')
    if at < 0 or data.find(full_url, at + 1) >= 0 or data.find(full_url) != at:
        return None
    end = _span(data, at)
    if data.find(b'"contained":', at, end) >= 0:
        return None
    organization = data.find(b'"organization":', at, end)
    if organization < 0:
        return (None,)
    found = _ROLE_ORGANIZATION.match(data, organization)
    return (_text(found[1]),) if found is not None else None


def _screening(data: bytes) -> bool | None:
    """Whether any QuestionnaireResponse entry answers a screening Questionnaire, as
    :func:`entry_from_bundle` decides; None when one is not laid out as the builder writes it."""
    screening = False
    seen = 0
    at = data.find(_RESPONSE)
    while at >= 0:
        seen += 1
        end = _span(data, at)
        if data.find(b'"contained":', at, end) >= 0:
            return None
        key = data.find(_QUESTIONNAIRE, at, end)
        if key >= 0:
            start = key + len(_QUESTIONNAIRE)
            close = data.find(b'"', start + 1, end)
            raw = data[start + 1 : close] if close >= 0 else b""
            if data[start : start + 1] != b'"' or close < 0 or b"\\" in raw:
                return None
            screening = screening or _is_screening(raw.decode("utf-8"))
        at = data.find(_RESPONSE, end)
    if data.count(b'"resourceType":"QuestionnaireResponse"') != seen:
        return None
    return screening


def entry_from_json(data: bytes) -> LedgerEntry | None:
    """:func:`entry_from_bundle` of a bundle's JSON bytes (``Converted.json()``): read straight
    from the bytes when they are laid out as the builder makes them, else parsed."""
    row = referral_row(data)
    return _entry(row) if row is not None else None


def referral_row(data: bytes) -> LedgerRow | None:
    """:func:`entry_from_json` as the row :meth:`Ledger.record_rows` stores: the cheap way to
    record many referrals (``fhir-iapt convert`` and the relay use it)."""
    fast = _fast_row(data)
    if fast is not None:
        return fast
    try:
        bundle = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _not_recordable("Bundle", "is not JSON") from None
    entry = entry_from_bundle(bundle) if isinstance(bundle, dict) else None
    return _row(entry) if entry is not None else None


# --- the ledger file -----------------------------------------------------------------------


def _row(entry: LedgerEntry) -> LedgerRow:
    return (
        entry.identifier_system,
        entry.identifier,
        entry.nhs_number,
        entry.authored_on.isoformat(),
        entry.performer_ods,
        entry.ltc_snomed,
        None if entry.share_outcomes is None else int(entry.share_outcomes),
        entry.requester_ods,
        None if entry.screening_sent is None else int(entry.screening_sent),
    )


def ledger_row(values: Sequence[Any]) -> LedgerRow:
    """A row kept as a list (the relay's outbox holds pending rows as JSON) as the LedgerRow
    :meth:`Ledger.record_rows` takes; a 7-value row from before schema 2 gets the clinic and
    the screening unknown."""
    padded = [*values, None, None][:9]
    return (
        str(padded[0]),
        str(padded[1]),
        str(padded[2]),
        str(padded[3]),
        padded[4],
        padded[5],
        padded[6],
        padded[7],
        padded[8],
    )


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    system, identifier, nhs, authored, ods, ltc, share, requester, screening = row
    return LedgerEntry(
        identifier_system=system,
        identifier=identifier,
        nhs_number=nhs,
        authored_on=date.fromisoformat(authored),
        performer_ods=ods,
        ltc_snomed=ltc,
        share_outcomes=None if share is None else bool(share),
        requester_ods=requester,
        screening_sent=None if screening is None else bool(screening),
    )


class Ledger:
    """The referral ledger file (SQLite, WAL), created or migrated on open.

    Integrators using the library record each referral they send themselves::

        with Ledger("ledger.sqlite") as ledger:
            for result in convert_file(path, mapping="diabetes-csv"):
                if isinstance(result, Converted) and result.kind == "referral":
                    ledger.record_bundle(result.bundle)

    (or, cheaper, :meth:`record_rows` in batches over :func:`referral_row` of
    ``result.json()``, which reads the builder's bytes without parsing the bundle, as
    ``fhir-iapt convert`` does: ``write_results(..., ledger=ledger)`` in
    :mod:`fhir_iapt.cli._run` is that writer). One instance may be used by several threads;
    each call is one transaction. ``synchronous="full"`` makes a committed entry survive power
    loss (the relay uses its outbox's setting), ``"normal"`` a killed process only.

    Raises :class:`LedgerError` (FI830) when the file cannot be used: not SQLite, another
    application's database, written by a newer adapter, or not writable.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["full", "normal"] = "normal",
    ) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._unusable("cannot be opened", exc) from None
        try:
            self._prepare(synchronous)
        except sqlite3.Error as exc:
            self._db.close()
            raise self._unusable("cannot be opened as a ledger", exc) from None
        except LedgerError:
            self._db.close()
            raise

    def _unusable(self, what: str, exc: BaseException | None = None) -> LedgerError:
        reason = f" ({type(exc).__name__}: {exc})" if isinstance(exc, sqlite3.Error) else ""
        if isinstance(exc, OSError):
            reason = f" ({exc.strerror or type(exc).__name__})"
        return LedgerError(
            f"the referral ledger {what}{reason}", location=Location(file=self.path.name)
        )

    def _prepare(self, synchronous: str) -> None:
        db = self._db
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
        db.execute("PRAGMA secure_delete = ON")
        db.execute("BEGIN IMMEDIATE")
        try:
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            if app_id != APPLICATION_ID and (app_id != 0 or tables):
                raise self._unusable("is another application's database, not a ledger")
            if version > SCHEMA_VERSION:
                raise self._unusable(
                    f"was written by a newer adapter (schema {version}, this one reads "
                    f"{SCHEMA_VERSION})"
                )
            for step in _MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip():
                        db.execute(statement)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write(self, sql: str, rows: Iterable[tuple[Any, ...]] | tuple[Any, ...]) -> int:
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    if isinstance(rows, tuple):
                        count = db.execute(sql, rows).rowcount
                    else:
                        count = db.executemany(sql, rows).rowcount
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._unusable("cannot be written", exc) from None
            return count

    def record(self, entry: LedgerEntry) -> None:
        """Add the entry, or update the one with its identifier (a re-sent referral)."""
        self._write(_UPSERT, _row(entry))

    def record_all(self, entries: Iterable[LedgerEntry]) -> int:
        """:meth:`record` each entry, all in one transaction; returns how many."""
        return self.record_rows([_row(entry) for entry in entries])

    def record_rows(self, rows: Sequence[LedgerRow]) -> int:
        """:meth:`record_all` for rows made by :func:`referral_row`; returns how many."""
        if rows:
            self._write(_UPSERT, iter(rows))
        return len(rows)

    def record_bundle(self, bundle: Mapping[str, Any]) -> LedgerEntry | None:
        """Record a referral transaction Bundle's entry (:func:`entry_from_bundle`) and return
        it; None (nothing recorded) when the bundle holds no ServiceRequest."""
        entry = entry_from_bundle(bundle)
        if entry is not None:
            self.record(entry)
        return entry

    def get(self, identifier_system: str, identifier: str) -> LedgerEntry | None:
        """The entry of one ServiceRequest identifier, if recorded."""
        rows = self._read(_SELECT_ONE, (identifier_system, identifier))
        return _entry(rows[0]) if rows else None

    def count(self) -> int:
        """How many entries the ledger holds."""
        return int(self._read("SELECT count(*) FROM referral", ())[0][0])

    def entries(self, *, batch: int = 1000) -> Iterator[LedgerEntry]:
        """Every entry, in identifier order, read ``batch`` at a time (memory stays flat;
        each batch is one read, so a writer is never blocked for the whole listing)."""
        after = ("", "")
        while True:
            rows = self._read(_SELECT_ALL, (*after, batch))
            yield from map(_entry, rows)
            if len(rows) < batch:
                return
            after = (rows[-1][0], rows[-1][1])

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._unusable("cannot be read", exc) from None

    def match(
        self,
        *,
        nhs_number: str,
        provider_ods: str | None,
        received: date,
        window_days: int = DEFAULT_WINDOW_DAYS,
    ) -> Match:
        """The one referral a data-set pathway answers (the module docstring's rule)."""
        if window_days < 0:
            raise ValueError("window_days must be 0 or more")
        earliest = received - timedelta(days=window_days)
        rows = self._read(
            _SELECT_PATIENT,
            (nhs_number.replace(" ", "").strip(), earliest.isoformat(), received.isoformat()),
        )
        provider = provider_ods.strip().upper() if provider_ods else None
        candidates = [
            entry
            for entry in map(_entry, rows)
            if provider is None
            or entry.performer_ods is None
            or entry.performer_ods.strip().upper() == provider
        ]
        within = f"for this patient{' and provider' if provider else ''} authored 0 to " + (
            f"{window_days} days before the referral received date"
        )
        if not candidates:
            return Match(None, NO_REFERRAL, f"no referral in the ledger {within}")
        if len(candidates) > 1:
            return Match(
                None,
                SEVERAL_REFERRALS,
                f"{len(candidates)} referrals in the ledger {within}; cannot tell which",
            )
        return Match(candidates[0], None, f"one referral in the ledger {within}")

    def purge(self, *, before: date) -> int:
        """Remove every entry authored before ``before``; returns how many. The rows are
        overwritten in the file and the write-ahead log truncated."""
        count = self._write("DELETE FROM referral WHERE authored_on < ?", (before.isoformat(),))
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise self._unusable("cannot be checkpointed", exc) from None
        return count

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


#: The environment variable naming the CLI's ledger file.
LEDGER_ENV: Final = "FHIR_IAPT_LEDGER"


def default_ledger_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the CLI keeps the ledger unless told: ``$FHIR_IAPT_LEDGER``, else
    ``$XDG_DATA_HOME/fhir-iapt/ledger.sqlite`` (``~/.local/share/fhir-iapt/ledger.sqlite``)."""
    env = os.environ if env is None else env
    given = env.get(LEDGER_ENV)
    if given:
        return Path(given)
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fhir-iapt" / "ledger.sqlite"


__all__ = [
    "DEFAULT_WINDOW_DAYS",
    "LEDGER_ENV",
    "NOT_RECORDABLE",
    "NO_REFERRAL",
    "SEVERAL_REFERRALS",
    "UNUSABLE",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "LedgerRow",
    "Match",
    "default_ledger_path",
    "entry_from_bundle",
    "entry_from_json",
    "ledger_row",
    "referral_row",
    "screening_questionnaires",
]
