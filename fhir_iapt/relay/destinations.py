"""Where each message goes, and the FHIR client that takes it there.

**Referrals** all go to ``[referrals] destination`` (the IAPT service).

**Outcomes** go back to the referring team. The routing key is the *referral identifier system*:
the ``system`` of the identifier an outcome resource is ``basedOn`` (the referral's
``ServiceRequest`` identifier). Each clinic mapping gives its records their own identifier
system, so the system names the referring clinic's record system, and ``[outcomes.routes]``
maps it to a destination; anything else goes to ``default_destination``. The key is found in
the bundle itself, so a QuestionnaireResponse-based outcome and an export row route alike.

Clients are :class:`~fhir_iapt.client.AsyncFhirClient` instances, one per destination for the
relay's lifetime, each with the client's retry policy for quick in-process retries, wrapped in
:class:`FittedClient` so conditional creates fit what the server supports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from fhir_iapt.client import (
    AsyncFhirClient,
    BearerToken,
    ClientCredentials,
    ConditionalMode,
    RetryPolicy,
    SmartBackendServices,
    conditional_types,
    fit_bundle,
)
from fhir_iapt.errors import ConfigError, Location, RecordError
from fhir_iapt.relay.settings import (
    DeliverySettings,
    Destination,
    DestinationAuth,
    RelaySettings,
)
from fhir_iapt.relay.store import Direction
from fhir_iapt.results import Converted


def _based_on_systems(bundle: Mapping[str, Any]) -> Iterator[str]:
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping):
            continue
        for ref in resource.get("basedOn") or ():
            identifier = ref.get("identifier") if isinstance(ref, Mapping) else None
            if isinstance(identifier, Mapping) and isinstance(identifier.get("system"), str):
                yield identifier["system"]


def referral_identifier_system(bundle: Mapping[str, Any]) -> str | None:
    """The routing key of an outcome bundle (first ``basedOn`` identifier system), if any."""
    return next(_based_on_systems(bundle), None)


def route(settings: RelaySettings, direction: Direction, converted: Converted) -> str:
    """The destination name for one converted record.

    Referrals all go to one destination, so their bundle is never parsed; an outcome is routed
    by its referral's identifier system. Raises :class:`RecordError` (the record is rejected,
    not queued) when an outcome has no route and there is no default.
    """
    if direction == "referral":
        return settings.referrals.destination
    system = referral_identifier_system(converted.bundle)
    if system is not None and system in settings.outcomes.routes:
        return settings.outcomes.routes[system]
    if settings.outcomes.default_destination is not None:
        return settings.outcomes.default_destination
    raise RecordError(
        "no destination for this outcome: its referral identifier system has no route in"
        " [outcomes.routes] and there is no default_destination",
        location=Location(element="basedOn.identifier.system"),
        error_code="FI803",
    )


def _auth(auth: DestinationAuth, name: str) -> httpx.Auth | None:
    where = Location(field=f"destinations.{name}.auth")
    try:
        if auth.kind == "bearer" and auth.token:
            return BearerToken(auth.token.get_secret_value())
        if auth.kind == "client_credentials" and auth.token_url and auth.client_id:
            secret = auth.client_secret.get_secret_value() if auth.client_secret else ""
            return ClientCredentials(auth.token_url, auth.client_id, secret, scope=auth.scope)
        if (
            auth.kind == "smart_backend_services"
            and auth.token_url
            and auth.client_id
            and auth.private_key_file
            and auth.kid
        ):
            pem = Path(auth.private_key_file).read_bytes()
            return SmartBackendServices(
                auth.token_url,
                auth.client_id,
                pem,
                kid=auth.kid,
                alg=auth.alg,
                scope=auth.scope or "system/*.write",
            )
    except OSError as exc:
        raise ConfigError(
            f"cannot read the private key: {exc.strerror or exc}", location=where
        ) from None
    return None


class FittedClient:
    """A destination's client that fits each bundle's conditional creates to the server.

    ``conditional = "auto"`` reads the server's CapabilityStatement once (on the first
    delivery; a failure there fails that attempt, which is retried) and keeps ``ifNoneExist``
    only for the types it can conditionally create by identifier, PUTting the rest under their
    deterministic ids (the same rule as ``fhir-iapt push``); ``"keep"`` sends bundles as built;
    ``"put"`` PUTs every conditional create. Either way a resend creates nothing new.
    """

    def __init__(self, client: AsyncFhirClient, mode: ConditionalMode) -> None:
        self.client = client
        self.mode = mode
        self._keep: frozenset[str] | None = None
        self._known = mode != "auto"
        if mode == "put":
            self._keep = frozenset()
        self._lock = asyncio.Lock()

    async def _fit(self, bundle: dict[str, Any]) -> dict[str, Any]:
        if not self._known:
            async with self._lock:
                if not self._known:
                    self._keep = conditional_types(await self.client.capabilities())
                    self._known = True
        return fit_bundle(bundle, self._keep)

    async def transaction(self, bundle: dict[str, Any]) -> Any:
        return await self.client.transaction(await self._fit(bundle))

    async def aclose(self) -> None:
        await self.client.aclose()


def make_client(name: str, destination: Destination, delivery: DeliverySettings) -> FittedClient:
    """The long-lived client for one destination."""
    retry = RetryPolicy(
        attempts=delivery.client_attempts,
        backoff_initial=delivery.client_backoff,
        backoff_max=max(delivery.client_backoff, 5.0),
        max_elapsed=max(delivery.timeout_seconds, 1.0) * delivery.client_attempts,
    )
    cert = None
    if destination.client_cert is not None and destination.client_key is not None:
        cert = (destination.client_cert, destination.client_key)
    client = AsyncFhirClient(
        destination.base_url,
        auth=_auth(destination.auth, name),
        retry=retry,
        timeout=delivery.timeout_seconds,
        verify=destination.ca_bundle if destination.ca_bundle is not None else True,
        cert=cert,
    )
    return FittedClient(client, destination.conditional)


def make_clients(settings: RelaySettings) -> dict[str, FittedClient]:
    """One client per configured destination."""
    return {
        name: make_client(name, dest, settings.delivery)
        for name, dest in settings.destinations.items()
    }


__all__ = ["FittedClient", "make_client", "make_clients", "referral_identifier_system", "route"]
