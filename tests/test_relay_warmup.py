"""Warm-up builds what the first request needs; the shape-cache key is never paid per request."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from relay_helpers import auth, diabetes_csv, make_settings, nhs_number

import fhir_iapt.fhir.validate
import fhir_iapt.mapping
from fhir_iapt.errors import Location
from fhir_iapt.fhir.options import DEFAULT_OPTIONS
from fhir_iapt.fhir.validate import default_validator
from fhir_iapt.mapping import load_mapping
from fhir_iapt.pipeline import ShapeCache, convert_bytes
from fhir_iapt.relay import intake
from fhir_iapt.relay.app import create_app
from fhir_iapt.relay.intake import Validation, warm_bundles, warm_up
from fhir_iapt.results import Converted, Result, Skipped

ROOT = Path(__file__).resolve().parent.parent
CSV = {"Content-Type": "text/csv", **auth("clinic")}


class CountingCache(ShapeCache):
    """A real shape cache that counts how often its key is computed."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.keys = 0

    def key(self, mapping: Any, options: Any) -> str | None:
        self.keys += 1
        return super().key(mapping, options)


def _site_mapping(folder: Path) -> Path:
    """A mapping file of the relay's own (the diabetes layout under another name)."""
    shutil.copytree(ROOT / "mappings" / "tables", folder / "tables")
    text = (ROOT / "mappings" / "diabetes-csv.yaml").read_text(encoding="utf-8")
    path = folder / "site-diabetes.yaml"
    path.write_text(text.replace("name: diabetes-csv", "name: site-diabetes"), encoding="utf-8")
    return path


def _converted(seed: int) -> list[Result]:
    body = diabetes_csv([{"record_id": f"W{seed}", "nhs": nhs_number(seed)}])
    return convert_bytes(body, name="body", mapping=load_mapping("diabetes-csv"), validation="none")


def test_the_shape_key_is_computed_once_per_mapping_not_per_request(tmp_path: Path) -> None:
    """Requests that leave the 'once' check still to do (nothing converted) hash the package's
    files once, not once per request."""
    cache = CountingCache(tmp_path / "shapes")
    validation = Validation("once", cache)
    mapping = load_mapping("diabetes-csv")
    skipped: list[Result] = [
        Skipped("k", "not-referred", "no referral decision", Location(file="body"))
    ]
    for _ in range(3):
        assert validation.apply(mapping, skipped) == skipped
    assert cache.keys == 1


def test_the_kept_key_is_the_shape_cache_key(tmp_path: Path) -> None:
    """The key kept per mapping is exactly what the shape cache computes for it."""
    cache = ShapeCache(tmp_path / "shapes")
    validation = Validation("once", cache)
    mapping = load_mapping("diabetes-csv")
    validation.apply(mapping, _converted(1))
    assert (tmp_path / "shapes" / str(cache.key(mapping, DEFAULT_OPTIONS))).exists()


def test_a_cached_pass_gives_the_results_unvalidated_and_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a pass in the shape cache (a previous process), 'once' returns the very results
    it was given and never runs the validator."""
    mapping = load_mapping("diabetes-csv")
    Validation("once", ShapeCache(tmp_path / "shapes")).apply(mapping, _converted(2))
    fresh = Validation("once", ShapeCache(tmp_path / "shapes"))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the validator ran")

    monkeypatch.setattr(fhir_iapt.fhir.validate, "default_validator", refuse)
    results = _converted(3)
    out = fresh.apply(mapping, results)
    assert out == results
    assert all(a is b for a, b in zip(out, results, strict=True))


def test_once_still_rejects_a_first_bundle_the_validator_refuses(tmp_path: Path) -> None:
    """The kept key changes nothing of the check itself: a broken first bundle is rejected and
    no pass is remembered."""
    mapping = load_mapping("diabetes-csv")
    results = _converted(4)
    first = results[0]
    assert isinstance(first, Converted)
    del first.bundle["type"]
    validation = Validation("once", ShapeCache(tmp_path / "shapes"))
    out = validation.apply(mapping, results)
    assert not isinstance(out[0], Converted)
    assert list((tmp_path / "shapes").glob("*")) == []


def test_warm_up_computes_every_configured_mappings_key(tmp_path: Path) -> None:
    """After warm-up the first requests hash nothing: each configured mapping's key is known,
    and a pass already cached marks the mapping checked."""
    site = _site_mapping(tmp_path)
    cache = CountingCache(tmp_path / "shapes")
    validation = Validation("once", cache)
    warm_up(("diabetes-csv", str(site)), validation)
    computed = cache.keys
    assert computed == 3  # the two configured mappings and the QuestionnaireResponse one
    for seed in range(5, 8):
        validation.apply(load_mapping(site), _converted(seed))
    assert cache.keys == computed


def test_warm_up_loads_the_configured_mapping_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mapping file [intake] mappings names is loaded at warm-up, not by the first request."""
    site = _site_mapping(tmp_path)
    entries = ("diabetes-csv", str(site))
    intake._configured.cache_clear()
    intake._mapping.cache_clear()
    warm_up(entries, Validation("none"))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a mapping was loaded after warm-up")

    monkeypatch.setattr(fhir_iapt.mapping, "load_mapping", refuse)
    mapping = intake.resolve_mapping("site-diabetes", "referral", "text/csv", mappings=entries)
    assert mapping.name == "site-diabetes"


def test_the_warm_up_samples_convert_and_pass_the_validator() -> None:
    """Each warm-up sample still converts with its bundled mapping into a bundle the real
    validator accepts, so warm-up exercises the same code a request does."""
    bundles = warm_bundles()
    assert len(bundles) == len(intake._WARM_SAMPLES)
    for bundle in bundles:
        issues = default_validator().validate_bundle(bundle)
        assert [i for i in issues if i.severity in ("error", "fatal")] == []


def test_the_warm_up_samples_cover_every_resource_type_the_relay_emits() -> None:
    """Every resource type in the bundles of the shipped examples is in a warm-up bundle."""
    warmed = {e["resource"]["resourceType"] for b in warm_bundles() for e in b["entry"]}
    examples = {
        "diabetes-csv": "diabetes.csv",
        "cardiac-json": "cardiac.json",
        "respiratory-xml": "respiratory.xml",
        "iapt-outcomes": "iapt-outcomes.csv",
    }
    emitted: set[str] = set()
    for name, file in examples.items():
        data = (ROOT / "examples" / file).read_bytes()
        for result in convert_bytes(data, name=file, mapping=load_mapping(name), validation="none"):
            if isinstance(result, Converted):
                emitted |= {e["resource"]["resourceType"] for e in result.bundle["entry"]}
    assert emitted
    assert emitted <= warmed


@pytest.mark.usefixtures("relay_store")
def test_readyz_is_ready_only_after_warm_up_and_the_first_post_builds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/readyz says ready only once warm-up is done; the first POST then loads no mapping and
    hashes no file."""
    settings = make_settings(tmp_path / "data", intake={"warm_up": True, "validation": "once"})
    intake._configured.cache_clear()
    intake._mapping.cache_clear()
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("built on the first request")

        monkeypatch.setattr(fhir_iapt.mapping, "load_mapping", refuse)
        monkeypatch.setattr(ShapeCache, "key", refuse)
        body = diabetes_csv([{"record_id": "R1", "nhs": nhs_number(11)}])
        response = client.post("/referrals?mapping=diabetes-csv", content=body, headers=CSV)
        assert response.status_code == 202, response.text


@pytest.mark.usefixtures("relay_store")
def test_warm_up_freezes_the_start_up_heap_out_of_the_collector(tmp_path: Path) -> None:
    """After warm-up the long-lived heap (validator, mappings, modules) is frozen, so a full
    garbage collection under load walks only what requests made (it took 100-220 ms)."""
    import gc

    gc.unfreeze()
    settings = make_settings(tmp_path / "data", intake={"warm_up": True, "validation": "none"})
    try:
        with TestClient(create_app(settings)) as client:
            deadline = time.monotonic() + 120
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
