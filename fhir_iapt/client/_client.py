"""``FhirClient`` and ``AsyncFhirClient``: thin shells that drive the core's flows over httpx.

Each holds one ``httpx.Client`` / ``httpx.AsyncClient`` (one connection pool) for its lifetime;
use it as a context manager or call ``close()`` / ``aclose()``. Everything else (requests, answers,
errors, retry decisions, auth) lives in ``_core``, ``_errors``, ``_retry`` and ``_auth`` and is the
same for both.

TLS: ``verify`` is ``True`` (system/certifi trust), ``False`` (never in production) or the path of
a CA bundle (PEM); ``cert`` is ``(certfile, keyfile)`` for mutual TLS. Both are turned into one
``ssl.SSLContext`` here.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import certifi
import httpx

from fhir_iapt._logging import log_event
from fhir_iapt.client._core import (
    Answer,
    BundleResponse,
    ClientCore,
    Flow,
    SearchParams,
    WriteResult,
)
from fhir_iapt.client._errors import redacted_url, translating, with_attempts
from fhir_iapt.client._retry import RetryPolicy
from fhir_iapt.errors import ConfigError, FhirIaptError, TransportError

T = TypeVar("T")
log = logging.getLogger("fhir_iapt.client")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
Verify = bool | str | Path
Cert = tuple[str | Path, str | Path] | None


def ssl_context(verify: Verify = True, cert: Cert = None) -> ssl.SSLContext | bool:
    """What httpx takes as ``verify``: a context with the CA bundle and client certificate."""
    if verify is False:
        if cert is not None:
            raise ConfigError("a client certificate needs TLS verification on", error_code="FI803")
        return False
    if verify is True and cert is None:
        return True
    cafile = certifi.where() if verify is True else str(verify)
    try:
        context = ssl.create_default_context(cafile=cafile)
        if cert is not None:
            context.load_cert_chain(certfile=str(cert[0]), keyfile=str(cert[1]))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "cannot load the CA bundle or client certificate/key (check the paths and formats)",
            error_code="FI803",
        ) from exc
    return context


def _log_retry(
    request: httpx.Request,
    attempt: int,
    *,
    error_code: str | None = None,
    http_status: int | None = None,
) -> None:
    log_event(
        log,
        logging.WARNING,
        "request failed, retrying",
        method=request.method,
        url=redacted_url(request.url),
        attempt=attempt,
        error_code=error_code,
        http_status=http_status,
    )


def _note_attempts(exc: FhirIaptError, answer: Answer | None) -> None:
    """An error raised on reading an answer took that answer's attempts (unless already noted)."""
    if answer is not None and getattr(exc, "attempts", None) is None:
        with_attempts(exc, answer.attempts)


class _Shell:
    """What both shells share that involves no I/O."""

    def __init__(self, base_url: str, retry: RetryPolicy, headers: Mapping[str, str] | None):
        self._core = ClientCore(base_url, headers=headers)
        self.retry = retry

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redacted_url(self._core.base_url)!r})"


class FhirClient(_Shell):
    """A synchronous FHIR R4 client (library and CLI)."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        verify: Verify = True,
        cert: Cert = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(base_url, retry or RetryPolicy(), headers)
        self._http = httpx.Client(
            auth=auth,
            timeout=timeout,
            transport=transport,
            verify=ssl_context(verify, cert),
            follow_redirects=False,
        )

    def _exchange(self, request: httpx.Request) -> Answer:
        attempts = 0

        def once() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            try:
                with translating(request):
                    response = self._http.send(request)
            except TransportError as exc:
                if attempts < self.retry.attempts:
                    _log_retry(request, attempts, error_code=exc.error_code)
                raise
            if attempts < self.retry.attempts and self.retry.retryable_response(response):
                _log_retry(request, attempts, http_status=response.status_code)
            return response

        try:
            response: httpx.Response = self.retry.retrying()(once)
        except FhirIaptError as exc:
            with_attempts(exc, attempts)
            raise
        return Answer(response, attempts)

    def _run(self, flow: Flow[T]) -> T:
        answer: Answer | None = None
        try:
            request = next(flow)
            while True:
                answer = self._exchange(request)
                request = flow.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result
        except FhirIaptError as exc:
            _note_attempts(exc, answer)
            raise

    def transaction(self, bundle: Mapping[str, Any]) -> BundleResponse:
        """POST a transaction Bundle; raises ServerError if it or any entry failed."""
        return self._run(self._core.transaction(bundle))

    def batch(self, bundle: Mapping[str, Any]) -> BundleResponse:
        """POST a batch Bundle; per-entry failures are in the result's ``failed``."""
        return self._run(self._core.batch(bundle))

    def create(
        self, resource: Mapping[str, Any], *, if_none_exist: str | None = None
    ) -> WriteResult:
        """POST a resource; with ``if_none_exist`` a conditional create (200 when one matched)."""
        return self._run(self._core.create(resource, if_none_exist=if_none_exist))

    def update(self, resource: Mapping[str, Any]) -> WriteResult:
        """PUT a resource at its own id (creates it when the server allows client ids)."""
        return self._run(self._core.update(resource))

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return self._run(self._core.read(resource_type, resource_id))

    def search(
        self,
        resource_type: str,
        params: SearchParams | None = None,
        *,
        follow_next: bool = False,
        max_pages: int = 100,
    ) -> dict[str, Any]:
        return self._run(
            self._core.search(resource_type, params, follow_next=follow_next, max_pages=max_pages)
        )

    def capabilities(self) -> dict[str, Any]:
        return self._run(self._core.capabilities())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncFhirClient(_Shell):
    """The same client for asyncio callers (the relay)."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: Verify = True,
        cert: Cert = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(base_url, retry or RetryPolicy(), headers)
        self._http = httpx.AsyncClient(
            auth=auth,
            timeout=timeout,
            transport=transport,
            verify=ssl_context(verify, cert),
            follow_redirects=False,
        )

    async def _exchange(self, request: httpx.Request) -> Answer:
        attempts = 0

        async def once() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            try:
                with translating(request):
                    response = await self._http.send(request)
            except TransportError as exc:
                if attempts < self.retry.attempts:
                    _log_retry(request, attempts, error_code=exc.error_code)
                raise
            if attempts < self.retry.attempts and self.retry.retryable_response(response):
                _log_retry(request, attempts, http_status=response.status_code)
            return response

        try:
            response: httpx.Response = await self.retry.async_retrying()(once)
        except FhirIaptError as exc:
            with_attempts(exc, attempts)
            raise
        return Answer(response, attempts)

    async def _run(self, flow: Flow[T]) -> T:
        answer: Answer | None = None
        try:
            request = next(flow)
            while True:
                answer = await self._exchange(request)
                request = flow.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result
        except FhirIaptError as exc:
            _note_attempts(exc, answer)
            raise

    async def transaction(self, bundle: Mapping[str, Any]) -> BundleResponse:
        """POST a transaction Bundle; raises ServerError if it or any entry failed."""
        return await self._run(self._core.transaction(bundle))

    async def batch(self, bundle: Mapping[str, Any]) -> BundleResponse:
        """POST a batch Bundle; per-entry failures are in the result's ``failed``."""
        return await self._run(self._core.batch(bundle))

    async def create(
        self, resource: Mapping[str, Any], *, if_none_exist: str | None = None
    ) -> WriteResult:
        """POST a resource; with ``if_none_exist`` a conditional create (200 when one matched)."""
        return await self._run(self._core.create(resource, if_none_exist=if_none_exist))

    async def update(self, resource: Mapping[str, Any]) -> WriteResult:
        """PUT a resource at its own id (creates it when the server allows client ids)."""
        return await self._run(self._core.update(resource))

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return await self._run(self._core.read(resource_type, resource_id))

    async def search(
        self,
        resource_type: str,
        params: SearchParams | None = None,
        *,
        follow_next: bool = False,
        max_pages: int = 100,
    ) -> dict[str, Any]:
        return await self._run(
            self._core.search(resource_type, params, follow_next=follow_next, max_pages=max_pages)
        )

    async def capabilities(self) -> dict[str, Any]:
        return await self._run(self._core.capabilities())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = ["DEFAULT_TIMEOUT", "AsyncFhirClient", "FhirClient", "ssl_context"]
