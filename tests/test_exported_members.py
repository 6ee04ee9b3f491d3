"""The public API is exactly what we meant: sorted, resolvable, and cheap to import."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import fhir_iapt

EXPECTED = {
    "AsyncFhirClient",
    "AuthError",
    "BearerToken",
    "BuildOptions",
    "ClientCredentials",
    "ConfigError",
    "ConsentFiles",
    "ConsentRegister",
    "Converted",
    "DeliveryError",
    "EmitError",
    "EpisodeOutcome",
    "EpisodeRecord",
    "FhirClient",
    "FhirIaptError",
    "InstrumentScore",
    "Issue",
    "Location",
    "Mapping",
    "MappingError",
    "ProfileError",
    "PushSummary",
    "ReadError",
    "RecordError",
    "ReferralRecord",
    "Rejected",
    "ResponseRecord",
    "Result",
    "RetryPolicy",
    "ScoringError",
    "TARGETS",
    "Target",
    "ServerError",
    "ShapeCache",
    "Skipped",
    "SmartBackendServices",
    "SourceRecord",
    "TransportError",
    "Validator",
    "as_model",
    "build_outcome_bundle",
    "build_referral_bundle",
    "bundled_mappings",
    "convert_bytes",
    "convert_file",
    "convert_files",
    "convert_record",
    "convert_stream",
    "default_validator",
    "derive_outcome",
    "load_consent_register",
    "load_mapping",
    "map_record",
    "operation_outcome",
    "read_records",
    "score_instrument",
    "score_questionnaire_response",
    "validated",
}


def test_all_is_sorted_and_is_the_intended_set() -> None:
    """__all__ is sorted and names exactly the intended public API."""
    assert fhir_iapt.__all__ == sorted(fhir_iapt.__all__)
    assert set(fhir_iapt.__all__) == EXPECTED


def test_every_public_name_resolves_to_an_object_defined_in_the_package() -> None:
    """Each exported name imports, and comes from a fhir_iapt module (no stray re-exports)."""
    for name in fhir_iapt.__all__:
        value = getattr(fhir_iapt, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("fhir_iapt."), (name, value.__module__)
        else:  # a type alias such as Result = Converted | Skipped | Rejected
            assert value is not None, name


def test_unknown_attribute_raises_attribute_error() -> None:
    """A name outside the API is an AttributeError, not a silent None."""
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = fhir_iapt.no_such_name  # type: ignore[attr-defined]


def test_importing_the_package_does_not_load_the_validator_or_the_web_stack() -> None:
    """`import fhir_iapt` stays cheap: fhircraft, FastAPI and httpx load only on use."""
    code = (
        "import sys, fhir_iapt; "
        "print(','.join(m for m in ('fhircraft', 'fastapi', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    """Importing every submodule leaves each public name bound to the exported object."""
    import pkgutil

    for info in pkgutil.walk_packages(fhir_iapt.__path__, "fhir_iapt."):
        if ".relay" not in info.name and not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in fhir_iapt.__all__:
        assert not inspect.ismodule(getattr(fhir_iapt, name)), name
