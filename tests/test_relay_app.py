"""The relay's HTTP surface in process (TestClient): auth on every route, limits, answers.

Delivery here goes nowhere (the destination is a closed loopback port), so accepted messages
stay in the outbox; the real-process tests deliver to a real FHIR server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from relay_helpers import (
    FAMILY_NAME,
    GIVEN_NAME,
    auth,
    diabetes_csv,
    make_settings,
    nhs_number,
)

from fhir_iapt.relay.app import create_app
from fhir_iapt.relay.runtime import RelayRuntime

#: Every test here runs on the SQLite and on the PostgreSQL outbox.
pytestmark = pytest.mark.usefixtures("relay_store")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CSV = {"Content-Type": "text/csv"}
BODY_LIMIT = 64 * 1024

#: (method, path, a key that lacks the route's scope)
PROTECTED: list[tuple[str, str, str]] = [
    ("POST", "/referrals?mapping=diabetes-csv", "reader"),
    ("POST", "/outcomes?mapping=iapt-outcomes", "clinic"),
    ("GET", "/messages/0123456789abcdef", "clinic"),
    ("POST", "/messages/0123456789abcdef/replay", "reader"),
    ("GET", "/metrics", "iapt"),
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path / "data",
        limits={"max_body_bytes": BODY_LIMIT},
        intake={"warm_up": False, "consent_registers": [str(EXAMPLES / "iapt-outcomes.csv")]},
        outcomes={
            "default_destination": "clinic",
            "routes": {"https://example-trust.nhs.uk/Id/diabetes-clinic-record": "iapt"},
        },
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _runtime(client: TestClient) -> RelayRuntime:
    runtime: RelayRuntime = client.app.state.relay  # type: ignore[attr-defined]
    return runtime


def _is_outcome(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"]
    return body


# --- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "wrong_key"), PROTECTED)
def test_no_token_is_401(client: TestClient, method: str, path: str, wrong_key: str) -> None:
    """Every protected route without a bearer token: 401, a Bearer challenge, an outcome."""
    response = client.request(method, path, content=b"x", headers=CSV)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert _is_outcome(response)["issue"][0]["code"] == "login"


@pytest.mark.parametrize(("method", "path", "wrong_key"), PROTECTED)
def test_wrong_scope_is_403(client: TestClient, method: str, path: str, wrong_key: str) -> None:
    """Every protected route with a valid token lacking its scope: 403."""
    response = client.request(method, path, content=b"x", headers={**CSV, **auth(wrong_key)})
    assert response.status_code == 403
    assert "insufficient_scope" in response.headers["www-authenticate"]
    assert _is_outcome(response)["issue"][0]["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path", "wrong_key"), PROTECTED)
def test_bad_token_is_401(client: TestClient, method: str, path: str, wrong_key: str) -> None:
    """A token that is not a configured key: 401 on every protected route."""
    headers = {**CSV, "Authorization": "Bearer clinic.not-the-secret"}
    assert client.request(method, path, content=b"x", headers=headers).status_code == 401


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_checks_need_no_token(client: TestClient, path: str) -> None:
    """Liveness and readiness answer without credentials."""
    assert client.get(path).status_code == 200


def test_admin_implies_every_scope(client: TestClient) -> None:
    """The admin scope passes every protected route's check (404: past auth, no message)."""
    assert client.get("/messages/nope", headers=auth("ops")).status_code == 404
    assert client.get("/metrics", headers=auth("ops")).status_code == 200


# --- limits and malformed requests ----------------------------------------------------------


def test_oversized_body_is_413(client: TestClient) -> None:
    """A body over max_body_bytes is refused with 413 and an OperationOutcome."""
    body = b"x" * (BODY_LIMIT + 1)
    response = client.post(
        "/referrals?mapping=diabetes-csv", content=body, headers={**CSV, **auth("clinic")}
    )
    assert response.status_code == 413
    assert _is_outcome(response)["issue"][0]["code"] == "too-costly"


def test_oversized_chunked_body_is_413(client: TestClient) -> None:
    """Without Content-Length (chunked), the limit is enforced while reading."""

    def chunks() -> Iterator[bytes]:
        for _ in range(BODY_LIMIT // 1024 + 2):
            yield b"y" * 1024

    response = client.post(
        "/referrals?mapping=diabetes-csv", content=chunks(), headers={**CSV, **auth("clinic")}
    )
    assert response.status_code == 413


def test_empty_body_is_400(client: TestClient) -> None:
    """An empty body is a malformed request."""
    response = client.post(
        "/referrals?mapping=diabetes-csv", content=b"", headers={**CSV, **auth("clinic")}
    )
    assert response.status_code == 400
    _is_outcome(response)


def test_missing_mapping_is_400(client: TestClient) -> None:
    """A clinic export needs ?mapping=NAME."""
    response = client.post("/referrals", content=b"a,b\n", headers={**CSV, **auth("clinic")})
    assert response.status_code == 400
    assert _is_outcome(response)["issue"][0]["expression"] == ["mapping"]


def test_unknown_mapping_is_404(client: TestClient) -> None:
    """A mapping name the relay does not have: 404 not-found."""
    response = client.post(
        "/referrals?mapping=no-such-layout", content=b"a,b\n", headers={**CSV, **auth("clinic")}
    )
    assert response.status_code == 404
    assert _is_outcome(response)["issue"][0]["code"] == "not-found"


def test_content_type_must_fit_the_mapping(client: TestClient) -> None:
    """diabetes-csv reads CSV: a JSON Content-Type is 415."""
    response = client.post(
        "/referrals?mapping=diabetes-csv",
        content=b"[]",
        headers={"Content-Type": "application/json", **auth("clinic")},
    )
    assert response.status_code == 415
    _is_outcome(response)


def test_mapping_for_the_other_direction_is_422(client: TestClient) -> None:
    """An episode mapping posted to /referrals is refused, and the reverse."""
    referral = client.post(
        "/referrals?mapping=iapt-outcomes", content=b"a\n", headers={**CSV, **auth("clinic")}
    )
    outcome = client.post(
        "/outcomes?mapping=diabetes-csv", content=b"a\n", headers={**CSV, **auth("iapt")}
    )
    assert (referral.status_code, outcome.status_code) == (422, 422)


def test_unreadable_export_is_422_with_outcome(client: TestClient) -> None:
    """A CSV without the mapping's columns: nothing accepted, 422, located issues."""
    response = client.post(
        "/referrals?mapping=diabetes-csv",
        content=b"foo,bar\n1,2\n",
        headers={**CSV, **auth("clinic")},
    )
    assert response.status_code == 422
    body = _is_outcome(response)
    assert any("body" in issue.get("diagnostics", "") for issue in body["issue"])


# --- accepting records --------------------------------------------------------------------


def _post(client: TestClient, data: bytes, **headers: str) -> Any:
    return client.post(
        "/referrals?mapping=diabetes-csv",
        content=data,
        headers={**CSV, **auth("clinic"), **headers},
    )


def test_valid_records_get_message_ids(client: TestClient) -> None:
    """Each accepted record gets a message id, committed and queued before the 202."""
    data = diabetes_csv(
        [{"record_id": "A1", "nhs": nhs_number(11)}, {"record_id": "A2", "nhs": nhs_number(12)}]
    )
    response = _post(client, data)
    assert response.status_code == 202
    accepted = response.json()["accepted"]
    assert [a["location"].split(" line")[0] for a in accepted] == ["body row 1", "body row 2"]
    for item in accepted:
        info = _runtime(client).outbox.info(item["id"])
        assert info is not None
        assert info.direction == "referral"
        assert info.destination == "iapt"


def test_mixed_export_accepts_good_rejects_bad(client: TestClient) -> None:
    """One valid and one invalid row: 202 with one id and one located OperationOutcome."""
    data = diabetes_csv(
        [{"record_id": "B1", "nhs": nhs_number(21)}, {"record_id": "B2", "nhs": "9000000001"}]
    )  # fails modulus 11
    response = _post(client, data)
    assert response.status_code == 202
    body = response.json()
    assert len(body["accepted"]) == 1
    [rejected] = body["rejected"]
    assert rejected["location"].startswith("body row 2")
    assert rejected["outcome"]["resourceType"] == "OperationOutcome"
    assert "9000000001" not in response.text


def test_not_referred_is_skipped_not_queued(client: TestClient) -> None:
    """A visit with no referral decision is skipped with its reason: 200, nothing queued."""
    data = diabetes_csv([{"record_id": "C1", "nhs": nhs_number(31), "refer": "N"}])
    response = _post(client, data)
    assert response.status_code == 200
    assert response.json()["skipped"][0]["reason"] == "not-referred"
    assert _runtime(client).outbox.counts()["queued"] == 0


def test_same_record_twice_gets_the_same_id(client: TestClient) -> None:
    """Posting a record again returns the first message id (natural key), no second message."""
    data = diabetes_csv([{"record_id": "D1", "nhs": nhs_number(41)}])
    first = _post(client, data).json()["accepted"][0]
    second = _post(client, data).json()["accepted"][0]
    assert second["id"] == first["id"]
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert sum(_runtime(client).outbox.counts().values()) == 1


def test_corrected_record_is_a_new_message(client: TestClient) -> None:
    """Same natural key, different content (a correction): a new message, not a duplicate."""
    first = _post(client, diabetes_csv([{"record_id": "E1", "nhs": nhs_number(51)}]))
    changed = diabetes_csv(
        [{"record_id": "E1", "nhs": nhs_number(51), "phq9": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)}]
    )
    second = _post(client, changed)
    assert first.json()["accepted"][0]["id"] != second.json()["accepted"][0]["id"]


def test_idempotency_key_replays_the_first_answer(client: TestClient) -> None:
    """The same Idempotency-Key and body: the stored answer, marked as replayed."""
    data = diabetes_csv([{"record_id": "F1", "nhs": nhs_number(61)}])
    first = _post(client, data, **{"Idempotency-Key": "batch-7"})
    again = _post(client, data, **{"Idempotency-Key": "batch-7"})
    assert again.status_code == first.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


def test_idempotency_key_with_another_body_is_422(client: TestClient) -> None:
    """Reusing an Idempotency-Key for a different body is refused."""
    _post(
        client,
        diabetes_csv([{"record_id": "G1", "nhs": nhs_number(71)}]),
        **{"Idempotency-Key": "batch-8"},
    )
    response = _post(
        client,
        diabetes_csv([{"record_id": "G2", "nhs": nhs_number(72)}]),
        **{"Idempotency-Key": "batch-8"},
    )
    assert response.status_code == 422
    assert _is_outcome(response)["issue"][0]["code"] == "conflict"


# --- messages, metrics ----------------------------------------------------------------------


def test_message_status_has_no_patient_data(client: TestClient) -> None:
    """GET /messages/{id}: status and attempts, nothing from the record."""
    nhs = nhs_number(81)
    [item] = _post(client, diabetes_csv([{"record_id": "H1", "nhs": nhs}])).json()["accepted"]
    response = client.get(f"/messages/{item['id']}", headers=auth("reader"))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == item["id"]
    assert body["status"] in ("queued", "failed")
    for value in (nhs, FAMILY_NAME, GIVEN_NAME, "H1"):
        assert value not in response.text


def test_replay_only_dead_letters(client: TestClient) -> None:
    """Replay re-queues a dead letter (202) and refuses anything else (409) or unknown (404)."""
    [item] = _post(client, diabetes_csv([{"record_id": "J1", "nhs": nhs_number(91)}])).json()[
        "accepted"
    ]
    path = f"/messages/{item['id']}/replay"
    assert client.post(path, headers=auth("ops")).status_code == 409
    _runtime(client).outbox.mark_dead(item["id"], "FI721 HTTP 400: refused")
    response = client.post(path, headers=auth("ops"))
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert client.post("/messages/unknown/replay", headers=auth("ops")).status_code == 404


def test_metrics_count_accepted_and_queue_depth(client: TestClient) -> None:
    """/metrics shows records accepted and the outbox depth by status."""
    _post(client, diabetes_csv([{"record_id": "K1", "nhs": nhs_number(101)}]))
    text = client.get("/metrics", headers=auth("reader")).text
    assert 'fhir_iapt_relay_accepted_total{direction="referral"} 1.0' in text
    assert "fhir_iapt_relay_queue_depth{status=" in text
    assert "fhir_iapt_relay_delivery_latency_seconds" in text


def test_outcomes_route_by_referral_identifier_system(client: TestClient) -> None:
    """Episode rows go to the destination routed by their referral identifier system."""
    data = (EXAMPLES / "iapt-outcomes.csv").read_bytes()
    response = client.post(
        "/outcomes?mapping=iapt-outcomes", content=data, headers={**CSV, **auth("iapt")}
    )
    assert response.status_code == 202
    destinations = {}
    for item in response.json()["accepted"]:
        info = _runtime(client).outbox.info(item["id"])
        assert info is not None
        destinations[item["location"].split(" line")[0]] = info.destination
    assert destinations["body row 1"] == "iapt"  # the diabetes clinic's system is routed
    assert destinations["body row 2"] == "clinic"  # not routed: the default


def test_questionnaire_responses_are_accepted_as_fhir_json(client: TestClient) -> None:
    """A QuestionnaireResponse (application/fhir+json, no mapping) whose patient's consent is
    Y in the configured register is accepted."""
    data = (EXAMPLES / "phq9-lhcforms-response.json").read_bytes()
    response = client.post(
        "/outcomes", content=data, headers={"Content-Type": "application/fhir+json", **auth("iapt")}
    )
    assert response.status_code == 202
    assert len(response.json()["accepted"]) == 1


def test_openapi_error_answers_are_fhir_json(client: TestClient) -> None:
    """Every documented error answer is application/fhir+json (what the relay sends), and the
    422 HTTPValidationError FastAPI adds (never sent: bad requests get 400) is not listed."""
    spec = client.get("/openapi.json").json()
    seen = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                assert "HTTPValidationError" not in str(content), (path, method, status)
                if status.startswith("2"):
                    continue
                seen += 1
                assert "application/json" not in content, (path, method, status)
                assert "application/fhir+json" in content, (path, method, status)
    assert seen > 10
    real = client.post("/referrals", content=b"x", headers={"Content-Type": "text/csv"})
    assert real.headers["content-type"].startswith("application/fhir+json")


def test_openapi_documents_every_route(client: TestClient) -> None:
    """The OpenAPI document lists the routes and the bearer scheme."""
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) >= {
        "/referrals",
        "/outcomes",
        "/messages/{message_id}",
        "/messages/{message_id}/replay",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


# --- logs ----------------------------------------------------------------------------------


def test_logs_and_audit_hold_no_patient_data(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Posting records (one good, one bad) logs an AuditEvent per request and no PHI."""
    caplog.set_level(logging.DEBUG)
    nhs = nhs_number(111)
    bad_nhs = "9000000001"
    data = diabetes_csv([{"record_id": "L1", "nhs": nhs}, {"record_id": "L2", "nhs": bad_nhs}])
    response = _post(client, data)
    assert response.status_code == 202
    client.get(f"/messages/{response.json()['accepted'][0]['id']}", headers=auth("reader"))
    text = caplog.text
    for value in (nhs, bad_nhs, FAMILY_NAME, GIVEN_NAME, "1961-04-12", "low mood"):
        assert value not in text
    audits = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "fhir_iapt.relay.audit"
    ]
    post = next(a for a in audits if a["action"] == "C")
    assert post["resourceType"] == "AuditEvent"
    assert post["agent"][0]["who"]["identifier"]["value"] == "clinic"
    assert post["outcome"] == "0"
    assert post["entity"][0]["what"]["identifier"]["value"] == "/referrals"
    assert any(a["action"] == "R" for a in audits)


def test_refused_request_is_audited(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """A 403 leaves an audit line naming who was refused and the failure outcome."""
    caplog.set_level(logging.INFO, logger="fhir_iapt.relay.audit")
    client.get("/metrics", headers=auth("clinic"))
    [event] = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "fhir_iapt.relay.audit"
    ]
    assert event["agent"][0]["who"]["identifier"]["value"] == "clinic"
    assert event["outcome"] == "4"
    assert event["outcomeDesc"].startswith("403")


def test_settings_dependency_can_be_overridden(tmp_path: Path) -> None:
    """Routes read settings through get_settings, so a test can swap them per app."""
    from fhir_iapt.relay.runtime import get_settings
    from fhir_iapt.relay.settings import LimitsSettings

    settings = make_settings(tmp_path / "data")
    app = create_app(settings)
    tight = settings.model_copy(update={"limits": LimitsSettings(max_body_bytes=16)})
    app.dependency_overrides[get_settings] = lambda: tight
    with TestClient(app) as test_client:
        response = test_client.post(
            "/referrals?mapping=diabetes-csv", content=b"x" * 17, headers={**CSV, **auth("clinic")}
        )
    assert response.status_code == 413
