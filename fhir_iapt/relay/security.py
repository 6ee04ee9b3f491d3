"""Who may call the relay: bearer API keys (stored hashed) or JWTs checked against a JWKS.

**API keys** look like ``<key id>.<secret>``. The config keeps only the key id, its scopes and
an scrypt hash of the whole token (``scrypt$<log2 n>$<r>$<p>$<salt>$<hash>``, base64url), made by
``fhir-iapt serve --new-key ID`` or :func:`new_api_key`. The key id picks the one hash to check,
so a wrong token costs one scrypt, never one per configured key; a token that passed is
remembered (by its SHA-256, in memory only) so the hot path does not pay scrypt per request.

**JWTs** are verified with joserfc against a JWKS from a file or a URL (fetched at start, and
again at most once a minute when a token names a key id the set does not hold). ``iss``, ``aud``
and ``exp`` are required; scopes come from ``scope`` (space-separated) or ``scp`` (a list).

**Scopes**: ``referrals:write``, ``outcomes:write``, ``messages:read``, ``admin``; ``admin``
implies every other scope. A missing or bad token is 401; a good token without the scope is 403.
The principal's ``who`` (key id or JWT ``sub``) is what the audit records: never patient data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fhir_iapt.errors import AccessDeniedError, ConfigError, Location
from fhir_iapt.relay.settings import ApiKey, AuthSettings, JwtSettings

_SCRYPT_LOG2_N = 14
_SCRYPT_R = 8
_SCRYPT_P = 1
_CACHE_SIZE = 1024
_JWKS_REFRESH_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    who: str
    kind: Literal["api-key", "jwt"]
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


class AuthFailure(AccessDeniedError):
    """A request that may not proceed: 401 (no or bad credentials) or 403 (missing scope).

    ``reason`` is for the audit and the OperationOutcome; it never echoes the token.
    """

    def __init__(self, status_code: Literal[401, 403], reason: str, *, scope: str | None = None):
        super().__init__(reason, status_code=status_code)
        self.reason = reason
        self.scope = scope

    @property
    def www_authenticate(self) -> str:
        if self.status_code == 403 and self.scope:
            return f'Bearer error="insufficient_scope", scope="{self.scope}"'
        if self.status_code == 401 and self.reason != "no bearer token":
            return 'Bearer error="invalid_token"'
        return "Bearer"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_api_key(token: str, *, salt: bytes | None = None) -> str:
    """The scrypt hash to put in the config for ``token``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        token.encode("utf-8"), salt=salt, n=2**_SCRYPT_LOG2_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_LOG2_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_api_key(token: str, stored: str) -> bool:
    """Whether ``token`` matches ``stored`` (constant-time compare)."""
    try:
        scheme, log2_n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            token.encode("utf-8"),
            salt=_unb64(salt),
            n=2 ** int(log2_n),
            r=int(r),
            p=int(p),
            dklen=len(_unb64(expected)),
            maxmem=2**27,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, _unb64(expected))


def new_api_key(key_id: str) -> tuple[str, str]:
    """A fresh token ``<key id>.<secret>`` and its hash: give the token out, keep the hash."""
    token = f"{key_id}.{secrets.token_urlsafe(32)}"
    return token, hash_api_key(token)


class _JwksSource:
    """The JWKS, loaded at start; a URL is fetched again when a token names an unknown key."""

    def __init__(self, settings: JwtSettings, http: httpx.Client | None) -> None:
        self.settings = settings
        self._http = http
        self._lock = threading.Lock()
        self._fetched_at = 0.0
        self.keys = self._load()

    def _load(self) -> KeySet:
        where = str(self.settings.jwks_file or self.settings.jwks_url)
        try:
            url = self.settings.jwks_url
            if self.settings.jwks_file is not None:
                data: Any = json.loads(self.settings.jwks_file.read_text(encoding="utf-8"))
            elif url is not None:
                client = self._http or httpx.Client(timeout=10.0)
                try:
                    response = client.get(url)
                    response.raise_for_status()
                    data = response.json()
                finally:
                    if self._http is None:
                        client.close()
            else:
                raise ValueError("no JWKS source")
            self._fetched_at = time.monotonic()
            return KeySet.import_key_set(data)
        except (OSError, ValueError, httpx.HTTPError, JoseError) as exc:
            raise ConfigError(
                f"cannot load the JWKS: {type(exc).__name__}",
                location=Location(file=where, field="auth.jwt"),
            ) from None

    def refresh(self) -> bool:
        """Fetch a URL JWKS again (at most once a minute); whether the set changed."""
        if self.settings.jwks_url is None:
            return False
        with self._lock:
            if time.monotonic() - self._fetched_at < _JWKS_REFRESH_SECONDS:
                return False
            try:
                self.keys = self._load()
            except ConfigError:
                self._fetched_at = time.monotonic()
                return False
            return True


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`, or raises AuthFailure."""

    def __init__(self, settings: AuthSettings, *, http: httpx.Client | None = None) -> None:
        self._keys: dict[str, ApiKey] = {key.id: key for key in settings.api_keys}
        self._jwks = _JwksSource(settings.jwt, http) if settings.jwt is not None else None
        self._verified: OrderedDict[bytes, Principal] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthFailure(401, "no bearer token")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthFailure(401, "the Authorization header is not a bearer token")
        if token.count(".") == 2 and self._jwks is not None:
            return self._from_jwt(token, self._jwks)
        return self._from_api_key(token)

    def cached(self, authorization: str | None) -> Principal | None:
        """The principal for an API key already verified (no scrypt), else None."""
        if not authorization or authorization[:7].lower() != "bearer ":
            return None
        fingerprint = hashlib.sha256(authorization[7:].strip().encode("utf-8")).digest()
        with self._lock:
            return self._verified.get(fingerprint)

    def authorize(self, authorization: str | None, scope: str) -> Principal:
        """Authenticate, then require ``scope`` (403 when the caller lacks it)."""
        principal = self.authenticate(authorization)
        if not principal.allows(scope):
            raise AuthFailure(403, f"the token lacks the scope {scope}", scope=scope)
        return principal

    def _from_api_key(self, token: str) -> Principal:
        fingerprint = hashlib.sha256(token.encode("utf-8")).digest()
        with self._lock:
            cached = self._verified.get(fingerprint)
            if cached is not None:
                self._verified.move_to_end(fingerprint)
                return cached
        key_id, dot, _ = token.partition(".")
        key = self._keys.get(key_id) if dot else None
        if key is None or not verify_api_key(token, key.hash):
            raise AuthFailure(401, "the bearer token is not valid")
        principal = Principal(key.id, "api-key", frozenset(key.scopes))
        with self._lock:
            self._verified[fingerprint] = principal
            if len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal

    def _from_jwt(self, token: str, jwks: _JwksSource) -> Principal:
        settings = jwks.settings
        try:
            try:
                decoded = jwt.decode(token, jwks.keys, algorithms=list(settings.algorithms))
            except JoseError:
                if not jwks.refresh():
                    raise
                decoded = jwt.decode(token, jwks.keys, algorithms=list(settings.algorithms))
            jwt.JWTClaimsRegistry(
                leeway=settings.leeway,
                iss={"essential": True, "value": settings.issuer},
                aud={"essential": True, "value": settings.audience},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError):
            raise AuthFailure(401, "the bearer token is not valid") from None
        claims = decoded.claims
        scopes: set[str] = set()
        if isinstance(claims.get("scope"), str):
            scopes.update(claims["scope"].split())
        if isinstance(claims.get("scp"), list):
            scopes.update(s for s in claims["scp"] if isinstance(s, str))
        return Principal(str(claims["sub"]), "jwt", frozenset(scopes))


__all__ = [
    "AuthFailure",
    "Authenticator",
    "Principal",
    "hash_api_key",
    "new_api_key",
    "verify_api_key",
]
