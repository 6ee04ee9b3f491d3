"""The referral builder: golden bundle, determinism, conditional keys, strategies, requesters."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from build_helpers import (
    NHS,
    NS,
    SDS,
    SOURCE,
    fill_placeholders,
    golden_ids,
    record_id,
    references,
    resources,
    sample_record,
    shared_id,
)

from fhir_iapt.errors import RecordError
from fhir_iapt.fhir import BuildOptions, Coding, build_referral_bundle
from fhir_iapt.fhir.ids import deterministic_id, escape_search_value, if_none_exist
from fhir_iapt.records import ReferralData

GOLDEN = Path(__file__).parent / "data" / "build" / "referral_diabetes_v1001.json"


def test_bundle_matches_hand_written_golden() -> None:
    """The sample record builds exactly the bundle written by hand from the issue 2 spec."""
    expected = fill_placeholders(json.loads(GOLDEN.read_text()), golden_ids())
    assert build_referral_bundle(sample_record()) == expected


def test_same_record_gives_identical_bytes() -> None:
    """Two builds of equal records serialise to the same bytes (no time, no randomness)."""
    first = orjson.dumps(build_referral_bundle(sample_record()))
    second = orjson.dumps(build_referral_bundle(sample_record()))
    assert first == second


def test_different_record_ids_give_different_ids() -> None:
    """Only shared resources (Patient, Practitioner, role) keep their ids across records."""
    a = build_referral_bundle(sample_record(record="V-1001"))
    b = build_referral_bundle(sample_record(record="V-1002"))
    ids_a = {r["id"]: r["resourceType"] for r in resources(a)}
    ids_b = {r["id"]: r["resourceType"] for r in resources(b)}
    shared = set(ids_a) & set(ids_b)
    assert sorted(ids_a[i] for i in shared) == ["Patient", "Practitioner", "PractitionerRole"]
    assert a["id"] != b["id"]


def test_patient_id_is_keyed_by_nhs_number() -> None:
    """The Patient id is uuid5 of the NHS number key: another patient, another id."""
    a = resources(build_referral_bundle(sample_record(nhs_number="9000000009")))[0]
    b = resources(build_referral_bundle(sample_record(nhs_number="9912003888")))[0]
    assert a["id"] == shared_id("Patient", NHS, "9000000009")
    assert b["id"] == shared_id("Patient", NHS, "9912003888")


def test_fast_uuid5_equals_standard_library() -> None:
    """deterministic_id computes exactly uuid.uuid5 over the NUL-joined parts."""
    for parts in [("a",), ("record", SOURCE, "V-1", "Condition/0"), ("é", "", "x\x00")]:
        assert deterministic_id(NS, *parts) == str(uuid.uuid5(NS, "\x00".join(parts)))


def test_conditional_create_keys_match_business_identifiers() -> None:
    """Each entry POSTs with ifNoneExist on the resource's own business identifier."""
    bundle = build_referral_bundle(sample_record())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        identifier = resource["identifier"]
        first = identifier if isinstance(identifier, dict) else identifier[0]
        request = entry["request"]
        assert request["method"] == "POST"
        assert request["url"] == resource["resourceType"]
        assert request["ifNoneExist"] == f"identifier={first['system']}|{first['value']}"
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"


def test_every_reference_resolves_inside_the_bundle() -> None:
    """Every urn:uuid reference names an entry's fullUrl; fullUrls are unique."""
    bundle = build_referral_bundle(sample_record())
    full_urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(full_urls) == len(set(full_urls))
    refs = list(references(bundle))
    assert refs
    assert all(r in full_urls for r in refs)


def test_put_strategy() -> None:
    """request_method='put' gives PUT <Type>/<id> and no ifNoneExist; ids do not change."""
    bundle = build_referral_bundle(sample_record(), BuildOptions(request_method="put"))
    default = build_referral_bundle(sample_record())
    for entry, other in zip(bundle["entry"], default["entry"], strict=True):
        resource = entry["resource"]
        assert entry["request"] == {
            "method": "PUT",
            "url": f"{resource['resourceType']}/{resource['id']}",
        }
        assert resource == other["resource"]


def test_identifier_search_values_are_escaped() -> None:
    """A record id with | , $ \\ or spaces is search-escaped then percent-encoded."""
    assert escape_search_value("a|b,c$d\\e") == "a\\|b\\,c\\$d\\\\e"
    key = if_none_exist({"system": "urn:oid:1.2.3", "value": "V 1|2"})
    assert key == "identifier=urn:oid:1.2.3|V%201%5C|2"
    bundle = build_referral_bundle(sample_record(record="A,1"))
    service_request = bundle["entry"][-1]
    assert service_request["resource"]["identifier"] == [{"system": SOURCE, "value": "A,1"}]
    assert service_request["request"]["ifNoneExist"] == f"identifier={SOURCE}|A%5C%2C1"


def test_no_referrer_makes_the_clinic_the_requester() -> None:
    """Without a clinician the clinic's ODS code requests, authors and performs; no recorder."""
    record = sample_record(
        referral=ReferralData(decision=True, consent_to_refer=True, performer_ods="RXT01")
    )
    bundle = build_referral_bundle(record)
    types = [r["resourceType"] for r in resources(bundle)]
    assert "Practitioner" not in types
    assert "PractitionerRole" not in types
    clinic = {
        "type": "Organization",
        "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RX1AB"},
    }
    by_type = {r["resourceType"]: r for r in resources(bundle)}
    assert by_type["ServiceRequest"]["requester"] == clinic
    assert by_type["QuestionnaireResponse"]["author"] == clinic
    assert "recorder" not in by_type["Condition"]
    assert "extension" not in by_type["ServiceRequest"]
    assert "note" not in by_type["ServiceRequest"]


def test_referrer_without_identifier_is_keyed_by_the_record() -> None:
    """A clinician known only by name gets a per-record Practitioner identifier."""
    record = sample_record(
        referral=ReferralData(decision=True, consent_to_refer=True, referrer_name="Dr Who")
    )
    practitioner = resources(build_referral_bundle(record))[1]
    assert practitioner["resourceType"] == "Practitioner"
    assert practitioner["identifier"] == [{"system": SOURCE, "value": "V-1001/Practitioner"}]
    assert practitioner["id"] == record_id("Practitioner")
    assert practitioner["name"] == [{"text": "Dr Who"}]


def test_referrer_id_without_system_is_a_record_error() -> None:
    """A clinician id with no identifier system is rejected, naming the field, not the value."""
    record = sample_record(
        referral=ReferralData(decision=True, consent_to_refer=True, referrer_id="G999")
    )
    with pytest.raises(RecordError) as info:
        build_referral_bundle(record)
    assert info.value.error_code == "FI392"
    assert info.value.issues[0].location is not None
    assert info.value.issues[0].location.field == "referrer_id_system"
    assert "G999" not in str(info.value.to_operation_outcome())


def test_service_code_and_category_are_options() -> None:
    """BuildOptions replaces ServiceRequest.code and drops the category when empty."""
    code = Coding("http://snomed.info/sct", "123456", "Site referral code")
    options = BuildOptions(service_code=code, service_category=(), priority="urgent")
    service_request = resources(build_referral_bundle(sample_record(), options))[-1]
    assert service_request["code"]["coding"] == [
        {"system": "http://snomed.info/sct", "code": "123456", "display": "Site referral code"}
    ]
    assert "category" not in service_request
    assert service_request["priority"] == "urgent"


def test_id_namespace_option_changes_every_id() -> None:
    """A deployment's own namespace gives different ids for the same record."""
    other = BuildOptions(id_namespace=uuid.UUID(int=1))
    a = {r["id"] for r in resources(build_referral_bundle(sample_record()))}
    b = {r["id"] for r in resources(build_referral_bundle(sample_record(), other))}
    assert not a & b


def test_record_with_nothing_optional() -> None:
    """A record with no conditions, context or screenings still gives Patient + ServiceRequest."""
    record = sample_record(conditions=(), context=(), screenings=())
    record = replace(
        record,
        patient=replace(
            record.patient, family=None, given=(), sex=None, birth_date=None, gp_practice_ods=None
        ),
    )
    bundle = build_referral_bundle(record)
    types = [r["resourceType"] for r in resources(bundle)]
    assert types == ["Patient", "Practitioner", "PractitionerRole", "ServiceRequest"]
    patient, *_, service_request = resources(bundle)
    assert set(patient) == {"resourceType", "id", "meta", "identifier"}
    assert "reasonReference" not in service_request
    assert "supportingInfo" not in service_request


def test_practitioner_identifier_from_referral_data() -> None:
    """The Practitioner carries the referrer's identifier system and value."""
    practitioner = resources(build_referral_bundle(sample_record()))[1]
    assert practitioner["identifier"] == [{"system": SDS, "value": "G1234567"}]
