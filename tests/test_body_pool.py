"""The relay's body workers (pipeline.BodyPool) give exactly what converting in-process gives.

One rule, one place: a body converted in a worker process must come back as the same results
as :func:`convert_bytes` (``validation="none"``) in this process, record for record (bundle
bytes, keys, kinds, locations, skips, rejections with their outcomes), for every layout, for
hostile bodies, and with the consent register read live in the worker. The relay with
``[intake] workers`` queues the same messages as without.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relay_helpers import auth, diabetes_csv, make_settings, nhs_number

from fhir_iapt.consent import ConsentFiles
from fhir_iapt.errors import ConfigError
from fhir_iapt.mapping import load_mapping
from fhir_iapt.pipeline import BodyPool, convert_bytes
from fhir_iapt.relay.app import create_app
from fhir_iapt.relay.intake import IntakeError, Validation
from fhir_iapt.relay.intake import convert as intake_convert
from fhir_iapt.relay.runtime import RelayRuntime
from fhir_iapt.results import Converted, Rejected, Result, Skipped

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LAYOUTS = [
    ("diabetes.csv", "diabetes-csv"),
    ("respiratory.xml", "respiratory-xml"),
    ("cardiac.json", "cardiac-json"),
    ("cardiac.ndjson", "cardiac-json"),
    ("iapt-outcomes.csv", "iapt-outcomes"),
    ("phq9-lhcforms-response.json", "questionnaire-response"),
]


@pytest.fixture(scope="module")
def pool() -> Iterator[BodyPool]:
    made = BodyPool(1)
    made.warm([load_mapping(name) for _, name in LAYOUTS])
    yield made
    made.close()


def _seen(result: Result) -> tuple[Any, ...]:
    """What a caller can observe of a result (an exception object is compared by its outcome)."""
    if isinstance(result, Converted):
        return ("converted", result.key, result.json(), result.location, result.kind)
    if isinstance(result, Skipped):
        return ("skipped", result.key, result.reason, result.detail, result.location)
    assert isinstance(result, Rejected)
    return ("rejected", result.outcome, result.location, type(result.error).__name__)


def _both(pool: BodyPool, body: bytes, mapping: str, **kwargs: Any) -> tuple[list[Any], list[Any]]:
    loaded = load_mapping(mapping)
    here = convert_bytes(body, name="body", mapping=loaded, validation="none", **kwargs)
    there = pool.convert_bytes(body, name="body", mapping=loaded, **kwargs)
    return [_seen(r) for r in here], [_seen(r) for r in there]


@pytest.mark.parametrize(("example", "mapping"), LAYOUTS)
def test_each_bundled_example_converts_the_same_in_a_worker(
    pool: BodyPool, example: str, mapping: str
) -> None:
    """Every layout's example: the worker's results equal this process's, record for record."""
    here, there = _both(pool, (EXAMPLES / example).read_bytes(), mapping)
    assert there == here
    assert here


def _example_rows() -> tuple[list[str], list[list[str]]]:
    reader = csv.reader(io.StringIO((EXAMPLES / "diabetes.csv").read_text("utf-8")))
    header, *rows = list(reader)
    return header, rows


_HEADER, _ROWS = _example_rows()
_CELL = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", "Y", "N", "3", "27", "1990-02-30", "9990000018", "\u0663"]
)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """The example export with some cells replaced by anything (some rows break, some not)."""
    rows = [list(r) for r in draw(st.lists(st.sampled_from(_ROWS), min_size=1, max_size=6))]
    for row in rows:
        for _ in range(draw(st.integers(0, 3))):
            row[draw(st.integers(0, len(row) - 1))] = draw(_CELL)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_HEADER)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_bodies())
def test_generated_bodies_convert_the_same_in_a_worker(pool: BodyPool, body: bytes) -> None:
    """Generated exports (good, bad and broken cells): worker results equal in-process ones."""
    here, there = _both(pool, body, "diabetes-csv")
    assert there == here


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00garbage",
        b"clinic_record_id\n" + b"x" * 50,
        (EXAMPLES / "diabetes.csv").read_bytes()[:-40],
    ],
    ids=["not-utf8", "missing-columns", "cut-short"],
)
def test_broken_bodies_are_rejected_the_same_in_a_worker(pool: BodyPool, body: bytes) -> None:
    """A body that cannot be read whole gives the same rejections from a worker."""
    here, there = _both(pool, body, "diabetes-csv")
    assert there == here
    assert any(seen[0] == "rejected" for seen in here)


def test_the_consent_register_is_read_live_in_the_worker(pool: BodyPool, tmp_path: Path) -> None:
    """A withdrawal written to the register after the pool started decides in the worker too."""
    register = tmp_path / "register.csv"
    register.write_text("nhs_number,consent_share_outcomes\n9000000009,Y\n", encoding="utf-8")
    consent = ConsentFiles([register])
    body = (EXAMPLES / "iapt-outcomes.csv").read_bytes()
    here, there = _both(pool, body, "iapt-outcomes", consent=consent)
    assert there == here
    register.write_text("nhs_number,consent_share_outcomes\n9000000009,N\n", encoding="utf-8")
    withdrawn_here, withdrawn_there = _both(pool, body, "iapt-outcomes", consent=consent)
    assert withdrawn_there == withdrawn_here
    assert withdrawn_here != here  # the withdrawal changed what is sent


def test_a_broken_register_raises_config_error_from_the_worker(
    pool: BodyPool, tmp_path: Path
) -> None:
    """A register that breaks after start fails closed in a worker as in-process: ConfigError."""
    register = tmp_path / "register.csv"
    register.write_text("nhs_number,consent_share_outcomes\n9000000009,Y\n", encoding="utf-8")
    consent = ConsentFiles([register])
    register.write_text("no,such,columns\n", encoding="utf-8")
    body = (EXAMPLES / "iapt-outcomes.csv").read_bytes()
    with pytest.raises(ConfigError):
        pool.convert_bytes(
            body, name="body", mapping=load_mapping("iapt-outcomes"), consent=consent
        )


def _queued(runtime: RelayRuntime, answer: dict[str, Any]) -> list[bytes]:
    payloads = [runtime.outbox.payload(item["id"]) for item in answer["accepted"]]
    assert all(p is not None for p in payloads)
    return [p for p in payloads if p is not None]


def test_the_relay_with_body_workers_queues_what_it_queues_without(tmp_path: Path) -> None:
    """POST /referrals with a large body: with workers the outbox holds the same payloads."""
    body = diabetes_csv(
        [{"record_id": f"POOL-{i}", "nhs": nhs_number(7100 + i)} for i in range(40)]
    )
    queued: list[list[bytes]] = []
    for index, workers in enumerate((0, 1)):
        data = make_settings(
            tmp_path / f"data-{workers}",
            intake={"warm_up": True, "workers": workers, "pool_min_bytes": 1024},
        )
        with TestClient(create_app(data)) as client:
            runtime: RelayRuntime = client.app.state.relay  # type: ignore[attr-defined]
            deadline = time.monotonic() + 120  # warm-up builds and starts the workers
            while not runtime.gate.ready and time.monotonic() < deadline:
                time.sleep(0.1)
            assert runtime.gate.ready
            assert (runtime.pool is not None) == bool(workers), index
            response = client.post(
                "/referrals?mapping=diabetes-csv",
                content=body,
                headers={"Content-Type": "text/csv", **auth("clinic")},
            )
            assert response.status_code == 202, response.text
            queued.append(_queued(runtime, response.json()))
    assert len(queued[0]) == 40
    assert queued[1] == queued[0]


def _kill_a_worker(pool: BodyPool) -> None:
    pid = pool._executor.submit(os.getpid).result()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def test_a_killed_worker_fails_its_body_and_the_pool_starts_afresh() -> None:
    """A worker killed mid-run: that call raises BrokenProcessPool, the next one converts."""
    pool = BodyPool(1)
    body = (EXAMPLES / "diabetes.csv").read_bytes()
    mapping = load_mapping("diabetes-csv")
    try:
        pool.warm([mapping])
        _kill_a_worker(pool)
        with pytest.raises(BrokenProcessPool):
            pool.convert_bytes(body, name="body", mapping=mapping)
        here = [
            _seen(r) for r in convert_bytes(body, name="body", mapping=mapping, validation="none")
        ]
        assert [_seen(r) for r in pool.convert_bytes(body, name="body", mapping=mapping)] == here
    finally:
        pool.close()


def test_intake_answers_503_with_retry_after_when_a_worker_died() -> None:
    """The relay's intake turns a lost worker into 503 + Retry-After (nothing queued), then
    converts the next body."""
    pool = BodyPool(1)
    body = (EXAMPLES / "diabetes.csv").read_bytes()
    kwargs: dict[str, Any] = {
        "direction": "referral",
        "mapping_name": "diabetes-csv",
        "mappings": ("diabetes-csv",),
        "content_type": "text/csv",
        "validation": Validation("none", None),
        "pool": pool,
    }
    try:
        pool.warm([load_mapping("diabetes-csv")])
        _kill_a_worker(pool)
        with pytest.raises(IntakeError) as refused:
            intake_convert(body, **kwargs)
        assert refused.value.status_code == 503
        assert refused.value.headers["Retry-After"]
        assert any(isinstance(r, Converted) for r in intake_convert(body, **kwargs))
    finally:
        pool.close()
