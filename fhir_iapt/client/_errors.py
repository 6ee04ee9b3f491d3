"""Translate what httpx raises and what servers answer into the project's errors, in one place.

httpx exception                                   -> project error (code)        retried
TimeoutException (Connect/Read/Write/PoolTimeout) -> TransportError (FI711)      yes
ConnectError                                      -> TransportError (FI712)      yes
Connect/NetworkError caused by a TLS refusal       -> DeliveryError  (FI714)      no
NetworkError (Read/Write/CloseError)              -> TransportError (FI713)      yes
RemoteProtocolError (connection dropped)          -> TransportError (FI713)      yes
ProxyError                                        -> TransportError (FI715)      yes
UnsupportedProtocol, InvalidURL                   -> ConfigError    (FI801)      no
LocalProtocolError, StreamError, CookieConflict   -> DeliveryError  (FI701)      no
DecodingError, TooManyRedirects, HTTPStatusError  -> ServerError    (FI723)      no

HTTP answers: 401 and 403 become :class:`AuthError` (FI731 / FI732); any other status >= 400 a
:class:`ServerError` (FI721 for 4xx, FI722 for 5xx) carrying the server's OperationOutcome when it
sent one; either error keeps the server's ``Retry-After`` in seconds (``retry_after``) for
whoever retries later. Messages name the method, the URL *without* its query values (a search
may hold an NHS number), the status and the issue codes; never headers, bodies or tokens.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import orjson

from fhir_iapt.client._retry import retry_after_seconds
from fhir_iapt.errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    FhirIaptError,
    Issue,
    RequestInfo,
    ServerError,
    Severity,
    TransportError,
)

_ATTEMPTS_ATTR = "attempts"
_SEVERITIES: dict[str, Severity] = {
    "fatal": "fatal",
    "error": "error",
    "warning": "warning",
    "information": "information",
}


def redacted_url(url: httpx.URL | str) -> str:
    """The URL without credentials, query values replaced by ``*`` (names say what was asked)."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rpartition("@")[2]  # user:password@ never leaves this function
    query = "&".join(f"{name}=*" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def request_info(request: httpx.Request) -> RequestInfo:
    return RequestInfo(method=request.method, url=redacted_url(request.url))


def _describe(info: RequestInfo) -> str:
    return f"{info.method} {info.url}"


def _tls_failure(exc: BaseException) -> bool:
    """Caused by a TLS refusal (untrusted certificate, alert), not by a dropped connection."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return not isinstance(seen, ssl.SSLEOFError | ssl.SSLZeroReturnError)
        seen = seen.__cause__ or seen.__context__
    return False


def map_exception(exc: Exception, info: RequestInfo) -> FhirIaptError:
    """The project error for one httpx exception (see the table in the module docstring)."""
    where = _describe(info)
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return TransportError(f"{where}: timed out ({kind})", request=info, error_code="FI711")
    if isinstance(exc, httpx.ConnectError | httpx.NetworkError) and _tls_failure(exc):
        # Under TLS 1.3 a refused client certificate only shows on the first read.
        return DeliveryError(
            f"{where}: TLS handshake failed (check --ca-bundle / client certificate)",
            request=info,
            error_code="FI714",
        )
    if isinstance(exc, httpx.ConnectError):
        return TransportError(f"{where}: could not connect", request=info, error_code="FI712")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        return TransportError(
            f"{where}: connection dropped before a full answer ({kind})",
            request=info,
            error_code="FI713",
        )
    if isinstance(exc, httpx.ProxyError):
        return TransportError(f"{where}: proxy failed", request=info, error_code="FI715")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ConfigError(
            f"{where}: the server URL is not a usable http(s) URL ({kind})", error_code="FI801"
        )
    if isinstance(exc, httpx.DecodingError | httpx.TooManyRedirects | httpx.HTTPStatusError):
        return ServerError(f"{where}: unusable answer ({kind})", request=info, error_code="FI723")
    return DeliveryError(
        f"{where}: request could not be sent ({kind})", request=info, error_code="FI701"
    )


#: Everything httpx can raise at us; :func:`translating` lets nothing else through.
HTTPX_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.CookieConflict,
    httpx.StreamError,
)


@contextmanager
def translating(request: httpx.Request) -> Iterator[None]:
    """Run a send; re-raise any httpx exception as the project's error (cause chained)."""
    try:
        yield
    except HTTPX_ERRORS as exc:
        raise map_exception(exc, request_info(request)) from exc


def parse_json(response: httpx.Response) -> Any:
    """The body as JSON, or ``None`` when empty or not JSON."""
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def outcome_of(body: Any) -> dict[str, Any] | None:
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return body
    return None


def _outcome_summary(outcome: dict[str, Any] | None) -> str:
    """Issue codes and expressions only: diagnostics may quote the values that were refused."""
    if not outcome:
        return ""
    parts: list[str] = []
    for issue in outcome.get("issue", [])[:5]:
        if not isinstance(issue, dict):
            continue
        text = f"{issue.get('severity', '?')}/{issue.get('code', '?')}"
        expression = issue.get("expression") or issue.get("location")
        if isinstance(expression, list) and expression:
            text += f" at {expression[0]}"
        parts.append(text)
    return f" [{'; '.join(parts)}]" if parts else ""


def _issues(
    outcome: dict[str, Any] | None, message: str, code: str, error_code: str
) -> list[Issue]:
    if not outcome:
        return [Issue(diagnostics=message, code=code, error_code=error_code)]
    issues: list[Issue] = []
    for raw in outcome.get("issue", []):
        if not isinstance(raw, dict):
            continue
        expression = raw.get("expression")
        severity = raw.get("severity")
        issues.append(
            Issue(
                diagnostics=str(raw.get("diagnostics") or message),
                code=str(raw.get("code") or code),
                severity=_SEVERITIES.get(str(severity), "error"),
                expression=expression[0] if isinstance(expression, list) and expression else None,
                error_code=error_code,
            )
        )
    return issues or [Issue(diagnostics=message, code=code, error_code=error_code)]


def error_for_response(response: httpx.Response, info: RequestInfo) -> DeliveryError:
    """The error for an HTTP answer with status >= 400."""
    status = response.status_code
    outcome = outcome_of(parse_json(response))
    reason = response.reason_phrase or ""
    message = f"{_describe(info)}: server answered {status} {reason}".rstrip()
    message += _outcome_summary(outcome)
    kwargs: dict[str, Any] = {
        "request": info,
        "status_code": status,
        "server_outcome": outcome,
        "retry_after": retry_after_seconds(response, time.time()),
    }
    if status in (401, 403):
        code = "FI731" if status == 401 else "FI732"
        return AuthError(
            message, issues=_issues(outcome, message, "security", code), error_code=code, **kwargs
        )
    code = "FI721" if status < 500 else "FI722"
    return ServerError(
        message, issues=_issues(outcome, message, "processing", code), error_code=code, **kwargs
    )


def with_attempts(error: DeliveryError | FhirIaptError, attempts: int) -> None:
    """Record on an error how many attempts were made before it was raised."""
    setattr(error, _ATTEMPTS_ATTR, attempts)  # DeliveryError.attempts; other errors get one


def attempts_of(error: BaseException) -> int:
    """How many attempts a delivery error took (1 when it was not recorded)."""
    value = getattr(error, _ATTEMPTS_ATTR, 1)
    return value if isinstance(value, int) else 1


__all__ = [
    "HTTPX_ERRORS",
    "attempts_of",
    "error_for_response",
    "map_exception",
    "outcome_of",
    "parse_json",
    "redacted_url",
    "request_info",
    "translating",
    "with_attempts",
]
