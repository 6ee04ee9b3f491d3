"""Custom CA bundle and client certificates (mTLS) against a real HTTPS server on loopback.

A throwaway CA signs a server certificate for 127.0.0.1 and a client certificate; a stdlib HTTPS
server in a thread demands a client certificate from that CA and answers ``/fhir/metadata``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fhir_iapt.client import FhirClient, RetryPolicy, attempts_of
from fhir_iapt.errors import ConfigError, DeliveryError

CAPS = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _issue(
    common: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer_name, signer = (ca[0].subject, ca[1]) if ca else (_name(common), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256()), key


@dataclass
class Pki:
    ca: Path
    server: Path
    client: Path
    stranger: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = _issue("test CA", None)
    other_ca = _issue("other CA", None)
    _write(folder / "ca", *ca)
    _write(folder / "server", *_issue("127.0.0.1", ca, server=True))
    _write(folder / "client", *_issue("iapt-adapter", ca))
    _write(folder / "stranger", *_issue("stranger", other_ca))
    return Pki(folder / "ca.crt", folder / "server", folder / "client", folder / "stranger")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = json.dumps(CAPS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def https_server(pki: Pki) -> Iterator[str]:
    """An HTTPS server that requires a client certificate issued by the test CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server.with_suffix(".crt"), pki.server.with_suffix(".key"))
    context.load_verify_locations(pki.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _pair(stem: Path) -> tuple[Path, Path]:
    return stem.with_suffix(".crt"), stem.with_suffix(".key")


def test_ca_bundle_and_client_certificate_connect(https_server: str, pki: Pki) -> None:
    """With the CA bundle and a client certificate from that CA, the server answers."""
    with FhirClient(https_server, verify=pki.ca, cert=_pair(pki.client)) as client:
        assert client.capabilities() == CAPS


def test_server_not_in_default_trust_is_a_final_tls_error(https_server: str, pki: Pki) -> None:
    """Without the CA bundle the server is not trusted: FI714, one attempt, not retried."""
    with (
        FhirClient(https_server, cert=_pair(pki.client), retry=RetryPolicy()) as client,
        pytest.raises(DeliveryError) as caught,
    ):
        client.capabilities()
    assert caught.value.error_code == "FI714"
    assert not caught.value.retryable


def test_client_certificate_from_another_ca_is_refused(https_server: str, pki: Pki) -> None:
    """A client certificate the server does not trust is a final TLS error (FI714), one try."""
    retry = RetryPolicy(attempts=2, sleep=lambda _: None)
    with (
        FhirClient(https_server, verify=pki.ca, cert=_pair(pki.stranger), retry=retry) as client,
        pytest.raises(DeliveryError) as caught,
    ):
        client.capabilities()
    assert caught.value.error_code == "FI714"
    assert attempts_of(caught.value) == 1


def test_missing_certificate_files_are_config_errors(tmp_path: Path, pki: Pki) -> None:
    """A CA bundle or key path that cannot be loaded is a ConfigError before any request."""
    with pytest.raises(ConfigError):
        FhirClient("https://127.0.0.1:9/fhir", verify=tmp_path / "none.pem")
    with pytest.raises(ConfigError):
        FhirClient(
            "https://127.0.0.1:9/fhir",
            verify=pki.ca,
            cert=(tmp_path / "none.crt", tmp_path / "none.key"),
        )
