"""Until the relay can take a POST (its validator and mappings built), it answers 503 with
``Retry-After`` and an OperationOutcome; the build runs once at a time, and a failed one is
built again, never taken as ready.

The build is made slow or failing through a controlled hook: ``warm_up`` as the app calls it
is replaced by a function that waits for an event the test sets, or raises, then does the real
work. Nothing here waits on a sleep to win a race.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from relay_helpers import auth, diabetes_csv, make_settings, nhs_number

import fhir_iapt.relay.app as relay_app
from fhir_iapt.relay.app import create_app
from fhir_iapt.relay.intake import Validation

#: Every test here runs on the SQLite and on the PostgreSQL outbox.
pytestmark = pytest.mark.usefixtures("relay_store")

HEADERS = {"Content-Type": "text/csv", **auth("clinic")}
WAIT = 30.0


class Hook:
    """Stands in for ``intake.warm_up``: counts calls and overlaps, fails the calls it is told
    to, waits for ``release`` when ``hold`` is set, and otherwise does the real warm-up."""

    def __init__(self, *, fail: Sequence[int] = (), hold: bool = False) -> None:
        self.real = relay_app.warm_up
        self.fail = set(fail)
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.calls = 0
        self.inside = 0
        self.most_inside = 0
        self.entered: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def entered_call(self, n: int) -> threading.Event:
        with self._lock:
            return self.entered.setdefault(n, threading.Event())

    def __call__(self, mappings: Sequence[str], validation: Validation) -> None:
        with self._lock:
            self.calls += 1
            n = self.calls
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            self.entered_call(n).set()
            if n in self.fail:
                raise RuntimeError("warm-up made to fail")
            assert self.release.wait(WAIT)
            self.real(mappings, validation)
        finally:
            with self._lock:
                self.inside -= 1


@pytest.fixture
def hooked(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Hook]:
    def make(**kwargs: Any) -> Hook:
        hook = Hook(**kwargs)
        monkeypatch.setattr(relay_app, "warm_up", hook)
        return hook

    return make


@pytest.fixture
def released() -> Iterator[list[Hook]]:
    """Hooks to release when the test ends, so no warm-up thread outlives it."""
    hooks: list[Hook] = []
    yield hooks
    for hook in hooks:
        hook.release.set()


def _post(client: TestClient, seed: int) -> httpx.Response:
    body = diabetes_csv([{"record_id": f"GATE-{seed}", "nhs": nhs_number(700 + seed)}])
    return client.post("/referrals?mapping=diabetes-csv", content=body, headers=HEADERS)


def _assert_not_yet(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert [issue["code"] for issue in body["issue"]] == ["transient"]


def _wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + WAIT
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.02)


def test_posts_while_warming_up_get_503_with_retry_after_then_202(
    tmp_path: Path, hooked: Callable[..., Hook], released: list[Hook]
) -> None:
    """While warm-up is in progress a valid POST is 503 + Retry-After (an OperationOutcome),
    not served by a validator half-built; /readyz says not ready; once built, 202."""
    hook = hooked(hold=True)
    released.append(hook)
    settings = make_settings(tmp_path / "data", intake={"warm_up": True, "validation": "once"})
    with TestClient(create_app(settings)) as client:
        assert hook.entered_call(1).wait(WAIT)
        _assert_not_yet(_post(client, 1))
        outcomes_body = b"pathway_id\n1\n"
        outcome = client.post(
            "/outcomes?mapping=iapt-outcomes",
            content=outcomes_body,
            headers={"Content-Type": "text/csv", **auth("iapt")},
        )
        _assert_not_yet(outcome)
        assert client.get("/readyz").status_code == 503
        hook.release.set()
        _wait_ready(client)
        assert _post(client, 2).status_code == 202
    assert hook.calls == 1


def test_a_failed_warm_up_is_not_taken_as_ready_and_is_built_again(
    tmp_path: Path, hooked: Callable[..., Hook], released: list[Hook]
) -> None:
    """A warm-up that fails leaves the relay not ready (503 + Retry-After, /readyz 503); it is
    built again, and only a build that succeeds opens the relay."""
    hook = hooked(fail=[1], hold=True)
    released.append(hook)
    settings = make_settings(tmp_path / "data", intake={"warm_up": True, "validation": "once"})
    with TestClient(create_app(settings)) as client:
        assert hook.entered_call(2).wait(WAIT), "the failed warm-up was not tried again"
        assert client.get("/readyz").status_code == 503
        _assert_not_yet(_post(client, 3))
        hook.release.set()
        _wait_ready(client)
        assert _post(client, 4).status_code == 202
    assert hook.calls == 2


def test_without_warm_up_concurrent_first_posts_share_one_build(
    tmp_path: Path, hooked: Callable[..., Hook], released: list[Hook]
) -> None:
    """warm_up = false: the first POSTs build the validator on demand, one build for all of
    them (the others wait for it, none builds alongside), then each is answered 202."""
    hook = hooked(hold=True)
    released.append(hook)
    settings = make_settings(tmp_path / "data", intake={"warm_up": False, "validation": "once"})
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(4) as pool:
        answers = [pool.submit(_post, client, 10 + i) for i in range(4)]
        assert hook.entered_call(1).wait(WAIT), "no POST built the validator"
        gate = client.app.state.relay.gate  # type: ignore[attr-defined]
        deadline = time.monotonic() + WAIT
        while gate.waiting < 3:  # the other three are waiting for the build in progress
            assert time.monotonic() < deadline, "the other posts did not wait for the build"
            time.sleep(0.01)
        hook.release.set()
        assert [a.result(WAIT).status_code for a in answers] == [202] * 4
        assert client.get("/readyz").status_code == 200
    assert (hook.calls, hook.most_inside) == (1, 1)


def test_without_warm_up_a_failed_build_is_503_and_the_next_post_builds_again(
    tmp_path: Path, hooked: Callable[..., Hook]
) -> None:
    """warm_up = false: a first POST whose build fails is 503 + Retry-After, nothing of it is
    kept as built, and the next POST builds again and is answered 202."""
    hook = hooked(fail=[1])
    settings = make_settings(tmp_path / "data", intake={"warm_up": False, "validation": "once"})
    with TestClient(create_app(settings)) as client:
        _assert_not_yet(_post(client, 20))
        assert hook.calls == 1
        assert _post(client, 21).status_code == 202
        assert _post(client, 22).status_code == 202
    assert hook.calls == 2
