"""Test helpers for the delivery tests: small valid transaction Bundles and a real token endpoint.

``referral_bundle(tag)`` makes a transaction like the converter's: a Patient by NHS number
(conditional create), an Observation and a ServiceRequest with client ids (PUT), all linked by
``urn:uuid`` references. ``tag`` makes every identifier unique to the test, so tests can share one
server and count what they stored.

``TokenEndpoint`` is a real OAuth2 token endpoint (stdlib ``http.server`` on 127.0.0.1 in a thread)
that checks the client-credentials grant: a client secret (Basic or form), or a SMART
``private_key_jwt`` assertion whose signature it verifies with the registered public key, along
with ``aud``, ``iss``/``sub``, ``exp`` (at most five minutes ahead) and a never-reused ``jti``.
It counts tokens issued and can be told to issue tokens that expire at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
TEST_SYSTEM = "https://fhir-iapt.test/Id/record"


def unique_nhs_number(tag: str) -> str:
    """A 10-digit number unique to ``tag`` (synthetic: not a real NHS number)."""
    digest = int(hashlib.sha256(tag.encode()).hexdigest(), 16)
    return f"9{digest % 10**9:09d}"


def referral_bundle(tag: str, *, note: str = "referral") -> dict[str, Any]:
    """A transaction Bundle: conditional-create Patient, PUT Observation and ServiceRequest."""
    nhs = unique_nhs_number(tag)
    patient_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, tag + '/patient')}"
    obs_id = str(uuid.uuid5(uuid.NAMESPACE_URL, tag + "/observation"))
    sr_id = str(uuid.uuid5(uuid.NAMESPACE_URL, tag + "/service-request"))
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, tag + "/bundle")),
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": NHS_NUMBER, "value": nhs}],
                    "name": [{"family": "Testpatient", "given": ["Ada"]}],
                    "birthDate": "1970-01-01",
                },
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={NHS_NUMBER}|{nhs}",
                },
            },
            {
                "fullUrl": f"urn:uuid:{obs_id}",
                "resource": {
                    "resourceType": "Observation",
                    "id": obs_id,
                    "identifier": [{"system": TEST_SYSTEM, "value": f"{tag}-obs"}],
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                    "subject": {"reference": patient_url},
                    "valueInteger": 12,
                },
                "request": {"method": "PUT", "url": f"Observation/{obs_id}"},
            },
            {
                "fullUrl": f"urn:uuid:{sr_id}",
                "resource": {
                    "resourceType": "ServiceRequest",
                    "id": sr_id,
                    "identifier": [{"system": TEST_SYSTEM, "value": f"{tag}-sr"}],
                    "status": "active",
                    "intent": "order",
                    "subject": {"reference": patient_url},
                    "note": [{"text": note}],
                },
                "request": {"method": "PUT", "url": f"ServiceRequest/{sr_id}"},
            },
        ],
    }


# ---- a real token endpoint -------------------------------------------------------------------

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class TokenEndpoint:
    """State and checks of the token endpoint; ``url`` is set once it listens."""

    client_id: str
    client_secret: str | None = None
    public_key: RSAKey | ECKey | None = None
    lifetime: int = 3600
    url: str = ""
    issued: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    seen_jti: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _check_secret(self, headers: Any, form: dict[str, str]) -> str | None:
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            pair = base64.b64decode(auth[6:]).decode()
            cid, _, secret = pair.partition(":")
            cid, secret = unquote(cid), unquote(secret)
        else:
            cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        if self.client_secret is None or cid != self.client_id or secret != self.client_secret:
            return "invalid_client"
        return None

    def _check_assertion(self, form: dict[str, str]) -> str | None:
        if form.get("client_assertion_type") != ASSERTION_TYPE or self.public_key is None:
            return "invalid_request"
        try:
            token = jwt.decode(
                form["client_assertion"], self.public_key, algorithms=["RS384", "ES384"]
            )
        except (JoseError, ValueError):
            return "invalid_client"
        claims = token.claims
        now = time.time()
        with self.lock:
            if (
                claims.get("iss") != self.client_id
                or claims.get("sub") != self.client_id
                or claims.get("aud") != self.url
                or not isinstance(claims.get("exp"), int)
                or not now - 5 < claims["exp"] <= now + 300
                or not claims.get("jti")
                or claims["jti"] in self.seen_jti
            ):
                return "invalid_client"
            self.seen_jti.add(claims["jti"])
        return None

    def answer(self, headers: Any, body: str) -> tuple[int, dict[str, Any]]:
        form = dict(parse_qsl(body))
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        problem = (
            self._check_assertion(form)
            if "client_assertion" in form
            else self._check_secret(headers, form)
        )
        if problem is not None:
            self.refusals.append(problem)
            return 401, {"error": problem}
        token = f"tok-{uuid.uuid4().hex}"
        with self.lock:
            self.issued.append(token)
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "scope": form.get("scope", ""),
        }


def _handler(endpoint: TokenEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode()
            status, payload = endpoint.answer(self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def token_endpoint(endpoint: TokenEndpoint) -> Iterator[TokenEndpoint]:
    """Serve ``endpoint`` on 127.0.0.1 (a free port) for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(endpoint))
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/oauth/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
