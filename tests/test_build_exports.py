"""The public names of the build and emit packages are the ones the design promised."""

from __future__ import annotations

import fhir_iapt.emit
import fhir_iapt.fhir
import fhir_iapt.fhir.common


def test_fhir_package_exports() -> None:
    """fhir_iapt.fhir exports the referral builder and its options, sorted."""
    assert fhir_iapt.fhir.__all__ == [
        "DEFAULT_OPTIONS", "BuildOptions", "Coding", "RequestMethod", "build_referral_bundle",
    ]
    for name in fhir_iapt.fhir.__all__:
        assert hasattr(fhir_iapt.fhir, name)


def test_common_builders_exported() -> None:
    """The shared builders the outcome bundles reuse are public in fhir.common."""
    for name in ("entry", "patient_resource", "questionnaire_response", "score_observation",
                 "reference", "ods_reference", "transaction_bundle"):
        assert name in fhir_iapt.fhir.common.__all__
        assert callable(getattr(fhir_iapt.fhir.common, name))


def test_emit_package_exports() -> None:
    """fhir_iapt.emit exports the writers the CLI uses."""
    assert {"BulkWriter", "NdjsonBundleWriter", "OutputWriter", "RejectsWriter",
            "XmlBundleWriter", "write_summary"} <= set(fhir_iapt.emit.__all__)
    for name in fhir_iapt.emit.__all__:
        assert hasattr(fhir_iapt.emit, name)
