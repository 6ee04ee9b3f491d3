"""Validation policies: none / first / full on every command, one shape cache for all of them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from click.testing import CliRunner

from fhir_iapt.cli import main
from fhir_iapt.fhir.options import DEFAULT_OPTIONS
from fhir_iapt.mapping import load_mapping
from fhir_iapt.pipeline import ShapeCache, convert_file, validated
from fhir_iapt.relay.intake import Validation
from fhir_iapt.results import Converted, Rejected

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _broken_first() -> list[Converted]:
    """The example's converted results, the first bundle's ServiceRequest status not a code of
    its required value set."""
    results = [
        r
        for r in convert_file(EXAMPLES / "diabetes.csv", mapping="diabetes-csv", validation="none")
        if isinstance(r, Converted)
    ]
    bundle = copy.deepcopy(results[0].bundle)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "ServiceRequest":
            entry["resource"]["status"] = "not-a-status"
    results[0] = Converted(results[0].key, bundle, results[0].location, results[0].kind)
    return results


def test_first_bundle_check_rejects_a_broken_shape() -> None:
    """With an empty cache, the first-bundle check catches the broken bundle (the check works)."""
    out = list(validated(_broken_first(), "first"))
    assert isinstance(out[0], Rejected)


def test_a_remembered_pass_is_shared_through_the_shape_cache(tmp_path: Path) -> None:
    """A pass the cache holds for this mapping is honoured by the relay's policy: its first
    bundle is not checked again (the same cache key the CLI commands use)."""
    mapping = load_mapping("diabetes-csv")
    cache = ShapeCache(tmp_path / "shape-checks")
    key = cache.key(mapping, DEFAULT_OPTIONS)
    assert key is not None
    cache.remember(key)
    policy = Validation("once", cache)
    out = policy.apply(mapping, list(_broken_first()))
    assert all(isinstance(r, Converted) for r in out)


def test_relay_policy_none_runs_no_validator() -> None:
    """[intake] validation = none passes results through unchecked."""
    results = _broken_first()
    assert Validation("none").apply(load_mapping("diabetes-csv"), list(results)) == results


def test_cli_validate_none_gives_the_same_bundles(tmp_path: Path) -> None:
    """convert --validate none writes exactly the bundles --validate first writes."""
    runner = CliRunner()
    outs = {}
    for policy in ("none", "first"):
        out = tmp_path / policy
        result = runner.invoke(
            main,
            [
                "convert",
                str(EXAMPLES / "diabetes.csv"),
                "--mapping",
                "diabetes-csv",
                "--out",
                str(out),
                "--validate",
                policy,
            ],
        )
        assert result.exit_code == 0, result.output
        outs[policy] = (out / "bundles.ndjson").read_bytes()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["converted"] > 0
    assert outs["none"] == outs["first"]
