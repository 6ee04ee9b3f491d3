"""The public names of the build and emit packages are the ones the design promised."""

from __future__ import annotations

import fhir_iapt.emit
import fhir_iapt.fhir
import fhir_iapt.fhir.common


def test_fhir_package_exports() -> None:
    """fhir_iapt.fhir exports the referral builder and its options, sorted."""
    assert fhir_iapt.fhir.__all__ == [
        "DEFAULT_OPTIONS",
        "BuildOptions",
        "Coding",
        "RequestMethod",
        "build_referral_bundle",
    ]
    for name in fhir_iapt.fhir.__all__:
        assert hasattr(fhir_iapt.fhir, name)


def test_common_builders_exported() -> None:
    """The shared builders the outcome bundles reuse are public in fhir.common."""
    for name in (
        "entry",
        "patient_resource",
        "questionnaire_response",
        "score_observation",
        "reference",
        "ods_reference",
        "transaction_bundle",
    ):
        assert name in fhir_iapt.fhir.common.__all__
        assert callable(getattr(fhir_iapt.fhir.common, name))


def test_emit_package_exports() -> None:
    """fhir_iapt.emit exports the writers the CLI uses."""
    assert {
        "BulkWriter",
        "NdjsonBundleWriter",
        "OutputWriter",
        "RejectsWriter",
        "XmlBundleWriter",
        "write_summary",
    } <= set(fhir_iapt.emit.__all__)
    for name in fhir_iapt.emit.__all__:
        assert hasattr(fhir_iapt.emit, name)


def _zulu(value: object) -> object:
    """fhir.resources writes a UTC offset of +00:00 as Z; nothing else may change."""
    if isinstance(value, dict):
        return {k: _zulu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_zulu(v) for v in value]
    if isinstance(value, str) and value.endswith("+00:00") and "T" in value:
        return value[: -len("+00:00")] + "Z"
    return value


def test_every_golden_bundle_reads_as_a_typed_model() -> None:
    """as_model parses every golden bundle into fhir.resources models that dump back to it."""
    import json
    from pathlib import Path

    from fhir_iapt import as_model

    data = Path(__file__).resolve().parent / "data"
    bundles = [
        json.loads(line)
        for path in sorted((data / "golden").glob("*/bundles.ndjson"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    bundles.append(
        json.loads((data / "outcomes" / "phq9-lhcforms-response.expected.json").read_text())
    )
    episodes = json.loads((data / "outcomes" / "iapt-outcomes.expected.json").read_text())
    bundles.extend(episodes.values())
    assert len(bundles) > 20
    for bundle in bundles:
        model = as_model(bundle)
        assert type(model).__name__ == "Bundle"
        assert _zulu(json.loads(model.model_dump_json(exclude_none=True))) == _zulu(bundle)
