"""push without a server: input reading, bulk chunking, stop-on-dead-server, CLI usage errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner
from client_helpers import referral_bundle

from fhir_iapt.cli import main
from fhir_iapt.client import FhirClient, RetryPolicy, conditional_types, fit_bundle
from fhir_iapt.push import bulk_files, push, read_bulk

BASE = "https://fhir.example.test/R4"


def _ok(request: httpx.Request) -> httpx.Response:
    sent = json.loads(request.content)
    entries = [
        {"response": {"status": "201 Created", "location": f"{e['request']['url']}/_history/1"}}
        for e in sent["entry"]
    ]
    return httpx.Response(
        200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    )


def _client(handler: Any) -> FhirClient:
    return FhirClient(
        BASE,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(attempts=2, sleep=lambda _: None),
    )


def test_unreadable_lines_fail_alone_and_are_kept_verbatim(tmp_path: Path) -> None:
    """A non-JSON and a non-Bundle line fail with FI100; the good line goes; nothing is lost."""
    good = orjson.dumps(referral_bundle("unit-good"))
    lines = [good, b"{not json", b'{"resourceType": "Patient"}']
    source = tmp_path / "bundles.ndjson"
    source.write_bytes(b"\n".join(lines) + b"\n")
    with _client(_ok) as client:
        summary = push(client, [source], conditional="keep")
    assert [r.status for r in summary.results] == ["delivered", "failed", "failed"]
    assert [r.error_code for r in summary.results] == [None, "FI100", "FI100"]
    assert summary.results[1].source == f"{source} row 2 line 2"
    assert (tmp_path / "failed.ndjson").read_bytes() == lines[1] + b"\n" + lines[2] + b"\n"


def test_bulk_files_in_dependency_order(tmp_path: Path) -> None:
    """Organization, Practitioner, Patient come before what refers to them; unknown types last."""
    for name in [
        "ServiceRequest",
        "Observation",
        "Patient",
        "Basic",
        "Organization",
        "Practitioner",
        "QuestionnaireResponse",
        "Condition",
    ]:
        (tmp_path / f"{name}.ndjson").write_text("")
    (tmp_path / "results.ndjson").write_text("")
    assert [p.stem for p in bulk_files(tmp_path)] == [
        "Organization",
        "Practitioner",
        "Patient",
        "Condition",
        "QuestionnaireResponse",
        "Observation",
        "ServiceRequest",
        "Basic",
    ]


def test_bulk_chunks_are_put_transactions_with_stable_ids(tmp_path: Path) -> None:
    """Five Patients, chunk 2: three transactions of PUT Patient/<id>, same ids on a second read."""
    patients = [{"resourceType": "Patient", "id": f"p{n}"} for n in range(5)]
    (tmp_path / "Patient.ndjson").write_bytes(b"\n".join(orjson.dumps(p) for p in patients))
    first = list(read_bulk(tmp_path, chunk_size=2))
    again = list(read_bulk(tmp_path, chunk_size=2))
    bundles = [item.bundle for item in first]
    assert all(b is not None and b["type"] == "transaction" for b in bundles)
    urls = [[e["request"]["url"] for e in b["entry"]] for b in bundles if b is not None]
    assert urls == [["Patient/p0", "Patient/p1"], ["Patient/p2", "Patient/p3"], ["Patient/p4"]]
    assert {e["request"]["method"] for b in bundles if b is not None for e in b["entry"]} == {"PUT"}
    ids = [i.bundle["id"] for i in first if i.bundle]
    assert ids == [i.bundle["id"] for i in again if i.bundle]


def test_bulk_line_of_the_wrong_type_is_reported(tmp_path: Path) -> None:
    """An Observation inside Patient.ndjson is a read error located by row, not sent."""
    (tmp_path / "Patient.ndjson").write_text('{"resourceType": "Observation", "id": "x"}\n')
    items = list(read_bulk(tmp_path))
    assert len(items) == 1
    assert items[0].bundle is None
    assert items[0].error is not None
    assert items[0].error.location is not None
    assert items[0].error.location.row == 1


def test_dead_server_stops_the_run_but_keeps_every_bundle(tmp_path: Path) -> None:
    """After connection failures exhaust the retries, the rest are not attempted, all kept."""
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused")

    bundles = [referral_bundle(f"dead-{n}") for n in range(4)]
    source = tmp_path / "bundles.ndjson"
    source.write_bytes(b"".join(orjson.dumps(b) + b"\n" for b in bundles))
    with _client(refuse) as client:
        summary = push(client, [source], conditional="keep")
    assert [r.status for r in summary.results] == ["failed"] + ["not-attempted"] * 3
    assert len(calls) == 2
    kept = [json.loads(line) for line in (tmp_path / "failed.ndjson").read_text().splitlines()]
    assert kept == bundles


def test_keep_going_tries_every_bundle(tmp_path: Path) -> None:
    """With keep_going, each bundle gets its own attempts even when the server is unreachable."""
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused")

    source = tmp_path / "bundles.ndjson"
    source.write_bytes(b"".join(orjson.dumps(referral_bundle(f"kg-{n}")) + b"\n" for n in range(3)))
    with _client(refuse) as client:
        summary = push(client, [source], keep_going=True, conditional="keep")
    assert [r.status for r in summary.results] == ["failed"] * 3
    assert len(calls) == 6


def test_batch_with_a_failed_entry_is_a_failed_bundle(tmp_path: Path) -> None:
    """A batch answered 200 with one 422 entry counts as failed, naming the entry."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "resourceType": "Bundle",
                "type": "batch-response",
                "entry": [{"response": {"status": "201 Created"}}, {"response": {"status": "422"}}],
            },
        )

    batch = {**referral_bundle("batch-unit"), "type": "batch"}
    source = tmp_path / "bundles.ndjson"
    source.write_bytes(orjson.dumps(batch) + b"\n")
    with _client(answer) as client:
        summary = push(client, [source], conditional="keep")
    result = summary.results[0]
    assert result.status == "failed"
    assert result.error_code == "FI724"
    assert result.http_status == 422
    assert result.outcome is not None
    assert result.outcome["issue"][0]["expression"] == ["Bundle.entry[1]"]


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (
            [
                "--token-env",
                "TOK",
                "--client-secret-env",
                "SEC",
                "--client-id",
                "c",
                "--token-url",
                "https://a.test/token",
            ],
            {"TOK": "t-123", "SEC": "s-456"},
        ),
        (["--token-env", "MISSING_VAR"], {}),
        (["--client-id", "c", "--client-secret-env", "SEC"], {"SEC": "s-456"}),
        (["--client-id", "c", "--token-url", "https://a.test/token"], {}),
        (["--cert", "client.pem"], {}),
        (["--ca-bundle", "/nonexistent/ca.pem"], {}),
    ],
    ids=[
        "two-auth-modes",
        "unset-env",
        "no-token-url",
        "no-secret",
        "cert-without-key",
        "missing-ca-bundle",
    ],
)
def test_cli_config_errors_exit_2_without_echoing_secrets(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    """Inconsistent or missing settings exit 2 with a message; secret values never appear."""
    source = tmp_path / "bundles.ndjson"
    source.write_bytes(orjson.dumps(referral_bundle("cli-unit")) + b"\n")
    result = CliRunner(env=env).invoke(main, ["push", str(source), "--server", BASE, *args])
    assert result.exit_code == 2
    assert result.output.startswith("error FI8")
    for value in env.values():
        assert value not in result.output
    assert not (tmp_path / "results.ndjson").exists()


def test_cli_folder_without_anything_to_push_exits_2(tmp_path: Path) -> None:
    """A folder with neither bundles.ndjson nor <Type>.ndjson files is a usage error."""
    (tmp_path / "notes.txt").write_text("nothing")
    result = CliRunner().invoke(main, ["push", str(tmp_path), "--server", BASE])
    assert result.exit_code == 2
    assert "FI804" in result.output


def test_cli_server_must_be_http(tmp_path: Path) -> None:
    """A server that is not an http(s) URL is refused before anything is read."""
    source = tmp_path / "bundles.ndjson"
    source.write_bytes(orjson.dumps(referral_bundle("cli-url")) + b"\n")
    result = CliRunner().invoke(main, ["push", str(source), "--server", "ftp://x.test/fhir"])
    assert result.exit_code == 2
    assert "FI801" in result.output


CAPABILITIES = {
    "resourceType": "CapabilityStatement",
    "rest": [
        {
            "mode": "server",
            "resource": [
                {
                    "type": "Patient",
                    "conditionalCreate": True,
                    "searchParam": [{"name": "identifier", "type": "token"}],
                },
                {
                    "type": "Observation",
                    "conditionalCreate": True,
                    "searchParam": [{"name": "code"}],
                },
                {"type": "Condition", "searchParam": [{"name": "identifier", "type": "token"}]},
            ],
        }
    ],
}


def test_conditional_types_need_flag_and_identifier_search() -> None:
    """Only types declaring conditionalCreate and an identifier search parameter count."""
    assert conditional_types(CAPABILITIES) == frozenset({"Patient"})


def _conditional_bundle() -> dict[str, Any]:
    def entry(rtype: str) -> dict[str, Any]:
        return {
            "fullUrl": f"urn:uuid:{rtype.lower()}-1",
            "resource": {"resourceType": rtype, "id": f"{rtype.lower()}-1"},
            "request": {
                "method": "POST",
                "url": rtype,
                "ifNoneExist": f"identifier=https://x.test|{rtype}",
            },
        }

    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry("Patient"), entry("QuestionnaireResponse")],
    }


@pytest.mark.parametrize(
    ("mode", "methods"),
    [("auto", ["POST", "PUT"]), ("keep", ["POST", "POST"]), ("put", ["PUT", "PUT"])],
)
def test_push_fits_conditional_creates_to_the_server(
    tmp_path: Path, mode: str, methods: list[str]
) -> None:
    """auto keeps conditional create where the server offers it and PUTs the rest at their ids."""
    sent: list[dict[str, Any]] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=CAPABILITIES)
        sent.append(json.loads(request.content))
        return _ok(request)

    original = _conditional_bundle()
    source = tmp_path / "bundles.ndjson"
    source.write_bytes(orjson.dumps(original) + b"\n")
    with _client(server) as client:
        summary = push(client, [source], conditional=mode)  # type: ignore[arg-type]
    assert summary.all_delivered
    assert [e["request"]["method"] for e in sent[0]["entry"]] == methods
    expected_url = (
        "QuestionnaireResponse"
        if mode == "keep"
        else ("QuestionnaireResponse/questionnaireresponse-1")
    )
    assert sent[0]["entry"][1]["request"]["url"] == expected_url
    assert json.loads(source.read_text()) == original


def test_fit_bundle_leaves_entries_without_ids() -> None:
    """A conditional create whose resource has no id cannot become a PUT and is left alone."""
    bundle = _conditional_bundle()
    del bundle["entry"][1]["resource"]["id"]
    fitted = fit_bundle(bundle, frozenset())
    assert [e["request"]["method"] for e in fitted["entry"]] == ["PUT", "POST"]
