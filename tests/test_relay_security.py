"""Relay authentication: hashed API keys and JWTs against a JWKS, with scopes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from fhir_iapt.relay.security import (
    Authenticator,
    AuthFailure,
    hash_api_key,
    new_api_key,
    verify_api_key,
)
from fhir_iapt.relay.settings import ApiKey, AuthSettings, JwtSettings

ISSUER = "https://login.example.test/"
AUDIENCE = "fhir-iapt-relay"


def test_new_key_verifies_and_others_do_not() -> None:
    """A generated key matches its hash; a changed key or another hash does not."""
    token, digest = new_api_key("clinic")
    assert token.startswith("clinic.")
    assert digest.startswith("scrypt$")
    assert token not in digest
    assert verify_api_key(token, digest)
    assert not verify_api_key(token + "x", digest)
    assert not verify_api_key(token, hash_api_key("clinic.other"))
    assert not verify_api_key(token, "scrypt$broken")


def _api_keys() -> tuple[Authenticator, str]:
    token = "clinic.secret-value-123"
    key = ApiKey(id="clinic", hash=hash_api_key(token), scopes=("referrals:write",))
    return Authenticator(AuthSettings(api_keys=(key,))), token


def test_api_key_authenticates_with_its_scopes() -> None:
    """A configured key gives its id as who, and only its scopes."""
    auth, token = _api_keys()
    principal = auth.authorize(f"Bearer {token}", "referrals:write")
    assert (principal.who, principal.kind) == ("clinic", "api-key")
    with pytest.raises(AuthFailure) as info:
        auth.authorize(f"Bearer {token}", "messages:read")
    assert info.value.status_code == 403
    assert auth.cached(f"Bearer {token}") == principal


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic dXNlcjpwdw==",
        "Bearer ",
        "Bearer clinic.wrong",
        "Bearer nobody.x",
        "Bearer no-dot-at-all",
    ],
)
def test_missing_or_bad_credentials_are_401(header: str | None) -> None:
    """No header, another scheme, an unknown or wrong key: 401, never a hint of the key."""
    auth, token = _api_keys()
    with pytest.raises(AuthFailure) as info:
        auth.authenticate(header)
    assert info.value.status_code == 401
    assert token not in info.value.reason


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})


@pytest.fixture
def jwt_auth(tmp_path: Path, signing_key: RSAKey) -> Authenticator:
    jwks = KeySet([signing_key]).as_dict(private=False)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    settings = JwtSettings(jwks_file=path, issuer=ISSUER, audience=AUDIENCE)
    return Authenticator(AuthSettings(jwt=settings))


def _token(key: RSAKey, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "svc-iapt",
        "exp": now + 300,
        "iat": now,
        "scope": "outcomes:write messages:read",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


def test_jwt_gives_sub_and_scopes(jwt_auth: Authenticator, signing_key: RSAKey) -> None:
    """A valid JWT authenticates as its sub, with its space-separated scopes."""
    principal = jwt_auth.authorize(f"Bearer {_token(signing_key)}", "outcomes:write")
    assert (principal.who, principal.kind) == ("svc-iapt", "jwt")
    assert principal.scopes == frozenset({"outcomes:write", "messages:read"})


def test_jwt_scp_list_is_read(jwt_auth: Authenticator, signing_key: RSAKey) -> None:
    """Scopes may come as an ``scp`` list instead of ``scope``."""
    token = _token(signing_key, scope=None, scp=["admin"])
    assert jwt_auth.authorize(f"Bearer {token}", "referrals:write").who == "svc-iapt"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else"},
        {"iss": "https://evil.example.test/"},
        {"exp": int(time.time()) - 3600},
        {"sub": None},
    ],
)
def test_jwt_with_wrong_claims_is_401(
    jwt_auth: Authenticator, signing_key: RSAKey, overrides: dict[str, Any]
) -> None:
    """Wrong audience or issuer, expired, or no subject: 401."""
    with pytest.raises(AuthFailure) as info:
        jwt_auth.authenticate(f"Bearer {_token(signing_key, **overrides)}")
    assert info.value.status_code == 401


def test_jwt_signed_by_another_key_is_401(jwt_auth: Authenticator) -> None:
    """A token signed by a key outside the JWKS is refused."""
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(AuthFailure) as info:
        jwt_auth.authenticate(f"Bearer {_token(other)}")
    assert info.value.status_code == 401


def test_jwt_without_scope_is_403(jwt_auth: Authenticator, signing_key: RSAKey) -> None:
    """A valid JWT lacking the scope is 403 with an insufficient_scope challenge."""
    with pytest.raises(AuthFailure) as info:
        jwt_auth.authorize(f"Bearer {_token(signing_key)}", "admin")
    assert info.value.status_code == 403
    assert 'error="insufficient_scope"' in info.value.www_authenticate
