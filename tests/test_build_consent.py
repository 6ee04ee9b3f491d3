"""The referral bundle carries the clinic's recorded consent to share therapy outcomes back.

``ReferralData.consent_to_share_outcomes`` True/False becomes a base R4 Consent (permit + OPTIN /
deny + OPTOUT) listed in ``ServiceRequest.supportingInfo``; None (not recorded) adds nothing.
Expected resources are written out by hand from the R4 Consent examples' codes
(``consent-example-notThis``, ``consent-example-pkb``) and the id scheme of ``fhir/ids.py``.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from build_helpers import NHS, SOURCE, record_id, resources, sample_record, shared_id

from fhir_iapt.fhir import BuildOptions, build_referral_bundle
from fhir_iapt.fhir.validate import Validator, default_validator, has_errors
from fhir_iapt.records import ReferralData, ReferralRecord

CLINIC = {
    "type": "Organization",
    "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RX1AB"},
}
CONSENT_ID = record_id("Consent/share-outcomes")
CONSENT_IDENTIFIER = {"system": SOURCE, "value": "V-1001/Consent/share-outcomes"}


def _record(consent: bool | None, **referral: Any) -> ReferralRecord:
    return sample_record(
        referral=ReferralData(
            decision=True,
            consent_to_refer=True,
            consent_to_share_outcomes=consent,
            referrer_id="G1234567",
            referrer_id_system="https://fhir.nhs.uk/Id/sds-user-id",
            **referral,
        )
    )


def _expected_consent(provision_type: str, policy_code: str) -> dict[str, Any]:
    """The Consent written out by hand (sample record: clinic RX1AB, visit 2024-03-05)."""
    return {
        "resourceType": "Consent",
        "id": CONSENT_ID,
        "identifier": [CONSENT_IDENTIFIER],
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"urn:uuid:{shared_id('Patient', NHS, '9000000009')}"},
        "dateTime": "2024-03-05",
        "organization": [CLINIC],
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": policy_code}
            ]
        },
        "provision": {
            "type": provision_type,
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "v3-ParticipationType",
                                "code": "IRCP",
                                "display": "information recipient",
                            }
                        ]
                    },
                    "reference": CLINIC,
                }
            ],
            "action": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                            "code": "disclose",
                        }
                    ]
                }
            ],
        },
    }


def _consents(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in resources(bundle) if r["resourceType"] == "Consent"]


def _service_request(bundle: dict[str, Any]) -> dict[str, Any]:
    (found,) = [r for r in resources(bundle) if r["resourceType"] == "ServiceRequest"]
    return found


@pytest.mark.parametrize(
    ("consent", "provision_type", "policy_code"),
    [(True, "permit", "OPTIN"), (False, "deny", "OPTOUT")],
)
def test_recorded_consent_becomes_a_consent_resource(
    consent: bool, provision_type: str, policy_code: str
) -> None:
    """True gives permit + OPTIN, False deny + OPTOUT, each exactly the hand-written Consent."""
    bundle = build_referral_bundle(_record(consent))
    assert _consents(bundle) == [_expected_consent(provision_type, policy_code)]


@pytest.mark.parametrize("consent", [True, False])
def test_consent_is_supporting_info_of_the_service_request(consent: bool) -> None:
    """The ServiceRequest lists the Consent in supportingInfo; it sits just before it."""
    bundle = build_referral_bundle(_record(consent))
    supporting = _service_request(bundle)["supportingInfo"]
    assert {"reference": f"urn:uuid:{CONSENT_ID}"} in supporting
    types = [r["resourceType"] for r in resources(bundle)]
    assert types[-2:] == ["Consent", "ServiceRequest"]
    assert types.count("Consent") == 1


def test_consent_not_recorded_adds_nothing() -> None:
    """None (not recorded) adds no Consent and no extra supportingInfo reference."""
    bundle = build_referral_bundle(_record(None))
    assert _consents(bundle) == []
    recorded = build_referral_bundle(_record(True))
    without = _service_request(bundle)["supportingInfo"]
    with_consent = _service_request(recorded)["supportingInfo"]
    assert with_consent == [*without, {"reference": f"urn:uuid:{CONSENT_ID}"}]


def test_consent_entry_is_a_conditional_create_on_its_identifier() -> None:
    """The Consent is POSTed with ifNoneExist on its business identifier, fullUrl = urn:uuid."""
    bundle = build_referral_bundle(_record(True))
    (entry,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Consent"]
    assert entry["fullUrl"] == f"urn:uuid:{CONSENT_ID}"
    assert entry["request"] == {
        "method": "POST",
        "url": "Consent",
        "ifNoneExist": f"identifier={SOURCE}|V-1001/Consent/share-outcomes",
    }


def test_consent_entry_is_put_under_the_put_strategy() -> None:
    """request_method='put' sends PUT Consent/<deterministic id>."""
    bundle = build_referral_bundle(_record(False), BuildOptions(request_method="put"))
    (entry,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Consent"]
    assert entry["request"] == {"method": "PUT", "url": f"Consent/{CONSENT_ID}"}


def test_consent_id_depends_on_the_record_only() -> None:
    """Same record, same bytes; another record id, another Consent id and identifier."""
    first = orjson.dumps(build_referral_bundle(_record(True)))
    second = orjson.dumps(build_referral_bundle(_record(True)))
    assert first == second
    other = build_referral_bundle(
        sample_record(
            record="V-1002",
            referral=ReferralData(
                decision=True, consent_to_refer=True, consent_to_share_outcomes=True
            ),
        )
    )
    (consent,) = _consents(other)
    assert consent["id"] == record_id("Consent/share-outcomes", "V-1002")
    assert consent["identifier"] == [{"system": SOURCE, "value": "V-1002/Consent/share-outcomes"}]


@pytest.fixture(scope="module")
def validator() -> Validator:
    return default_validator()


@pytest.mark.parametrize("consent", [True, False, None])
@pytest.mark.parametrize("method", ["conditional-create", "put"])
def test_bundle_with_consent_validates(
    validator: Validator, consent: bool | None, method: Any
) -> None:
    """The bundle has no error-level issue against R4 and the profiles, for each consent value."""
    bundle = build_referral_bundle(_record(consent), BuildOptions(request_method=method))
    issues = validator.validate_bundle(bundle)
    assert not has_errors(issues), [i.to_fhir() for i in issues]


@pytest.mark.parametrize(
    "broken",
    ["no status", "no scope", "no policyRule", "impossible dateTime", "provision type not in R4"],
)
def test_validator_checks_the_consent(validator: Validator, broken: str) -> None:
    """The validation above can fail: a broken Consent (ppc-1 without policyRule) is an error."""
    bundle = copy.deepcopy(build_referral_bundle(_record(True)))
    (consent,) = _consents(bundle)
    if broken == "no status":
        del consent["status"]
    elif broken == "no scope":
        del consent["scope"]
    elif broken == "no policyRule":
        del consent["policyRule"]
    elif broken == "provision type not in R4":
        consent["provision"]["type"] = "maybe"  # required binding consent-provision-type
    else:
        consent["dateTime"] = "2024-02-30"
    assert has_errors(validator.validate_bundle(bundle))
