"""``fhir-iapt push`` against a real FHIR server: deliver, read back, resend without duplicates."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from client_helpers import NHS_NUMBER, TEST_SYSTEM, referral_bundle, unique_nhs_number
from joserfc.jwk import ECKey

from fhir_iapt.cli import main
from fhir_iapt.client import FhirClient, RetryPolicy
from fhir_iapt.push import push

pytestmark = pytest.mark.integration


def _write_ndjson(path: Path, items: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    return path


def _read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _count(server: str, rtype: str, system: str, value: str) -> int:
    with FhirClient(server) as client:
        found = client.search(rtype, {"identifier": f"{system}|{value}"}, follow_next=True)
    return len(found.get("entry", []))


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, ["push", *args], catch_exceptions=False)


def test_cli_push_delivers_and_resend_makes_no_duplicates(fhir_server: str, tmp_path: Path) -> None:
    """Three bundles: exit 0, three delivered results; pushed again, still one of each resource."""
    tags = [f"cli-{n}-{uuid.uuid4()}" for n in range(3)]
    bundles = _write_ndjson(
        tmp_path / "out" / "bundles.ndjson", [referral_bundle(tag) for tag in tags]
    )
    first = _run(str(bundles.parent), "--server", fhir_server)
    assert first.exit_code == 0, first.output
    results = _read_ndjson(tmp_path / "out" / "results.ndjson")
    assert [r["status"] for r in results] == ["delivered"] * 3
    assert [r["bundle"] for r in results] == [referral_bundle(t)["id"] for t in tags]
    assert all(len(r["locations"]) == 3 and r["attempts"] == 1 for r in results)
    assert not (tmp_path / "out" / "failed.ndjson").exists()

    again = _run(str(bundles), "--server", fhir_server)
    assert again.exit_code == 0, again.output
    for tag in tags:
        assert _count(fhir_server, "Patient", NHS_NUMBER, unique_nhs_number(tag)) == 1
        assert _count(fhir_server, "Observation", TEST_SYSTEM, f"{tag}-obs") == 1
        assert _count(fhir_server, "ServiceRequest", TEST_SYSTEM, f"{tag}-sr") == 1


def test_rejected_bundle_goes_to_failed_and_can_be_pushed_again(
    fhir_server: str, tmp_path: Path
) -> None:
    """A bundle the server refuses: exit 1, it alone in failed.ndjson verbatim; fixed, it goes."""
    good, bad = f"good-{uuid.uuid4()}", f"bad-{uuid.uuid4()}"
    broken = referral_bundle(bad)
    broken["entry"][1]["resource"]["status"] = {"not": "a code"}
    bundles = _write_ndjson(tmp_path / "bundles.ndjson", [referral_bundle(good), broken])
    out = tmp_path / "push-1"
    result = _run(str(bundles), "--server", fhir_server, "--out", str(out))
    assert result.exit_code == 1
    results = _read_ndjson(out / "results.ndjson")
    assert [r["status"] for r in results] == ["delivered", "failed"]
    assert results[1]["httpStatus"] == 400
    assert results[1]["attempts"] == 1
    assert all("diagnostics" not in issue for issue in results[1]["outcome"]["issue"])
    failed = _read_ndjson(out / "failed.ndjson")
    assert failed == [broken]

    fixed = json.loads((out / "failed.ndjson").read_text())
    fixed["entry"][1]["resource"]["status"] = "final"
    (out / "failed.ndjson").write_bytes(orjson.dumps(fixed) + b"\n")
    second = _run(str(out / "failed.ndjson"), "--server", fhir_server)
    assert second.exit_code == 0, second.output
    assert not (out / "failed.ndjson").exists()
    assert _count(fhir_server, "Observation", TEST_SYSTEM, f"{bad}-obs") == 1


def test_server_down_keeps_everything_for_later(fhir_server_factory: Any, tmp_path: Path) -> None:
    """With the server down nothing is lost: all bundles land in failed.ndjson; once up, all go."""
    server = fhir_server_factory(start=False)
    tags = [f"down-{n}-{uuid.uuid4()}" for n in range(3)]
    bundles = _write_ndjson(tmp_path / "bundles.ndjson", [referral_bundle(t) for t in tags])
    down = _run(str(bundles), "--server", server.url, "--attempts", "2", "--backoff", "0")
    assert down.exit_code == 1
    results = _read_ndjson(tmp_path / "results.ndjson")
    assert [r["status"] for r in results] == ["failed", "not-attempted", "not-attempted"]
    assert results[0]["attempts"] == 2
    assert results[0]["error"] == "FI712"
    assert _read_ndjson(tmp_path / "failed.ndjson") == [referral_bundle(t) for t in tags]

    server.start()
    up = _run(str(tmp_path / "failed.ndjson"), "--server", server.url)
    assert up.exit_code == 0, up.output
    for tag in tags:
        assert _count(server.url, "Patient", NHS_NUMBER, unique_nhs_number(tag)) == 1


def test_bulk_layout_is_pushed_in_dependency_order(fhir_server: str, tmp_path: Path) -> None:
    """A bulk folder goes as PUT transactions, Patients first; sent twice, no duplicates."""
    tag = f"bulk-{uuid.uuid4()}"
    bulk = tmp_path / "bulk"
    patients = [
        {
            "resourceType": "Patient",
            "id": f"{tag}-p{n}",
            "identifier": [{"system": TEST_SYSTEM, "value": f"{tag}-p{n}"}],
        }
        for n in range(3)
    ]
    observations = [
        {
            "resourceType": "Observation",
            "id": f"{tag}-o{n}",
            "status": "final",
            "identifier": [{"system": TEST_SYSTEM, "value": f"{tag}-o"}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
            "subject": {"reference": f"Patient/{tag}-p{n}"},
        }
        for n in range(3)
    ]
    _write_ndjson(bulk / "Observation.ndjson", observations)
    _write_ndjson(bulk / "Patient.ndjson", patients)
    with FhirClient(fhir_server, retry=RetryPolicy.never()) as client:
        first = push(client, [bulk], chunk_size=2)
        second = push(client, [bulk], chunk_size=2)
        observation = client.read("Observation", f"{tag}-o1")
    assert [r.source.split()[0].rsplit("/", 1)[-1] for r in first.results] == [
        "Patient.ndjson",
        "Patient.ndjson",
        "Observation.ndjson",
        "Observation.ndjson",
    ]
    assert first.all_delivered
    assert second.all_delivered
    assert observation["subject"]["reference"] == f"Patient/{tag}-p1"
    assert _count(fhir_server, "Observation", TEST_SYSTEM, f"{tag}-o") == 3


def _pem_public(key: ECKey, path: Path) -> str:
    path.write_bytes(key.as_pem(private=False))
    return str(path)


def test_cli_push_with_smart_backend_services_on_a_real_server(
    fhir_server_factory: Any, tmp_path: Path
) -> None:
    """sekmet demands SMART tokens: push with --private-key (ES384) delivers; no auth is refused."""
    key = ECKey.generate_key("P-384")
    key_file = tmp_path / "client.pem"
    key_file.write_bytes(key.as_pem(private=True))
    server = fhir_server_factory(
        server_auth={
            "types": ["smart"],
            "smart_clients": [
                {
                    "client_id": "iapt-adapter",
                    "scopes": "system/*.*",
                    "public_key_path": _pem_public(key, tmp_path / "client.pub.pem"),
                }
            ],
        }
    )
    tag = f"smart-{uuid.uuid4()}"
    bundles = _write_ndjson(tmp_path / "bundles.ndjson", [referral_bundle(tag)])

    refused = _run(str(bundles), "--server", server.url, "--out", str(tmp_path / "no-auth"))
    assert refused.exit_code == 1
    assert _read_ndjson(tmp_path / "no-auth" / "results.ndjson")[0]["error"] == "FI731"

    done = _run(
        str(bundles),
        "--server",
        server.url,
        "--client-id",
        "iapt-adapter",
        "--token-url",
        server.token_url,
        "--private-key",
        str(key_file),
        "--key-id",
        "k1",
        "--alg",
        "ES384",
        "--scope",
        "system/*.write",
    )
    assert done.exit_code == 0, done.output


def test_cli_push_with_client_secret_on_a_real_server(
    fhir_server_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sekmet's token endpoint takes a client secret from the env; the secret is never printed."""
    secret = f"secret-{uuid.uuid4()}"
    server = fhir_server_factory(
        server_auth={
            "types": ["smart"],
            "smart_clients": [
                {"client_id": "clinic", "client_secret": secret, "scopes": "system/*.*"}
            ],
        }
    )
    monkeypatch.setenv("CLINIC_SECRET", secret)
    bundles = _write_ndjson(tmp_path / "bundles.ndjson", [referral_bundle(f"cs-{uuid.uuid4()}")])
    done = _run(
        str(bundles),
        "--server",
        server.url,
        "--client-id",
        "clinic",
        "--token-url",
        server.token_url,
        "--client-secret-env",
        "CLINIC_SECRET",
        "--scope",
        "system/*.write",
    )
    assert done.exit_code == 0, done.output
    assert secret not in done.output
    assert secret not in (tmp_path / "results.ndjson").read_text()
