"""Auth flows against a real token endpoint on loopback; the FHIR side mocked with pytest-httpx.

The token endpoint (``client_helpers.TokenEndpoint``) is a real HTTP server that checks the grant
and verifies SMART assertions with the public key; only the FHIR server is scripted, since a real
one cannot be made to refuse a token on demand. ``should_mock`` lets loopback traffic through.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from client_helpers import TokenEndpoint, token_endpoint
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from pytest_httpx import HTTPXMock

from fhir_iapt.client import (
    BearerToken,
    ClientCredentials,
    FhirClient,
    RetryPolicy,
    SmartBackendServices,
)
from fhir_iapt.errors import AuthError, ConfigError

FHIR = "https://fhir.example.test/R4"
SECRET = "s3cret-value-never-logged"
CAPS = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
only_remote = pytest.mark.httpx_mock(should_mock=lambda request: request.url.host != "127.0.0.1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secret_endpoint() -> Iterator[TokenEndpoint]:
    with token_endpoint(TokenEndpoint(client_id="clinic-a", client_secret=SECRET)) as endpoint:
        yield endpoint


def _bearers(httpx_mock: HTTPXMock) -> list[str]:
    return [
        r.headers.get("Authorization", "")
        for r in httpx_mock.get_requests()
        if r.url.host != "127.0.0.1"
    ]


@only_remote
def test_client_credentials_token_is_cached(
    httpx_mock: HTTPXMock, secret_endpoint: TokenEndpoint
) -> None:
    """Three requests, one token fetch; every request carries that token."""
    httpx_mock.add_response(url=f"{FHIR}/metadata", json=CAPS, is_reusable=True)
    auth = ClientCredentials(secret_endpoint.url, "clinic-a", SECRET, scope="system/*.write")
    with FhirClient(FHIR, auth=auth) as client:
        for _ in range(3):
            client.capabilities()
    assert len(secret_endpoint.issued) == 1
    assert _bearers(httpx_mock) == [f"Bearer {secret_endpoint.issued[0]}"] * 3


@only_remote
def test_client_secret_post_is_accepted(
    httpx_mock: HTTPXMock, secret_endpoint: TokenEndpoint
) -> None:
    """client_secret_post sends id and secret in the form and gets a token."""
    httpx_mock.add_response(url=f"{FHIR}/metadata", json=CAPS)
    auth = ClientCredentials(secret_endpoint.url, "clinic-a", SECRET, method="client_secret_post")
    with FhirClient(FHIR, auth=auth) as client:
        client.capabilities()
    assert len(secret_endpoint.issued) == 1


@only_remote
def test_token_refreshed_before_expiry(httpx_mock: HTTPXMock) -> None:
    """Past expires_in minus the skew, the next request fetches a new token first (no 401 seen)."""
    clock = Clock()
    httpx_mock.add_response(url=f"{FHIR}/metadata", json=CAPS, is_reusable=True)
    with token_endpoint(TokenEndpoint("clinic-a", SECRET, lifetime=300)) as endpoint:
        auth = ClientCredentials(endpoint.url, "clinic-a", SECRET, refresh_skew=60, clock=clock)
        with FhirClient(FHIR, auth=auth) as client:
            client.capabilities()
            clock.now += 200  # 100 s left: still fresh
            client.capabilities()
            clock.now += 50  # 50 s left: inside the skew
            client.capabilities()
    assert len(endpoint.issued) == 2
    assert _bearers(httpx_mock) == [f"Bearer {endpoint.issued[0]}"] * 2 + [
        f"Bearer {endpoint.issued[1]}"
    ]


@only_remote
def test_expired_token_401_refreshes_once_then_succeeds(
    httpx_mock: HTTPXMock, secret_endpoint: TokenEndpoint
) -> None:
    """The server refuses the cached token (401): one new token, the request resent, 200."""
    seen: list[str] = []

    def fhir(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        if len(seen) == 1:
            return httpx.Response(
                401,
                json={
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {"severity": "error", "code": "expired", "diagnostics": "token expired"}
                    ],
                },
            )
        return httpx.Response(200, json=CAPS)

    httpx_mock.add_callback(fhir, url=f"{FHIR}/metadata", is_reusable=True)
    auth = ClientCredentials(secret_endpoint.url, "clinic-a", SECRET)
    with FhirClient(FHIR, auth=auth) as client:
        assert client.capabilities() == CAPS
    assert len(seen) == 2
    assert len(secret_endpoint.issued) == 2
    assert seen == [f"Bearer {token}" for token in secret_endpoint.issued]


@only_remote
def test_second_401_is_auth_error_without_looping(
    httpx_mock: HTTPXMock, secret_endpoint: TokenEndpoint
) -> None:
    """A server that refuses every token gets exactly one refresh, then AuthError FI731."""
    httpx_mock.add_response(url=f"{FHIR}/metadata", status_code=401, is_reusable=True)
    auth = ClientCredentials(secret_endpoint.url, "clinic-a", SECRET)
    with (
        FhirClient(FHIR, auth=auth, retry=RetryPolicy()) as client,
        pytest.raises(AuthError) as caught,
    ):
        client.capabilities()
    assert caught.value.error_code == "FI731"
    assert len(secret_endpoint.issued) == 2
    assert len(_bearers(httpx_mock)) == 2


def test_wrong_secret_is_auth_error_that_never_shows_the_secret(
    secret_endpoint: TokenEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused client secret is AuthError FI733; neither error, repr nor logs show the secret."""
    wrong = "wrong-secret-also-private"
    auth = ClientCredentials(secret_endpoint.url, "clinic-a", wrong)
    caplog.set_level(logging.DEBUG)
    with (
        FhirClient("http://127.0.0.1:9/fhir", auth=auth) as client,
        pytest.raises(AuthError) as caught,
    ):
        client.capabilities()
    assert caught.value.error_code == "FI733"
    assert secret_endpoint.refusals == ["invalid_client"]
    shown = " ".join(
        [
            str(caught.value),
            repr(caught.value),
            repr(auth),
            repr(client),
            str(caught.value.to_operation_outcome()),
            caplog.text,
        ]
    )
    assert wrong not in shown
    assert "invalid_client" in str(caught.value)


@pytest.mark.parametrize(
    ("alg", "make_key"),
    [("RS384", lambda: RSAKey.generate_key(2048)), ("ES384", lambda: ECKey.generate_key("P-384"))],
)
@only_remote
def test_smart_backend_services_assertion_is_verified(
    httpx_mock: HTTPXMock, alg: str, make_key: object
) -> None:
    """The endpoint verifies the RS384 / ES384 assertion and issues a token the client then uses."""
    key = make_key()  # type: ignore[operator]
    public = key.as_pem(private=False)
    kind = RSAKey if alg == "RS384" else ECKey
    httpx_mock.add_response(url=f"{FHIR}/metadata", json=CAPS)
    with token_endpoint(TokenEndpoint("iapt-adapter", public_key=kind.import_key(public))) as ep:
        auth = SmartBackendServices(
            ep.url, "iapt-adapter", key.as_pem(private=True), kid="k1", alg=alg
        )  # type: ignore[arg-type]
        with FhirClient(FHIR, auth=auth) as client:
            client.capabilities()
        assert ep.refusals == []
        assert _bearers(httpx_mock) == [f"Bearer {ep.issued[0]}"]


def test_smart_assertion_claims() -> None:
    """Assertions: iss=sub=client_id, aud=token URL, exp at most 5 minutes, a new jti each time."""
    key = RSAKey.generate_key(2048)
    clock = Clock()
    auth = SmartBackendServices(
        "https://auth.example.test/token",
        "iapt-adapter",
        key.as_pem(private=True),
        kid="k1",
        clock=clock,
    )
    first = jwt.decode(auth.client_assertion(), key, algorithms=["RS384"])
    second = jwt.decode(auth.client_assertion(), key, algorithms=["RS384"])
    assert first.header == {"alg": "RS384", "kid": "k1", "typ": "JWT"}
    assert first.claims["iss"] == first.claims["sub"] == "iapt-adapter"
    assert first.claims["aud"] == "https://auth.example.test/token"
    assert 0 < first.claims["exp"] - clock.now <= 300
    assert first.claims["jti"] != second.claims["jti"]


def test_smart_assertion_signed_with_another_key_is_refused() -> None:
    """An assertion signed with a key the endpoint does not know is refused: AuthError FI733."""
    registered = RSAKey.generate_key(2048)
    other = RSAKey.generate_key(2048)
    endpoint = TokenEndpoint(
        "iapt-adapter", public_key=RSAKey.import_key(registered.as_pem(private=False))
    )
    with token_endpoint(endpoint) as ep:
        auth = SmartBackendServices(ep.url, "iapt-adapter", other.as_pem(private=True), kid="k1")
        with (
            FhirClient("http://127.0.0.1:9/fhir", auth=auth) as client,
            pytest.raises(AuthError) as caught,
        ):
            client.capabilities()
    assert caught.value.error_code == "FI733"
    assert ep.refusals == ["invalid_client"]


@pytest.mark.parametrize(
    ("alg", "pem"),
    [
        ("RS384", lambda: ECKey.generate_key("P-384").as_pem(private=True)),
        ("ES384", lambda: ECKey.generate_key("P-256").as_pem(private=True)),
        ("ES384", lambda: b"not a key"),
        ("RS384", lambda: RSAKey.generate_key(2048).as_pem(private=False)),
    ],
)
def test_unusable_private_keys_are_config_errors(alg: str, pem: object) -> None:
    """A key that does not fit the algorithm (type, curve, public only) is a ConfigError."""
    with pytest.raises(ConfigError):
        SmartBackendServices(
            "https://auth.example.test/token",
            "c",
            pem(),
            kid="k",  # type: ignore[operator]
            alg=alg,
        )  # type: ignore[arg-type]


def test_reprs_hold_no_secrets() -> None:
    """repr() of every auth shows what it is, never the token, secret or key."""
    key = RSAKey.generate_key(2048)
    pem = key.as_pem(private=True)
    texts = [
        repr(BearerToken("tok-abc-123")),
        repr(ClientCredentials("https://auth.example.test/token", "c", SECRET)),
        repr(SmartBackendServices("https://auth.example.test/token", "c", pem, kid="k")),
    ]
    joined = " ".join(texts)
    assert "tok-abc-123" not in joined
    assert SECRET not in joined
    assert "PRIVATE" not in joined
    assert texts[0] == "BearerToken(token=<redacted>)"


@only_remote
def test_static_bearer_token_is_sent(httpx_mock: HTTPXMock) -> None:
    """BearerToken adds the header to every request."""
    httpx_mock.add_response(url=f"{FHIR}/metadata", json=CAPS)
    with FhirClient(FHIR, auth=BearerToken("tok-abc-123")) as client:
        client.capabilities()
    assert _bearers(httpx_mock) == ["Bearer tok-abc-123"]
