"""push: deliver FHIR resources and Bundles to a FHIR R4 server, without losing or duplicating.

``FhirClient`` (sync) and ``AsyncFhirClient`` (asyncio) share one core; ``RetryPolicy`` says what
is retried and for how long; ``BearerToken``, ``ClientCredentials`` and ``SmartBackendServices``
authenticate. Every failure is a :class:`~fhir_iapt.errors.DeliveryError` (or ``ConfigError``)
carrying the request and the server's OperationOutcome.
"""

from fhir_iapt.client._auth import (
    BearerToken,
    ClientCredentials,
    SigningAlg,
    SmartBackendServices,
    load_signing_key,
)
from fhir_iapt.client._client import DEFAULT_TIMEOUT, AsyncFhirClient, FhirClient, ssl_context
from fhir_iapt.client._conditional import ConditionalMode, conditional_types, fit_bundle
from fhir_iapt.client._core import BundleResponse, EntryOutcome, SearchParams, WriteResult
from fhir_iapt.client._errors import attempts_of, redacted_url
from fhir_iapt.client._retry import DEFAULT_RETRY_STATUSES, RetryPolicy

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "DEFAULT_TIMEOUT",
    "AsyncFhirClient",
    "BearerToken",
    "BundleResponse",
    "ClientCredentials",
    "ConditionalMode",
    "EntryOutcome",
    "FhirClient",
    "RetryPolicy",
    "SearchParams",
    "SigningAlg",
    "SmartBackendServices",
    "WriteResult",
    "attempts_of",
    "conditional_types",
    "fit_bundle",
    "load_signing_key",
    "redacted_url",
    "ssl_context",
]
