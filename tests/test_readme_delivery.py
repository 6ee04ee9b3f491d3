"""README's 'Delivering to a FHIR server' Python examples run as written, on a real server."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fhir_server import ServerFactory
from test_client_tls import _issue, _write

from fhir_iapt.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## Delivering to a FHIR server") : README.index("## The relay")]
BLOCKS = re.findall(r"```python\n(.*?)```", SECTION, flags=re.DOTALL)


def test_the_delivery_section_has_the_two_python_examples() -> None:
    """The section shows a push with a bearer token and the other auth and TLS options."""
    assert len(BLOCKS) == 2
    assert "push(client" in BLOCKS[0]
    assert "SmartBackendServices(" in BLOCKS[1]
    assert "ClientCredentials(" in BLOCKS[1]


@pytest.mark.integration
def test_push_example_delivers_the_converted_examples(
    fhir_server_factory: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first example, pointed at a real FHIR server, delivers every converted bundle."""
    # An empty server of its own: the session server holds the same patients from other
    # tests, sent under other strategies, which a conditional create rightly refuses (412).
    fhir_server = fhir_server_factory().url
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = CliRunner().invoke(
        main,
        ["convert", "examples/diabetes.csv", "--mapping", "diabetes-csv", "--out", "out/diabetes"],
    )
    assert result.exit_code == 0, result.output
    (tmp_path / "token.txt").write_text("not-checked-by-the-test-server\n")
    code = BLOCKS[0].replace('"http://127.0.0.1:8080/fhir"', repr(fhir_server))
    assert code != BLOCKS[0], "the example's base URL is what the test replaces"
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md#delivery", "exec"), namespace)  # noqa: S102 - our README
    summary = namespace["summary"]
    assert summary.all_delivered  # type: ignore[attr-defined]
    assert len(summary.results) == 7  # type: ignore[attr-defined]
    assert (tmp_path / "out" / "diabetes" / "results.ndjson").exists()


def test_auth_and_tls_example_builds_its_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second example constructs client-secret and SMART auth and an mTLS client."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_text("s3cret\n")
    (tmp_path / "keys").mkdir()
    key = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "keys" / "iapt-adapter.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "tls").mkdir()
    ca = _issue("test CA", None)
    _write(tmp_path / "tls" / "nhs-ca", *ca)
    (tmp_path / "tls" / "nhs-ca.crt").rename(tmp_path / "tls" / "nhs-ca.pem")
    _write(tmp_path / "tls" / "adapter", *_issue("adapter", ca))
    namespace: dict[str, object] = {}
    exec(compile(BLOCKS[1], "README.md#auth", "exec"), namespace)  # noqa: S102 - our README
    assert "s3cret" not in repr(namespace["secret"])
    assert "PRIVATE KEY" not in repr(namespace["smart"])
