"""The relay uses only the mappings its configuration names (``[intake] mappings``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from relay_helpers import auth, diabetes_csv, make_settings, nhs_number

from fhir_iapt.mapping import bundled_mappings, load_mapping
from fhir_iapt.relay.app import create_app

#: Every test here runs on the SQLite and on the PostgreSQL outbox.
pytestmark = pytest.mark.usefixtures("relay_store")

ROOT = Path(__file__).resolve().parent.parent
CSV = {"Content-Type": "text/csv", **auth("clinic")}


def _site_mapping(folder: Path) -> Path:
    """A valid mapping file on the relay's disk: the diabetes layout under its own name."""
    shutil.copytree(ROOT / "mappings" / "tables", folder / "tables")
    text = (ROOT / "mappings" / "diabetes-csv.yaml").read_text(encoding="utf-8")
    path = folder / "site-diabetes.yaml"
    path.write_text(text.replace("name: diabetes-csv", "name: site-diabetes"), encoding="utf-8")
    assert load_mapping(path).name == "site-diabetes"
    return path


def _client(tmp_path: Path, **intake: Any) -> Iterator[TestClient]:
    settings = make_settings(tmp_path / "data", intake={"warm_up": False, **intake})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def site_mapping(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    return _site_mapping(folder)


@pytest.fixture
def default_client(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path)


def _body(seed: int) -> bytes:
    return diabetes_csv([{"record_id": f"M{seed}", "nhs": nhs_number(seed)}])


def _refused(response: Any, name: str) -> None:
    assert response.status_code == 404
    issue = response.json()["issue"][0]
    assert issue["code"] == "not-found"
    assert issue["diagnostics"] == f"no mapping named {name!r}"


def test_a_mapping_file_path_in_the_query_is_refused(
    default_client: TestClient, site_mapping: Path
) -> None:
    """?mapping=/path/to/a/valid/mapping.yaml does not load a file the config does not name."""
    response = default_client.post(
        f"/referrals?mapping={site_mapping}", content=_body(1), headers=CSV
    )
    _refused(response, str(site_mapping))


def test_a_bundled_mapping_by_path_is_refused(default_client: TestClient) -> None:
    """Even a bundled mapping is called by its name, never by a path on the relay's disk."""
    path = ROOT / "mappings" / "diabetes-csv.yaml"
    response = default_client.post(f"/referrals?mapping={path}", content=_body(2), headers=CSV)
    _refused(response, str(path))
    relative = "mappings/diabetes-csv.yaml"
    response = default_client.post(f"/referrals?mapping={relative}", content=_body(3), headers=CSV)
    _refused(response, relative)


def test_by_default_every_bundled_mapping_is_usable(default_client: TestClient) -> None:
    """Without [intake] mappings, the bundled mappings are the configured ones: each export
    mapping is found by name (415 for a body type it does not read: found, not 404)."""
    runtime = default_client.app.state.relay  # type: ignore[attr-defined]
    assert list(runtime.settings.intake.mappings) == bundled_mappings()
    routes = {"referral": ("/referrals", "clinic"), "episode": ("/outcomes", "iapt")}
    found = 0
    for name in bundled_mappings():
        target = load_mapping(name).target
        if target not in routes:
            continue
        path, key = routes[target]
        response = default_client.post(
            f"{path}?mapping={name}",
            content=b"x",
            headers={"Content-Type": "application/octet-stream", **auth(key)},
        )
        assert response.status_code == 415, name
        found += 1
    assert found >= 4


def test_only_the_configured_mappings_are_usable(tmp_path: Path, site_mapping: Path) -> None:
    """A configured mapping file is used by its name; a bundled one left out is refused."""
    for client in _client(tmp_path, mappings=[str(site_mapping), "iapt-outcomes"]):
        accepted = client.post("/referrals?mapping=site-diabetes", content=_body(5), headers=CSV)
        assert accepted.status_code == 202
        assert accepted.json()["accepted"][0]["key"]
        _refused(
            client.post("/referrals?mapping=diabetes-csv", content=_body(6), headers=CSV),
            "diabetes-csv",
        )
        _refused(
            client.post("/referrals?mapping=site-diabetes.yaml", content=_body(7), headers=CSV),
            "site-diabetes.yaml",
        )
