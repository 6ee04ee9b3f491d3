"""Intake: one request body -> converted, validated records -> outbox messages, synchronously.

The relay is a thin caller of the pipeline: a clinic export is read and mapped with the mapping
named in the query, FHIR QuestionnaireResponses (``application/fhir+json`` on ``/outcomes``)
with the bundled ``questionnaire-response`` mapping, both by
:func:`fhir_iapt.pipeline.convert_bytes` (the one consent gate reads the live register per
record), then through :func:`fhir_iapt.pipeline.validated` as ``[intake] validation`` says.
Each converted record is routed
(:mod:`fhir_iapt.relay.destinations`) and queued; the outbox commits before this returns.

A record's *dedup key* is ``<direction>|<natural key>|<sha256 of the bundle>``: posting the same
record again returns the first message id and is not delivered twice, while a corrected record
(same natural key, different content) is a new message. Bundles are deterministic (no
timestamps, uuid5 ids), so the same source record always gives the same digest.

Everything here raises :class:`IntakeError` (status + OperationOutcome) for a request that cannot
be taken at all; per-record problems are in :class:`IntakeResult`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from fhir_iapt.consent import ConsentSource
from fhir_iapt.errors import (
    ConfigError,
    FhirIaptError,
    Issue,
    MappingError,
    RequestRefusedError,
    operation_outcome,
)
from fhir_iapt.ledger import Ledger, LedgerError, LedgerRow, referral_row
from fhir_iapt.relay.destinations import route
from fhir_iapt.relay.settings import RelaySettings
from fhir_iapt.relay.store import Direction, Enqueued, NewMessage, OutboxStore
from fhir_iapt.results import Converted, Rejected, Result, Skipped
from fhir_iapt.targets import target_of

if TYPE_CHECKING:
    from fhir_iapt.pipeline import ShapeCache

#: Mapping input format -> the media types a request may use for it.
MEDIA_TYPES: dict[str, frozenset[str]] = {
    "csv": frozenset({"text/csv"}),
    "json": frozenset({"application/json", "application/x-ndjson"}),
    "xml": frozenset({"application/xml", "text/xml"}),
    "fhir": frozenset({"application/fhir+json", "application/json", "application/x-ndjson"}),
}
FHIR_JSON = "application/fhir+json"
BODY_NAME = "body"
_log = logging.getLogger("fhir_iapt.relay")


class IntakeError(RequestRefusedError):
    """A request that cannot be taken: an HTTP status and the OperationOutcome to answer."""

    def __init__(
        self, status_code: int, issue: Issue, *, headers: dict[str, str] | None = None
    ) -> None:
        coded = replace(issue, error_code=issue.error_code or RequestRefusedError.code)
        super().__init__(
            issue.diagnostics, status_code=status_code, issues=[coded], headers=headers
        )
        self.outcome = operation_outcome([coded])


@dataclass(slots=True)
class IntakeResult:
    """What became of each record of one body, in input order."""

    accepted: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_issues: list[dict[str, Any]] = field(default_factory=list)
    new: int = 0
    duplicates: int = 0

    @property
    def status_code(self) -> int:
        if self.accepted:
            return 202
        if self.rejected:
            return 422
        return 200

    def body(self) -> dict[str, Any]:
        """202/200: the per-record summary; 422: one OperationOutcome with every issue."""
        if self.status_code == 422:
            return {"resourceType": "OperationOutcome", "issue": self.rejected_issues}
        return {"accepted": self.accepted, "skipped": self.skipped, "rejected": self.rejected}


def media_type(content_type: str | None) -> str:
    """``text/csv; charset=utf-8`` -> ``text/csv``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


@lru_cache(maxsize=64)
def _mapping(name: str) -> Any:
    from fhir_iapt.mapping import load_mapping

    return load_mapping(name)


@lru_cache(maxsize=8)
def _configured(entries: tuple[str, ...]) -> dict[str, Any]:
    """``[intake] mappings`` (bundled names, mapping files) loaded, by each mapping's name."""
    return {mapping.name: mapping for mapping in map(_mapping, entries)}


def resolve_mapping(
    name: str | None, direction: Direction, content_type: str, *, mappings: Sequence[str]
) -> Any:
    """The mapping called ``name`` among ``mappings`` (``[intake] mappings``), checked against
    the direction and the body's media type. Nothing else loads: a path, or a mapping the
    configuration does not name, is 404."""
    if not name:
        raise IntakeError(
            400,
            Issue(
                "the 'mapping' query parameter is required", code="required", expression="mapping"
            ),
        )
    try:
        mapping = _configured(tuple(mappings)).get(name)
    except MappingError:  # checked when the settings loaded; a file changed since
        raise IntakeError(
            500, Issue("the relay's configured mappings cannot be loaded", code="exception")
        ) from None
    if mapping is None:
        raise IntakeError(
            404, Issue(f"no mapping named {name!r}", code="not-found", expression="mapping")
        )
    if target_of(mapping).kind != direction:
        raise IntakeError(
            422,
            Issue(
                f"mapping {name!r} makes {mapping.target} records, not {direction}s",
                code="invalid",
                expression="mapping",
            ),
        )
    allowed = MEDIA_TYPES.get(mapping.input_format, frozenset())
    if content_type not in allowed:
        raise IntakeError(
            415,
            Issue(
                f"mapping {name!r} reads {mapping.input_format}; send Content-Type "
                + " or ".join(sorted(allowed)),
                code="not-supported",
            ),
        )
    return mapping


class Validation:
    """The real validator's share of intake (``[intake] validation``), kept per process.

    ``once``: the first bundle of each mapping in this process, skipped when the shape cache
    (shared with the CLI's, :class:`~fhir_iapt.pipeline.ShapeCache`) already holds a pass for
    that mapping, profile set and adapter code; ``request``: the first bundle of every
    request; ``full``: every bundle; ``none``: values are checked at the map stage only.

    The shape cache's key hashes the mapping file, ``profiles/`` and the adapter's source, so it
    is computed once per mapping and process (by :meth:`prepare` at warm-up, else by the first
    request naming the mapping), never per request: it names the code this process loaded.
    """

    def __init__(
        self,
        policy: Literal["none", "once", "request", "full"],
        cache: ShapeCache | None = None,
    ) -> None:
        self.policy = policy
        self.cache = cache
        self._checked: set[str] = set()
        self._keys: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def _key(self, mapping: Any) -> str | None:
        """The mapping's shape-cache key, computed on first use and kept."""
        with self._lock:
            if mapping.name in self._keys:
                return self._keys[mapping.name]
        from fhir_iapt.fhir.options import DEFAULT_OPTIONS

        key = self.cache.key(mapping, DEFAULT_OPTIONS) if self.cache is not None else None
        with self._lock:
            return self._keys.setdefault(mapping.name, key)

    def prepare(self, mappings: Iterable[Any]) -> None:
        """Compute each mapping's shape-cache key now; a pass the cache holds counts at once."""
        if self.policy != "once":
            return
        for mapping in mappings:
            key = self._key(mapping)
            if key is not None and self.cache is not None and self.cache.passed(key):
                with self._lock:
                    self._checked.add(mapping.name)

    def apply(self, mapping: Any, results: list[Result]) -> list[Result]:
        from fhir_iapt.pipeline import validated

        if self.policy == "none":
            return results
        if self.policy == "full":
            return list(validated(results, "full"))
        if self.policy == "request":
            return list(validated(results, "first"))
        name = mapping.name
        with self._lock:
            if name in self._checked:
                return results
        key = self._key(mapping)
        cache = self.cache
        if key is not None and cache is not None and cache.passed(key):
            out = results
        else:
            out = list(validated(results, "first"))
        # A Converted result left means a bundle of this request passed the check.
        if any(isinstance(r, Converted) for r in out):
            if key is not None and cache is not None and out is not results:
                cache.remember(key)
            with self._lock:
                self._checked.add(name)
        return out


#: The bundled mapping QuestionnaireResponse bodies (``application/fhir+json``) go through.
RESPONSE_MAPPING = "questionnaire-response"


def _mapped(body: bytes, mapping: Any, consent: ConsentSource | None) -> list[Result]:
    from fhir_iapt.pipeline import convert_bytes

    # The relay's validation policy spans requests (Validation.apply), so none here.
    try:
        return convert_bytes(
            body, name=BODY_NAME, mapping=mapping, validation="none", consent=consent
        )
    except ConfigError:
        # The consent register broke (a file gone or malformed): decide nothing until fixed.
        raise IntakeError(
            503,
            Issue("the relay cannot read its consent register; try again later", code="transient"),
            headers={"Retry-After": "60"},
        ) from None


def convert(
    body: bytes,
    *,
    direction: Direction,
    mapping_name: str | None,
    mappings: Sequence[str],
    content_type: str,
    validation: Validation,
    consent: ConsentSource | None = None,
) -> list[Result]:
    """Convert a body into results (raises IntakeError when the request itself is unusable).

    Every body goes through the one pipeline: a clinic or episode export with the mapping named
    in the query, FHIR QuestionnaireResponses (``application/fhir+json`` on ``/outcomes``) with
    the ``questionnaire-response`` mapping. ``consent`` (the live register) is read per record
    by the one consent gate: episode rows and QuestionnaireResponses alike.
    """
    if direction == "outcome" and content_type == FHIR_JSON and not mapping_name:
        mapping = _mapping(RESPONSE_MAPPING)  # FHIR resources need no mapping named
    else:
        mapping = resolve_mapping(mapping_name, direction, content_type, mappings=mappings)
    return validation.apply(mapping, _mapped(body, mapping, consent))


#: Made-up records (NHS numbers from the test range) that warm-up converts with the bundled
#: mappings and checks with the real validator, one per record kind a CSV body can carry, so
#: the first request finds the readers, builders and the validator's compiled rules ready.
_WARM_SAMPLES: tuple[tuple[str, bytes], ...] = (
    (
        "diabetes-csv",
        b"clinic_record_id,nhs_number,family_name,given_name,birth_date,sex,gp_practice_ods,"
        b"clinic_ods,review_date,diabetes_type,hba1c_mmol_mol,phq9_q1,phq9_q2,phq9_q3,phq9_q4,"
        b"phq9_q5,phq9_q6,phq9_q7,phq9_q8,phq9_q9,phq9_q10,gad7_q1,gad7_q2,gad7_q3,gad7_q4,"
        b"gad7_q5,gad7_q6,gad7_q7,phq2_q1,phq2_q2,gad2_q1,gad2_q2,referrer_code,referrer_name,"
        b"refer,consent_refer,consent_share_outcomes,reason\n"
        b"WARM-1,9990000018,Example,Warm,1958-03-14,F,Z99001,RZZ50,2026-02-11,T2,58,2,2,1,3,1,"
        b"2,1,0,0,1,2,3,2,1,1,2,1,,,,,555000000101,Dr Example,Y,Y,Y,warm-up sample\n",
    ),
    (
        "iapt-outcomes",
        b"pathway_id,referral_identifier_system,referral_identifier,nhs_number,service_ods,"
        b"referral_received_date,discharge_date,problem_descriptor,ltc_snomed,"
        b"treatment_contacts,end_code,phq9_first,phq9_last,gad7_first,gad7_last,adsm,"
        b"adsm_first,adsm_last,wsas_first,wsas_last,first_score_date,last_score_date,"
        b"consent_share_outcomes\n"
        b"WARM-1,https://example-trust.nhs.uk/Id/diabetes-clinic-record,WARM-1,9000000009,"
        b"RXT01,2024-01-08,2024-05-20,F41.1,44054006,8,46,16,7,14,5,SPIN,34,17,22,10,"
        b"2024-01-22,2024-05-13,Y\n",
    ),
)


def warm_bundles() -> list[dict[str, Any]]:
    """The bundles of the warm-up samples, converted by the pipeline as a request would be."""
    from fhir_iapt.pipeline import convert_bytes

    bundles: list[dict[str, Any]] = []
    for name, body in _WARM_SAMPLES:
        for result in convert_bytes(
            body, name="warm-up", mapping=_mapping(name), validation="none"
        ):
            if isinstance(result, Converted):
                bundles.append(result.bundle)
    return bundles


def warm_up(mappings: Sequence[str], validation: Validation) -> None:
    """Build everything a first request needs, so it is served at normal latency.

    Loads the mappings ``[intake] mappings`` names (and the QuestionnaireResponse mapping),
    converts the warm-up samples and checks their bundles with the real validator (its rules
    for every resource type the relay emits), and computes each mapping's shape-cache key.
    """
    from fhir_iapt.fhir.validate import default_validator

    loaded = [*_configured(tuple(mappings)).values(), _mapping(RESPONSE_MAPPING)]
    validator = default_validator()
    bundles = warm_bundles()
    types = {"Bundle"} | {
        entry["resource"]["resourceType"] for bundle in bundles for entry in bundle["entry"]
    }
    validator.warm_up(*sorted(types))
    if validation.policy != "none":
        for bundle in bundles:
            validator.validate_bundle(bundle)
    validation.prepare(loaded)


def dedup_key(direction: Direction, natural_key: str, payload: bytes) -> str:
    return f"{direction}|{natural_key}|{hashlib.sha256(payload).hexdigest()}"


def _rejected(result: Rejected | FhirIaptError, where: str, out: IntakeResult) -> None:
    outcome = result.outcome if isinstance(result, Rejected) else result.to_operation_outcome()
    out.rejected.append({"location": where, "outcome": outcome})
    out.rejected_issues.extend(outcome.get("issue", []))


def take(
    results: Iterable[Result],
    *,
    direction: Direction,
    settings: RelaySettings,
    outbox: OutboxStore,
    on_queued: Callable[[], None] | None = None,
    ledger: Ledger | None = None,
) -> IntakeResult:
    """Route and queue the converted results (one committed transaction).

    With a ``ledger``, each referral queued (a duplicate too: recording is idempotent) has
    its ledger entry committed with it, in the outbox's transaction; the
    :class:`~fhir_iapt.relay.ledger_feed.LedgerFeed` moves it into the ledger within its
    interval, off the request path. A referral the ledger cannot record (FI831) is rejected,
    not queued.
    """
    out = IntakeResult()
    messages: list[NewMessage] = []
    keys: list[tuple[str, str]] = []
    rows: list[LedgerRow] = []
    recording = ledger is not None and direction == "referral"
    for result in results:
        where = result.location.render()
        if isinstance(result, Converted):
            try:
                destination = route(settings, direction, result)
            except FhirIaptError as exc:
                _rejected(exc, where, out)
                continue
            payload = result.json()  # the bytes the builder made: not parsed, not re-serialised
            if recording and result.kind == "referral":
                try:
                    row = referral_row(payload)
                except LedgerError as exc:
                    _rejected(exc, where, out)
                    continue
                if row is not None:
                    rows.append(row)
            messages.append(
                NewMessage(
                    direction, destination, dedup_key(direction, result.key, payload), payload
                )
            )
            keys.append((result.key, where))
        elif isinstance(result, Skipped):
            out.skipped.append(
                {
                    "key": result.key,
                    "reason": result.reason,
                    "detail": result.detail,
                    "location": where,
                }
            )
        else:
            _rejected(result, where, out)
    if messages:
        enqueued: list[Enqueued] = outbox.enqueue(messages, ledger_rows=rows)
        for (key, where), item in zip(keys, enqueued, strict=True):
            out.accepted.append(
                {"id": item.id, "key": key, "location": where, "duplicate": item.duplicate}
            )
            if item.duplicate:
                out.duplicates += 1
            else:
                out.new += 1
        if out.new and on_queued is not None:
            on_queued()
    return out


def no_records() -> IntakeError:
    return IntakeError(422, Issue("the body holds no records", code="required"))


__all__ = [
    "FHIR_JSON",
    "MEDIA_TYPES",
    "IntakeError",
    "IntakeResult",
    "Validation",
    "convert",
    "dedup_key",
    "media_type",
    "no_records",
    "resolve_mapping",
    "take",
    "warm_bundles",
    "warm_up",
]
