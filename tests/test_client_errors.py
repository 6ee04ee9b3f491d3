"""Every httpx exception is translated, in one place, to the project's error with a stable code."""

from __future__ import annotations

import inspect
import ssl

import httpx
import pytest

from fhir_iapt.client._errors import map_exception, redacted_url, translating
from fhir_iapt.errors import (
    ConfigError,
    DeliveryError,
    FhirIaptError,
    RequestInfo,
    ServerError,
    TransportError,
)

#: Hand-written: httpx exception name -> (project error type, code, retried?).
EXPECTED: dict[str, tuple[type[FhirIaptError], str, bool]] = {
    "CloseError": (TransportError, "FI713", True),
    "ConnectError": (TransportError, "FI712", True),
    "ConnectTimeout": (TransportError, "FI711", True),
    "CookieConflict": (DeliveryError, "FI701", False),
    "DecodingError": (ServerError, "FI723", False),
    "HTTPError": (DeliveryError, "FI701", False),
    "HTTPStatusError": (ServerError, "FI723", False),
    "InvalidURL": (ConfigError, "FI801", False),
    "LocalProtocolError": (DeliveryError, "FI701", False),
    "NetworkError": (TransportError, "FI713", True),
    "PoolTimeout": (TransportError, "FI711", True),
    "ProtocolError": (DeliveryError, "FI701", False),
    "ProxyError": (TransportError, "FI715", True),
    "ReadError": (TransportError, "FI713", True),
    "ReadTimeout": (TransportError, "FI711", True),
    "RemoteProtocolError": (TransportError, "FI713", True),
    "RequestError": (DeliveryError, "FI701", False),
    "RequestNotRead": (DeliveryError, "FI701", False),
    "ResponseNotRead": (DeliveryError, "FI701", False),
    "StreamClosed": (DeliveryError, "FI701", False),
    "StreamConsumed": (DeliveryError, "FI701", False),
    "StreamError": (DeliveryError, "FI701", False),
    "TimeoutException": (TransportError, "FI711", True),
    "TooManyRedirects": (ServerError, "FI723", False),
    "TransportError": (DeliveryError, "FI701", False),
    "UnsupportedProtocol": (ConfigError, "FI801", False),
    "WriteError": (TransportError, "FI713", True),
    "WriteTimeout": (TransportError, "FI711", True),
}

REQUEST = httpx.Request("GET", "https://fhir.example.test/R4/Patient?identifier=x|9434765919")


def _httpx_exceptions() -> dict[str, type[Exception]]:
    return {
        name: obj
        for name, obj in vars(httpx).items()
        if inspect.isclass(obj) and issubclass(obj, Exception)
    }


def _make(cls: type[Exception]) -> Exception:
    if cls is httpx.HTTPStatusError:
        return cls("boom", request=REQUEST, response=httpx.Response(500, request=REQUEST))
    try:
        return cls("boom")
    except TypeError:
        return cls()


def test_table_covers_every_httpx_exception() -> None:
    """The expectation table names exactly the exception classes httpx exports."""
    assert set(_httpx_exceptions()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_httpx_exception_is_translated(name: str) -> None:
    """Raised inside translating(), each httpx exception leaves as the expected project error."""
    cls = _httpx_exceptions()[name]
    kind, code, retried = EXPECTED[name]
    with pytest.raises(FhirIaptError) as caught, translating(REQUEST):
        raise _make(cls)
    error = caught.value
    assert type(error) is kind
    assert error.error_code == code
    assert isinstance(error.__cause__, cls)
    if isinstance(error, DeliveryError):
        assert error.retryable is retried
        assert error.request == RequestInfo(
            "GET", "https://fhir.example.test/R4/Patient?identifier=*"
        )
    assert "9434765919" not in str(error)


@pytest.mark.parametrize(
    ("exc", "cause", "code"),
    [
        (httpx.ConnectError, ssl.SSLCertVerificationError("certificate verify failed"), "FI714"),
        (httpx.ReadError, ssl.SSLError("tlsv1 alert unknown ca"), "FI714"),
        (httpx.ReadError, ssl.SSLEOFError("EOF occurred in violation of protocol"), "FI713"),
        (httpx.ConnectError, ConnectionRefusedError(111, "refused"), "FI712"),
    ],
)
def test_tls_refusals_are_final_but_dropped_tls_is_retried(
    exc: type[Exception], cause: BaseException, code: str
) -> None:
    """An SSL refusal (bad CA, refused client cert) is final FI714; an SSL EOF is a drop."""
    error_in = exc("failed")
    error_in.__cause__ = cause
    error = map_exception(error_in, RequestInfo("POST", "https://fhir.example.test/R4"))
    assert error.error_code == code
    assert isinstance(error, DeliveryError)
    assert error.retryable is (code != "FI714")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://fhir.example.test/R4", "https://fhir.example.test/R4"),
        ("https://user:pw@fhir.example.test/R4/Patient", "https://fhir.example.test/R4/Patient"),
        (
            "https://h.test/R4/Patient?identifier=a|1&_count=2",
            "https://h.test/R4/Patient?identifier=*&_count=*",
        ),
    ],
)
def test_redacted_url(url: str, shown: str) -> None:
    """URLs in errors and logs lose credentials and query values but keep parameter names."""
    assert redacted_url(url) == shown
