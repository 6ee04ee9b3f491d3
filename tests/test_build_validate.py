"""Every kind of referral bundle the builder makes passes the validator (R4 + profiles)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from build_helpers import sample_record

from fhir_iapt.fhir import BuildOptions, build_referral_bundle
from fhir_iapt.fhir.validate import Validator, default_validator, has_errors
from fhir_iapt.records import ContextValue, ReferralData, ReferralRecord, Screening


@pytest.fixture(scope="module")
def validator() -> Validator:
    return default_validator()


CASES: dict[str, ReferralRecord] = {
    "golden sample": sample_record(),
    "no clinician named": sample_record(
        referral=ReferralData(decision=True, consent_to_refer=True)
    ),
    "clinician by name only": sample_record(
        referral=ReferralData(decision=True, consent_to_refer=True, referrer_name="Dr Who")
    ),
    "every context kind": sample_record(
        screenings=(),
        context=(
            ContextValue("hba1c", Decimal("48")),
            ContextValue("fev1", Decimal("1.8"), date(2024, 1, 2)),
            ContextValue("fev1_percent_predicted", 65),
            ContextValue("mrc_grade", 3),
            ContextValue("nyha_class", "II"),
            ContextValue("lvef", 35),
        ),
    ),
    "every instrument": sample_record(
        context=(),
        screenings=(
            Screening("PHQ-9", (0, 1, 2, 3, 0, 1, 2, 3, 0)),
            Screening("GAD-7", (3, 2, 1, 0, 1, 2, 3)),
            Screening("PHQ-2", (1, 1)),
            Screening("GAD-2", (2, 0)),
        ),
    ),
    "bare record": sample_record(conditions=(), context=(), screenings=()),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("method", ["conditional-create", "put"])
def test_bundle_validates(validator: Validator, name: str, method: Any) -> None:
    """The bundle has no error-level issue against R4, UK Core and the project's profiles."""
    bundle = build_referral_bundle(CASES[name], BuildOptions(request_method=method))
    issues = validator.validate_bundle(bundle)
    assert not has_errors(issues), [i.to_fhir() for i in issues]
