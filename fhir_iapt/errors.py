"""The exception tree and the OperationOutcome builders.

Every error the adapter raises on purpose is a :class:`FhirIaptError`. Each stage has its own
subclass and a stable code, so a caller can catch by stage and a log can be grepped by code::

    FhirIaptError                 FI000  anything the adapter raises on purpose
    ├── ReadError                 FI1xx  read: a file or stream cannot be parsed
    ├── MappingError              FI2xx  map: a mapping file is broken (reported before any record)
    ├── RecordError               FI3xx  map/validate: one record is rejected, whole
    │   └── ScoringError          FI35x  an instrument or episode cannot be scored
    ├── ProfileError              FI4xx  validate: a resource does not conform to R4 / our profiles
    ├── EmitError                 FI6xx  emit: an output cannot be written
    │   └── UnwritableRecordError FI641  one record's bundle has no form in the output format
    ├── DeliveryError             FI7xx  push: the server or the network failed
    │   ├── TransportError        FI71x  connect / read / timeout, no HTTP answer
    │   ├── ServerError           FI72x  the server answered with an error status
    │   └── AuthError             FI73x  a token could not be had, or was refused
    ├── ConfigError               FI8xx  settings for the relay or the client are wrong
    └── RelayError                FI82x  the relay refuses a request (an HTTP status + outcome)
        ├── RequestRefusedError   FI820  intake: the request cannot be taken (400/404/413/415/
        │                                422/503); per-record problems are results, not this
        └── AccessDeniedError     FI821  auth: no or bad credentials (401), missing scope (403)

Errors speak FHIR: :meth:`FhirIaptError.to_operation_outcome` turns any of them into an
OperationOutcome whose issues say *where* (file, row or element, field) and *what*.

Patient data never goes into a message: issues name the field and the rule it broke, never the
value (no NHS numbers, names, dates of birth or scores).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

# The system for the project's own error codes in ``OperationOutcome.issue.details``.
from fhir_iapt.error_codes import ERROR_CODE_SYSTEM

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Location:
    """Where in the input something was found.

    ``row`` is the 1-based data row of a CSV (header excluded) or the 1-based record number of a
    JSON array / NDJSON stream / XML record list; ``line`` the physical line in the file where
    known; ``element`` an XPath (XML), a JSON path, or a FHIRPath (for FHIR resources); ``field``
    the column, attribute or key the problem is about.
    """

    file: str | None = None
    row: int | None = None
    line: int | None = None
    element: str | None = None
    field: str | None = None

    def with_field(self, name: str) -> Location:
        return replace(self, field=name)

    def render(self) -> str:
        """A human string, e.g. ``diabetes.csv row 4 (line 5) field nhs_number``."""
        parts: list[str] = []
        if self.file is not None:
            parts.append(self.file)
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.element is not None:
            parts.append(f"element {self.element}")
        if self.field is not None:
            parts.append(f"field {self.field}")
        return " ".join(parts) if parts else "(input)"


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem, shaped like ``OperationOutcome.issue``.

    ``code`` is a FHIR IssueType (``invalid``, ``structure``, ``required``, ``value``,
    ``code-invalid``, ``not-found``, ``processing``, ``exception``, ``security``, ``transient``…);
    ``error_code`` is the project's stable code (``FI301``…).
    """

    diagnostics: str
    code: str = "invalid"
    severity: Severity = "error"
    location: Location | None = None
    expression: str | None = None
    error_code: str | None = None

    def to_fhir(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.error_code:
            out["details"] = {
                "coding": [{"system": ERROR_CODE_SYSTEM, "code": self.error_code}],
            }
        diagnostics = self.diagnostics
        if self.location is not None:
            diagnostics = f"{self.location.render()}: {diagnostics}"
            out["location"] = [self.location.render()]
        out["diagnostics"] = diagnostics
        if self.expression:
            out["expression"] = [self.expression]
        return out


def operation_outcome(
    issues: Iterable[Issue], *, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build an R4 OperationOutcome from issues (``extra`` may add e.g. an ``id``)."""
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome"}
    if extra:
        outcome.update(extra)
    items = [issue.to_fhir() for issue in issues]
    if not items:
        items = [{"severity": "information", "code": "informational", "diagnostics": "ok"}]
    outcome["issue"] = items
    return outcome


class FhirIaptError(Exception):
    """Base of every error the adapter raises on purpose."""

    code: ClassVar[str] = "FI000"
    issue_type: ClassVar[str] = "exception"
    stage: ClassVar[str] = "general"

    def __init__(
        self,
        message: str,
        *,
        issues: Sequence[Issue] = (),
        location: Location | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.error_code = error_code or self.code
        self.issues: tuple[Issue, ...] = tuple(issues) or (
            Issue(
                diagnostics=message,
                code=self.issue_type,
                location=location,
                error_code=self.error_code,
            ),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments defeat Exception's default pickling; worker processes send
        # rejected records back to the parent, so rebuild from the instance state instead.
        return (_rebuild, (type(self), self.args, self.__dict__.copy()))

    def __str__(self) -> str:
        if self.location is not None:
            return f"{self.location.render()}: {self.message}"
        return self.message

    def to_operation_outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def _rebuild(cls: type[FhirIaptError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    Exception.__init__(obj, *args)
    obj.__dict__.update(state)
    return obj


class ReadError(FhirIaptError):
    """An input file or stream cannot be read (encoding, malformed CSV/XML/JSON, wrong types)."""

    code = "FI100"
    issue_type = "structure"
    stage = "read"


class MappingError(FhirIaptError):
    """A mapping file is broken; raised when it loads, before any record is read."""

    code = "FI200"
    issue_type = "invalid"
    stage = "map"


class RecordError(FhirIaptError):
    """One source record is rejected whole; ``issues`` say every field that is wrong."""

    code = "FI300"
    issue_type = "invalid"
    stage = "map"


class ScoringError(RecordError):
    """An instrument or an episode cannot be scored (out of range, unknown measure…)."""

    code = "FI350"
    issue_type = "value"
    stage = "score"


class ProfileError(FhirIaptError):
    """A FHIR resource does not conform to R4 or to the project's profiles."""

    code = "FI400"
    issue_type = "invalid"
    stage = "validate"


class EmitError(FhirIaptError):
    """An output cannot be written."""

    code = "FI600"
    issue_type = "exception"
    stage = "emit"


class UnwritableRecordError(EmitError):
    """One record's bundle cannot be written in the output's format (a string JSON or XML
    cannot carry, an element FHIR XML does not define). The writer wrote nothing of it and
    takes the next record, so the caller rejects this record and the run goes on."""

    code = "FI641"
    issue_type = "invalid"


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What was sent, without headers or body (they may carry secrets or patient data)."""

    method: str
    url: str


class DeliveryError(FhirIaptError):
    """Delivery to a FHIR server failed. Carries the request and any server OperationOutcome."""

    code = "FI700"
    issue_type = "transient"
    stage = "push"

    def __init__(
        self,
        message: str,
        *,
        request: RequestInfo | None = None,
        status_code: int | None = None,
        server_outcome: dict[str, Any] | None = None,
        issues: Sequence[Issue] = (),
        error_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, issues=issues, error_code=error_code)
        self.request = request
        self.status_code = status_code
        self.server_outcome = server_outcome
        #: Seconds the server asked to wait before trying again (its ``Retry-After``), if any.
        self.retry_after = retry_after
        #: How many attempts were made before this error was raised (set by the client).
        self.attempts: int | None = None

    @property
    def retryable(self) -> bool:
        return False

    def to_operation_outcome(self) -> dict[str, Any]:
        if self.server_outcome and self.server_outcome.get("resourceType") == "OperationOutcome":
            return self.server_outcome
        return super().to_operation_outcome()


class TransportError(DeliveryError):
    """No HTTP answer: connection refused or dropped, timeout."""

    code = "FI710"

    @property
    def retryable(self) -> bool:
        return True


class ServerError(DeliveryError):
    """The server answered with an error status."""

    code = "FI720"
    issue_type = "processing"


class AuthError(DeliveryError):
    """A token could not be obtained, or the server refused our credentials."""

    code = "FI730"
    issue_type = "security"


class ConfigError(FhirIaptError):
    """Settings for the relay or the client are wrong."""

    code = "FI800"
    issue_type = "invalid"
    stage = "config"


class RelayError(FhirIaptError):
    """The relay refuses a request: ``status_code`` and the OperationOutcome to answer with."""

    code = "FI820"
    stage = "relay"

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        issues: Sequence[Issue] = (),
        error_code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, issues=issues, error_code=error_code)
        self.status_code = status_code
        self.headers: dict[str, str] = dict(headers or {})


class RequestRefusedError(RelayError):
    """Intake: a request that cannot be taken at all (malformed, unknown mapping, too large,
    wrong media type, nothing acceptable, consent register unreadable)."""

    code = "FI820"
    issue_type = "invalid"


class OutboxUnavailableError(RelayError):
    """Relay: the outbox (its SQLite file or PostgreSQL database) cannot be read or written
    now. The request is refused whole, 503 with ``Retry-After``: nothing of it was accepted."""

    code = "FI822"
    issue_type = "transient"

    def __init__(self, what: str) -> None:
        super().__init__(
            f"the relay's outbox cannot {what} now; nothing of this request was accepted; "
            "try again later",
            status_code=503,
            headers={"Retry-After": "5"},
        )


class AccessDeniedError(RelayError):
    """Auth: no or bad credentials (401) or a token without the route's scope (403)."""

    code = "FI821"
    issue_type = "security"


__all__ = [
    "ERROR_CODE_SYSTEM",
    "AccessDeniedError",
    "AuthError",
    "ConfigError",
    "DeliveryError",
    "EmitError",
    "FhirIaptError",
    "Issue",
    "Location",
    "MappingError",
    "OutboxUnavailableError",
    "ProfileError",
    "ReadError",
    "RecordError",
    "RelayError",
    "RequestInfo",
    "RequestRefusedError",
    "ScoringError",
    "ServerError",
    "Severity",
    "TransportError",
    "UnwritableRecordError",
    "operation_outcome",
]
