"""The hot path of POST /referrals: no thread hop that the work does not need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi.dependencies.utils
import pytest
from fastapi.testclient import TestClient
from relay_helpers import auth, diabetes_csv, make_settings, nhs_number

from fhir_iapt.relay.app import create_app

#: Every test here runs on the SQLite and on the PostgreSQL outbox.
pytestmark = pytest.mark.usefixtures("relay_store")

CSV = {"Content-Type": "text/csv", **auth("clinic")}


def test_post_referrals_resolves_its_dependencies_without_the_threadpool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI runs a plain-def dependency in its threadpool; none of the POST's dependencies
    (settings, auth with a verified key) is one, so none costs a thread hop."""
    hops: list[str] = []
    real = fastapi.dependencies.utils.run_in_threadpool

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(fastapi.dependencies.utils, "run_in_threadpool", counting)
    settings = make_settings(tmp_path / "data", intake={"warm_up": False, "validation": "none"})
    with TestClient(create_app(settings)) as client:
        body = diabetes_csv([{"record_id": "H1", "nhs": nhs_number(21)}])
        first = client.post("/referrals?mapping=diabetes-csv", content=body, headers=CSV)
        assert first.status_code == 202, first.text
        body = diabetes_csv([{"record_id": "H2", "nhs": nhs_number(22)}])
        second = client.post("/referrals?mapping=diabetes-csv", content=body, headers=CSV)
        assert second.status_code == 202, second.text
    assert hops == []
