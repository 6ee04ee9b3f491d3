"""Authentication as ``httpx.Auth`` flows: one generator serves the sync and the async client.

``BearerToken``          a static token.
``ClientCredentials``    OAuth2 client credentials with a client secret (``client_secret_basic``
                         by default, or ``client_secret_post``).
``SmartBackendServices`` SMART Backend Services: client credentials with a signed JWT assertion
                         (``private_key_jwt``, RS384 or ES384; ``aud`` = token URL, unique ``jti``,
                         ``exp`` at most five minutes ahead).

The two OAuth flows fetch a token through the same httpx client (so the same transport, TLS
settings and CA bundle), cache it, fetch a new one ``refresh_skew`` seconds before it expires, and,
when the FHIR server still answers 401, fetch a new one once and send the request again.

No secret ever appears in ``repr``, ``str``, logs or errors: not the token, the client secret,
the private key, nor the signed assertion.
"""

from __future__ import annotations

import abc
import base64
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from fhir_iapt.client._errors import outcome_of, parse_json, redacted_url
from fhir_iapt.errors import AuthError, ConfigError, Issue, RequestInfo

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SigningAlg = Literal["RS384", "ES384"]
_FORM = "application/x-www-form-urlencoded"


class BearerToken(httpx.Auth):
    """Send ``Authorization: Bearer <token>`` with every request."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ConfigError("bearer token is empty", error_code="FI802")
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken(token=<redacted>)"


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float

    def __repr__(self) -> str:
        return f"_Token(value=<redacted>, expires_at={self.expires_at})"


class _OAuthFlow(httpx.Auth, abc.ABC):
    """Token caching, early refresh and refresh-once-on-401; subclasses build the token request."""

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        *,
        scope: str | None = None,
        refresh_skew: float = 60.0,
        default_lifetime: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not token_url.startswith(("https://", "http://")):
            raise ConfigError("token URL must be an http(s) URL", error_code="FI802")
        if not client_id:
            raise ConfigError("client id is empty", error_code="FI802")
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self.refresh_skew = refresh_skew
        self.default_lifetime = default_lifetime
        self.clock = clock
        self._token: _Token | None = None
        self.tokens_fetched = 0

    def _form(self) -> dict[str, str]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        return form

    @abc.abstractmethod
    def _token_request(self) -> httpx.Request:
        """The POST to the token endpoint (built anew for every fetch)."""

    def _fresh(self) -> bool:
        token = self._token
        return token is not None and self.clock() < token.expires_at - self.refresh_skew

    def _fetch(self) -> Generator[httpx.Request, httpx.Response, None]:
        request = self._token_request()
        info = RequestInfo(method="POST", url=redacted_url(request.url))
        response = yield request
        body = parse_json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            message = (
                f"token endpoint {info.url} refused the client credentials "
                f"({response.status_code}{', ' + str(error) if error else ''})"
            )
            raise AuthError(
                message,
                request=info,
                status_code=response.status_code,
                server_outcome=outcome_of(body),
                issues=[Issue(diagnostics=message, code="security", error_code="FI733")],
                error_code="FI733",
            )
        access = body.get("access_token")
        token_type = str(body.get("token_type", "bearer")).lower()
        if not isinstance(access, str) or not access or token_type != "bearer":  # noqa: S105 - a token type name
            raise AuthError(
                f"token endpoint {info.url} answered without a bearer access_token",
                request=info,
                status_code=response.status_code,
                error_code="FI734",
            )
        lifetime = body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else self.default_lifetime
        self._token = _Token(access, self.clock() + seconds)
        self.tokens_fetched += 1

    def _authorize(self, request: httpx.Request) -> None:
        if self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token.value}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._fresh():
            yield from self._fetch()
        self._authorize(request)
        response = yield request
        if response.status_code == 401:
            # The server does not take the token (expired early, revoked, clock skew): one new
            # token and one resend; a second 401 is the caller's AuthError.
            self._token = None
            yield from self._fetch()
            self._authorize(request)
            yield request

    def invalidate(self) -> None:
        """Forget the cached token; the next request fetches a new one."""
        self._token = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_url={redacted_url(self.token_url)!r}, "
            f"client_id={self.client_id!r}, scope={self.scope!r})"
        )


class ClientCredentials(_OAuthFlow):
    """OAuth2 client credentials grant with a client secret."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic",
        refresh_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(token_url, client_id, scope=scope, refresh_skew=refresh_skew, clock=clock)
        if not client_secret:
            raise ConfigError("client secret is empty", error_code="FI802")
        self._secret = client_secret
        self.method = method

    def _token_request(self) -> httpx.Request:
        form = self._form()
        headers = {"Accept": "application/json", "Content-Type": _FORM}
        if self.method == "client_secret_post":
            form["client_id"] = self.client_id
            form["client_secret"] = self._secret
        else:
            # RFC 6749 2.3.1: form-encode id and secret before joining them.
            pair = f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return httpx.Request("POST", self.token_url, data=form, headers=headers)


def load_signing_key(private_key_pem: str | bytes, alg: SigningAlg) -> RSAKey | ECKey:
    """Import a PEM private key for ``alg``; ConfigError (without the key) when it does not fit."""
    if alg not in ("RS384", "ES384"):
        raise ConfigError("SMART signing algorithm must be RS384 or ES384", error_code="FI802")
    try:
        key = import_key(private_key_pem, "RSA" if alg == "RS384" else "EC")
    except (ValueError, TypeError, JoseError) as exc:
        raise ConfigError(
            f"private key is not a PEM {'RSA' if alg == 'RS384' else 'EC'} key for {alg}",
            error_code="FI802",
        ) from exc
    if not isinstance(key, RSAKey | ECKey) or not key.is_private:
        raise ConfigError("the key file holds no private key", error_code="FI802")
    if isinstance(key, ECKey) and key.curve_name != "P-384":
        raise ConfigError("ES384 needs a P-384 EC key", error_code="FI802")
    return key


class SmartBackendServices(_OAuthFlow):
    """SMART Backend Services: client credentials with a ``private_key_jwt`` assertion."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        private_key_pem: str | bytes,
        *,
        kid: str,
        alg: SigningAlg = "RS384",
        scope: str | None = "system/*.write",
        assertion_lifetime: float = 240.0,
        refresh_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(token_url, client_id, scope=scope, refresh_skew=refresh_skew, clock=clock)
        if not kid:
            raise ConfigError("SMART key id (kid) is empty", error_code="FI802")
        if not 0 < assertion_lifetime <= 300:
            raise ConfigError("assertion lifetime must be within 5 minutes", error_code="FI802")
        self._key = load_signing_key(private_key_pem, alg)
        self.kid = kid
        self.alg: SigningAlg = alg
        self.assertion_lifetime = assertion_lifetime

    def client_assertion(self) -> str:
        """A freshly signed assertion (new ``jti`` each time)."""
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "exp": now + int(self.assertion_lifetime),
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        header = {"alg": self.alg, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[self.alg])

    def _token_request(self) -> httpx.Request:
        form = self._form()
        form["client_assertion_type"] = ASSERTION_TYPE
        form["client_assertion"] = self.client_assertion()
        headers = {"Accept": "application/json", "Content-Type": _FORM}
        return httpx.Request("POST", self.token_url, data=form, headers=headers)

    def __repr__(self) -> str:
        return (
            f"SmartBackendServices(token_url={redacted_url(self.token_url)!r}, "
            f"client_id={self.client_id!r}, kid={self.kid!r}, alg={self.alg!r}, "
            f"scope={self.scope!r})"
        )


__all__ = [
    "ASSERTION_TYPE",
    "BearerToken",
    "ClientCredentials",
    "SigningAlg",
    "SmartBackendServices",
    "load_signing_key",
]
