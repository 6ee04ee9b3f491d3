"""The one registry of the adapter's error codes; the CodeSystem in ``profiles/`` is made from it.

Every ``FIxxx`` code the package raises is listed here once, with a display and a definition that
names its stage. ``profiles/CodeSystem-error-code.json`` (the code system OperationOutcomes name in
``issue.details``) is generated from this table::

    python -m fhir_iapt.error_codes            # rewrites profiles/CodeSystem-error-code.json

and ``tests/test_error_codes.py`` checks the shipped file equals :func:`code_system`, that every
code the package uses is registered, and that none registered is unused.

Ranges by stage: FI0xx general, FI1xx read, FI2xx map, FI3xx record (FI35x-FI36x scoring and
episodes, FI39x build), FI4xx validate, FI6xx emit, FI7xx push, FI8xx config (the relay's intake
and auth failures included).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The identifier system of the codes (``OperationOutcome.issue.details.coding.system``).
ERROR_CODE_SYSTEM = "https://fhir-iapt.github.io/fhir/CodeSystem/error-code"


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One registered code: FI + three digits, a short display, a definition naming its stage."""

    code: str
    display: str
    definition: str


ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(
        "FI000",
        "Adapter error",
        (
            "General: anything the adapter raises on purpose (FhirIaptError); also an "
            "unexpected failure while the relay delivers a message."
        ),
    ),
    ErrorCode(
        "FI001",
        "Unexpected failure",
        (
            "General: converting one record (or, in fhir-iapt validate, validating one "
            "resource) met a failure the adapter did not foresee (a defect, reported by "
            "exception type only); that record is rejected, or that resource reported, and "
            "the run goes on."
        ),
    ),
    ErrorCode(
        "FI100",
        "Read error",
        "Read: an input file or stream cannot be read (ReadError).",
    ),
    ErrorCode(
        "FI101",
        "Record unreadable",
        (
            "Read: a row, line or record cannot be read (wrong column count, malformed line, "
            "a JSON value that is not an object, not JSON at all); reading goes on with the "
            "next record."
        ),
    ),
    ErrorCode(
        "FI102",
        "Header unusable",
        (
            "Read: the CSV header row is empty, not valid CSV, duplicated, or lacks a column "
            "the mapping reads."
        ),
    ),
    ErrorCode(
        "FI103",
        "Not UTF-8",
        "Read: the bytes are not UTF-8; reading stops at that point.",
    ),
    ErrorCode(
        "FI104",
        "File cut short or broken",
        (
            "Read: an XML document or JSON array is cut short or broken; reading stops at "
            "that point."
        ),
    ),
    ErrorCode(
        "FI105",
        "Input limit exceeded",
        (
            "Read: a record is past the field-length or line-length limit (see the README's "
            "Limits); it is skipped without being read whole and reading goes on with the "
            "next record, or stops where the input cannot be followed past it (one JSON "
            "token longer than the line length, an XML ancestor's attribute)."
        ),
    ),
    ErrorCode(
        "FI110",
        "Consent register row invalid",
        (
            "Read: a consent register file has a bad header or row (NHS number not 10 digits "
            "or failing modulus 11, consent value not Y/N/W/blank, half a referral "
            "identifier, unreadable CSV); the whole register is refused."
        ),
    ),
    ErrorCode(
        "FI130",
        "FHIR XML does not follow R4",
        ("Read: a FHIR XML document is not well-formed or has elements R4 does not define there."),
    ),
    ErrorCode(
        "FI150",
        "Data set table unusable",
        (
            "Read: a table of an NHS Talking Therapies data set submission is missing, or its "
            "file cannot be used (empty, not UTF-8, a header table without exactly one valid "
            "row); reported before anything is derived, and nothing is."
        ),
    ),
    ErrorCode(
        "FI151",
        "Data set column missing",
        (
            "Read: a data set table lacks a column the reader requires (named in the issue); "
            "reported before anything is derived, and nothing is."
        ),
    ),
    ErrorCode(
        "FI152",
        "Data set submissions ambiguous",
        (
            "Read: two data set submissions of one provider and reporting month have the same "
            "File_Type and DateTimeDatSetCreate, so neither can replace the other; both are "
            "refused and nothing is derived."
        ),
    ),
    ErrorCode(
        "FI153",
        "Data set row invalid",
        (
            "Read: a data set row's field breaks its rule (blank identifier or date, not a "
            "date, a code outside its list, an invalid NHS number); that row is rejected."
        ),
    ),
    ErrorCode(
        "FI154",
        "Data set score invalid",
        (
            "Read: a data set PersScore is not a number, NA or N/A, has too many decimals, or "
            "lies outside its assessment tool's range; that row is rejected."
        ),
    ),
    ErrorCode(
        "FI155",
        "Assessment tool unknown",
        (
            "Read: a data set CodedAssToolType is not a concept the data set's score checks "
            "know; that row is rejected."
        ),
    ),
    ErrorCode(
        "FI156",
        "Score cannot be dated",
        (
            "Read: an IDS607 score names a care activity that is not in the data set or whose "
            "care contact is not, so it has no date; that row is rejected."
        ),
    ),
    ErrorCode(
        "FI157",
        "Score outside its referral",
        (
            "Read: a data set score is dated before its referral was received or after it was "
            "discharged; that row is rejected and the pathway derived without it."
        ),
    ),
    ErrorCode(
        "FI158",
        "Pathway has no NHS number",
        (
            "Read: a derived data set pathway has no NHS number (IDS001 blank or absent), so it "
            "cannot become an episode."
        ),
    ),
    ErrorCode(
        "FI200",
        "Mapping error",
        (
            "Map: a mapping file is broken, reported when it loads, before any record "
            "(MappingError)."
        ),
    ),
    ErrorCode(
        "FI201",
        "Mapping file invalid",
        (
            "Map: a mapping YAML file is not valid YAML or breaks the mapping schema (unknown"
            " key, wrong type, unknown field type or table)."
        ),
    ),
    ErrorCode(
        "FI202",
        "Mapping not found",
        (
            "Map: the named mapping file does not exist, or there is no bundled mapping of "
            "that name."
        ),
    ),
    ErrorCode(
        "FI300",
        "Record rejected",
        "Map/validate: one source record is rejected whole (RecordError).",
    ),
    ErrorCode(
        "FI301",
        "Value breaks its rule",
        (
            "Map: a value breaks its field's rule (type, format, range, check digit, unknown "
            "term), or a rule across fields (birth date after the visit date)."
        ),
    ),
    ErrorCode(
        "FI302",
        "Required field blank",
        "Map: a field the mapping requires is blank or missing.",
    ),
    ErrorCode(
        "FI303",
        "Screening incomplete or impossible",
        (
            "Map: a screening instrument is partly answered or has an item answer that is not"
            " possible."
        ),
    ),
    ErrorCode(
        "FI304",
        "Record structure unexpected",
        (
            "Map: the record's structure is not what the mapping expects (wrong JSON type, a "
            "value that repeats where one is expected)."
        ),
    ),
    ErrorCode(
        "FI350",
        "Scoring error",
        "Score: an instrument or an episode cannot be scored (ScoringError).",
    ),
    ErrorCode(
        "FI351",
        "Instrument unknown",
        "Score: the instrument named is not one in instruments.yaml.",
    ),
    ErrorCode(
        "FI352",
        "Wrong number of item answers",
        "Score: the instrument was given a number of item answers it does not have.",
    ),
    ErrorCode(
        "FI353",
        "Item answer missing",
        "Score: an item needed to score the total is not answered.",
    ),
    ErrorCode(
        "FI354",
        "Score not a number",
        (
            "Score: an item answer or a total score is not a number, or has more decimal "
            "places than the measure allows."
        ),
    ),
    ErrorCode(
        "FI355",
        "Score out of range",
        "Score: an item answer or a total score lies outside its range.",
    ),
    ErrorCode(
        "FI356",
        "Measure unknown",
        "Score: an episode names an outcome measure the outcome tables do not define.",
    ),
    ErrorCode(
        "FI357",
        "ADSM unknown",
        (
            "Map (episode): adsm is not one of the anxiety disorder-specific measures the "
            "outcome tables know."
        ),
    ),
    ErrorCode(
        "FI358",
        "ADSM not named",
        ("Map (episode): ADSM scores are given but adsm does not say which measure they are."),
    ),
    ErrorCode(
        "FI359",
        "Dates out of order",
        (
            "Map (episode): the episode's dates are out of order (last score before first "
            "score, discharge or first score before the referral was received)."
        ),
    ),
    ErrorCode(
        "FI360",
        "Consent value invalid",
        "Map (episode): consent_share_outcomes is not Y, N, W or blank.",
    ),
    ErrorCode(
        "FI361",
        "QuestionnaireResponse malformed",
        (
            "Score: a QuestionnaireResponse cannot be read for scoring (wrong resourceType, "
            "no subject, a bad authored date or questionnaire, malformed items or answers, a "
            "question answered twice or with several answers)."
        ),
    ),
    ErrorCode(
        "FI362",
        "Questionnaire not scorable",
        (
            "Score: a QuestionnaireResponse answers no PHQ-9, GAD-7, PHQ-2 or GAD-2 the "
            "adapter knows (neither its canonical nor its item linkIds match)."
        ),
    ),
    ErrorCode(
        "FI363",
        "Answer has no score",
        (
            "Score: an answer has no score (not a known LOINC answer code, no ordinalValue or"
            " itemWeight, no valueInteger)."
        ),
    ),
    ErrorCode(
        "FI364",
        "Response not completed",
        (
            "Score: a QuestionnaireResponse's status is not completed or amended, so it is "
            "not scored."
        ),
    ),
    ErrorCode(
        "FI365",
        "Not a QuestionnaireResponse",
        (
            "Outcomes: an input resource given to the outcomes command is not a "
            "QuestionnaireResponse."
        ),
    ),
    ErrorCode(
        "FI391",
        "Coded value unknown",
        (
            "Build: a context measurement's value is not one of the coded values in "
            "context.yaml, or a measurement that needs a number was given text."
        ),
    ),
    ErrorCode(
        "FI392",
        "Referrer identifier without system",
        (
            "Build: a referrer identifier is given without the identifier system (namespace) "
            "it belongs to."
        ),
    ),
    ErrorCode(
        "FI400",
        "Profile error",
        (
            "Validate: a FHIR resource does not conform to R4 or to the project's profiles "
            "(ProfileError); also a shipped profile file that is unreadable or has no url."
        ),
    ),
    ErrorCode(
        "FI401",
        "Structure invalid",
        (
            "Validate: R4 base or profile structure: a required element is missing, an "
            "element is unknown, repeats too often, has the wrong type, a bad primitive "
            "format (including a date that is not a real calendar date) or a wrong fixed "
            "value."
        ),
    ),
    ErrorCode(
        "FI402",
        "Code not in required value set",
        "Validate: a code is not in the value set a required binding names.",
    ),
    ErrorCode(
        "FI403",
        "Answer not allowed by the Questionnaire",
        (
            "Validate: a QuestionnaireResponse item or answer the referenced Questionnaire "
            "does not define or allow, or a required question is not answered."
        ),
    ),
    ErrorCode(
        "FI404",
        "Reference does not resolve",
        (
            "Validate: a reference inside a Bundle names no entry of that Bundle (or no "
            "contained resource), or a fullUrl is used twice."
        ),
    ),
    ErrorCode(
        "FI405",
        "Profile unknown",
        "Validate: a meta.profile this validator does not have (warning; not checked).",
    ),
    ErrorCode(
        "FI406",
        "Invariant failed",
        ("Validate: an R4 or profile invariant (FHIRPath constraint) of severity error is false."),
    ),
    ErrorCode(
        "FI407",
        "Not a resource",
        "Validate: the JSON has no resourceType, or not an R4 one.",
    ),
    ErrorCode(
        "FI408",
        "Questionnaire unknown",
        (
            "Validate: a QuestionnaireResponse names a Questionnaire this validator does not "
            "have (warning; answers not checked)."
        ),
    ),
    ErrorCode(
        "FI409",
        "Reference target not allowed",
        (
            "Validate: a reference points at a resource type (or profile's type) the element "
            "does not allow (ServiceRequest.subject naming a Practitioner)."
        ),
    ),
    ErrorCode(
        "FI410",
        "Measure unknown",
        (
            "Validate: a MeasureReport names a Measure (or a version of it) this validator "
            "does not have (warning; its groups not checked)."
        ),
    ),
    ErrorCode(
        "FI411",
        "MeasureReport does not fit its Measure",
        (
            "Validate: a MeasureReport group is not one of its Measure's groups, reports a "
            "population the Measure group does not define (or twice), leaves one out, or "
            "carries a score the Measure's scoring does not allow (a cohort's; a proportion "
            "outside 0..1)."
        ),
    ),
    ErrorCode(
        "FI600",
        "Emit error",
        "Emit: an output cannot be written (EmitError).",
    ),
    ErrorCode(
        "FI640",
        "Cannot write FHIR XML",
        "Emit: a resource has elements R4 does not define, so it has no FHIR XML form.",
    ),
    ErrorCode(
        "FI641",
        "Record cannot be written",
        (
            "Emit: a string in the record's bundle has no form in the output format (a lone "
            "surrogate in JSON or XML; in XML also a control character, U+FFFE or U+FFFF); the "
            "record is rejected and the run goes on."
        ),
    ),
    ErrorCode(
        "FI700",
        "Delivery error",
        "Push: delivery to a FHIR server failed (DeliveryError).",
    ),
    ErrorCode(
        "FI701",
        "Request could not be made",
        (
            "Push: the HTTP client could not make the request (local protocol, stream or "
            "cookie error); not retried."
        ),
    ),
    ErrorCode(
        "FI702",
        "Refused to send",
        (
            "Push: the adapter refuses to send something that is not what the operation needs"
            " (not a Bundle of the right type, no resourceType, no id for an update)."
        ),
    ),
    ErrorCode(
        "FI710",
        "Transport error",
        "Push: no HTTP answer: connection refused or dropped, timeout (TransportError).",
    ),
    ErrorCode(
        "FI711",
        "Timed out",
        "Push: connect, read, write or pool timeout; retried.",
    ),
    ErrorCode(
        "FI712",
        "Could not connect",
        "Push: the connection to the server could not be made; retried.",
    ),
    ErrorCode(
        "FI713",
        "Connection dropped",
        "Push: the connection broke before a full answer; retried.",
    ),
    ErrorCode(
        "FI714",
        "TLS refused",
        (
            "Push: the TLS handshake was refused (server certificate not trusted, client "
            "certificate refused); a set-up problem, not retried."
        ),
    ),
    ErrorCode(
        "FI715",
        "Proxy failed",
        "Push: the HTTP proxy failed; retried.",
    ),
    ErrorCode(
        "FI720",
        "Server error",
        "Push: the server answered with an error status (ServerError).",
    ),
    ErrorCode(
        "FI721",
        "Server answered 4xx",
        "Push: the server answered with a 4xx status other than 401 or 403.",
    ),
    ErrorCode(
        "FI722",
        "Server answered 5xx",
        "Push: the server answered with a 5xx status.",
    ),
    ErrorCode(
        "FI723",
        "Answer unusable",
        (
            "Push: the server's answer cannot be used (not FHIR JSON, not the resource "
            "expected, undecodable, too many redirects)."
        ),
    ),
    ErrorCode(
        "FI724",
        "Transaction has failed entries",
        "Push: a transaction answer reports failed entries.",
    ),
    ErrorCode(
        "FI725",
        "Next link leaves the server",
        (
            "Push: a search Bundle's next link points outside the server's base URL, so it is"
            " not followed."
        ),
    ),
    ErrorCode(
        "FI730",
        "Authentication error",
        ("Push: a token could not be obtained, or the server refused the credentials (AuthError)."),
    ),
    ErrorCode(
        "FI731",
        "Server answered 401",
        "Push: the server answered 401 Unauthorized (after one token refresh).",
    ),
    ErrorCode(
        "FI732",
        "Server answered 403",
        "Push: the server answered 403 Forbidden.",
    ),
    ErrorCode(
        "FI733",
        "Token endpoint refused the client",
        "Push: the OAuth token endpoint refused the client credentials.",
    ),
    ErrorCode(
        "FI734",
        "Token endpoint gave no token",
        "Push: the OAuth token endpoint answered without a bearer access_token.",
    ),
    ErrorCode(
        "FI800",
        "Configuration error",
        (
            "Config: settings for the relay or the client are wrong (ConfigError); also a "
            "relay message whose destination is not configured."
        ),
    ),
    ErrorCode(
        "FI801",
        "Base URL invalid",
        (
            "Config: the FHIR base URL is not an absolute http(s) URL, or the HTTP client "
            "cannot use it."
        ),
    ),
    ErrorCode(
        "FI802",
        "Authentication settings invalid",
        (
            "Config: authentication settings are wrong or missing (token, client id or "
            "secret, token URL, private key, signing algorithm, key id, assertion lifetime, "
            "more than one auth mode)."
        ),
    ),
    ErrorCode(
        "FI803",
        "TLS or destination settings invalid",
        (
            "Config: TLS settings are wrong (CA bundle or client certificate/key unloadable, "
            "certificate without key or without verification), or an outcome has no "
            "destination route."
        ),
    ),
    ErrorCode(
        "FI804",
        "Push input invalid",
        (
            "Config: the files or folders given to push do not exist, hold nothing to push, "
            "or none were given."
        ),
    ),
    ErrorCode(
        "FI805",
        "Input limit setting invalid",
        (
            "Config: an input limit (a FHIR_IAPT_MAX_* environment variable, a convert "
            "--max-* option or a Limits value) is not a whole number in its range."
        ),
    ),
    ErrorCode(
        "FI810",
        "Consent register unreadable",
        ("Config: a consent register file named by an option or a setting cannot be opened."),
    ),
    ErrorCode(
        "FI820",
        "Request refused",
        (
            "Relay: the relay cannot take a request at all (malformed, no such configured "
            "mapping, body too large, wrong media type, nothing acceptable, consent register "
            "unreadable); the answer is the HTTP status with this OperationOutcome."
        ),
    ),
    ErrorCode(
        "FI821",
        "Access denied",
        (
            "Relay: a request without valid credentials (401) or whose token lacks the route's "
            "scope (403)."
        ),
    ),
    ErrorCode(
        "FI822",
        "Outbox unavailable",
        (
            "Relay: the outbox (its SQLite file or PostgreSQL database) could not be read or "
            "written while taking a request (database down, disk full, I/O error); nothing of "
            "the request was accepted and the answer is 503 with Retry-After."
        ),
    ),
    ErrorCode(
        "FI830",
        "Referral ledger unusable",
        (
            "Config: the referral ledger file cannot be opened, created, migrated, read or "
            "written (not SQLite, another application's database, written by a newer adapter, "
            "read-only, disk full) (LedgerError)."
        ),
    ),
    ErrorCode(
        "FI831",
        "Referral not recordable",
        (
            "Config: a referral bundle given to the referral ledger lacks what an entry needs "
            "(the ServiceRequest's identifier, the patient's NHS number, authoredOn); the "
            "referral is not sent unrecorded."
        ),
    ),
)

#: code -> its registration
BY_CODE: Mapping[str, ErrorCode] = {entry.code: entry for entry in ERROR_CODES}

_HEADER: dict[str, Any] = {
    "resourceType": "CodeSystem",
    "id": "error-code",
    "url": "https://fhir-iapt.github.io/fhir/CodeSystem/error-code",
    "version": "0.1.0",
    "name": "FhirIaptErrorCode",
    "title": "fhir-iapt error codes",
    "status": "active",
    "publisher": "fhir-iapt",
    "description": (
        "Stable error codes of the fhir-iapt adapter, carried in "
        "OperationOutcome.issue.details (see fhir_iapt/errors.py). Codes are grouped by "
        "pipeline stage (FI0xx general, FI1xx read, FI2xx map, FI3xx record (FI35x-FI36x "
        "scoring and episodes, FI39x build), FI4xx validate, FI6xx emit, FI7xx push, FI8xx "
        "config); each definition names the stage. Every code the package raises is listed "
        "here (tests/test_error_codes.py checks it)."
    ),
    "caseSensitive": True,
    "content": "complete",
}


def code_system() -> dict[str, Any]:
    """The CodeSystem resource (``content: complete``) holding every registered code."""
    resource = dict(_HEADER)
    resource["concept"] = [
        {"code": e.code, "display": e.display, "definition": e.definition} for e in ERROR_CODES
    ]
    resource["count"] = len(ERROR_CODES)
    return resource


def render() -> str:
    """The CodeSystem as the file in ``profiles/`` holds it (2-space JSON, final newline)."""
    return json.dumps(code_system(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write ``profiles/CodeSystem-error-code.json`` (or the path given) from the registry."""
    args = sys.argv[1:] if argv is None else argv
    target = (
        Path(args[0])
        if args
        else Path(__file__).resolve().parent.parent / "profiles" / "CodeSystem-error-code.json"
    )
    target.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["BY_CODE", "ERROR_CODES", "ERROR_CODE_SYSTEM", "ErrorCode", "code_system", "render"]
