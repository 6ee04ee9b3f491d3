"""FHIR XML <-> JSON: hand-checked XML shapes, round trips, and safe, strict parsing."""

from __future__ import annotations

import copy
import json

import pytest
from lxml import etree
from validate_helpers import PATIENT, fresh, transaction_bundle

from fhir_iapt._data import profiles_dir
from fhir_iapt.errors import EmitError, ReadError
from fhir_iapt.fhir.xml import resource_to_xml, xml_to_resource

NS = {"f": "http://hl7.org/fhir"}


def _tree(resource: dict[str, object]) -> etree._Element:
    return etree.fromstring(resource_to_xml(resource))


def test_patient_xml_follows_r4_rules() -> None:
    """Resource id is an element, Extension.url an attribute, values in value attributes."""
    root = _tree(PATIENT)
    assert root.tag == "{http://hl7.org/fhir}Patient"
    names = [etree.QName(c).localname for c in root]
    assert names == ["id", "meta", "identifier", "name", "gender", "birthDate"]
    assert root.find("f:id", NS).get("value") == PATIENT["id"]
    ext = root.find("f:identifier/f:extension", NS)
    assert ext.get("url").endswith("Extension-UKCore-NHSNumberVerificationStatus")
    identifier_children = [etree.QName(c).localname for c in root.find("f:identifier", NS)]
    assert identifier_children == ["extension", "system", "value"]
    assert root.find("f:birthDate", NS).get("value") == "1970-05-17"


def test_element_order_comes_from_the_definition_not_the_json() -> None:
    """JSON key order does not matter: XML follows the R4 element order."""
    resource = dict(reversed(list(fresh("ServiceRequest").items())))
    names = [etree.QName(c).localname for c in _tree(resource)]
    assert names == [
        "id",
        "meta",
        "identifier",
        "status",
        "intent",
        "category",
        "code",
        "subject",
        "authoredOn",
        "requester",
        "reasonReference",
        "supportingInfo",
        "supportingInfo",
    ]


def test_primitive_extension_and_id_sit_on_the_element() -> None:
    """_birthDate's id and extension become attributes/children of <birthDate>."""
    resource = copy.deepcopy(PATIENT)
    resource["_birthDate"] = {
        "id": "bd",
        "extension": [{"url": "http://example.org/accuracy", "valueCode": "estimated"}],
    }
    node = _tree(resource).find("f:birthDate", NS)
    assert node.get("value") == "1970-05-17"
    assert node.get("id") == "bd"
    assert node.find("f:extension/f:valueCode", NS).get("value") == "estimated"
    assert xml_to_resource(resource_to_xml(resource)) == resource


def test_repeating_primitive_with_partial_extensions_round_trips() -> None:
    """given: ["A", "B"] with _given: [null, {...}] survives a round trip."""
    resource = copy.deepcopy(PATIENT)
    resource["name"][0]["given"] = ["Alex", "Sam"]
    resource["name"][0]["_given"] = [
        None,
        {"extension": [{"url": "http://example.org/x", "valueBoolean": True}]},
    ]
    assert xml_to_resource(resource_to_xml(resource)) == resource


def test_narrative_div_is_embedded_xhtml() -> None:
    """Narrative.div is written as an XHTML element and read back as the same string."""
    resource = copy.deepcopy(PATIENT)
    resource["text"] = {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Alex</p></div>',
    }
    root = _tree(resource)
    div = root.find("f:text/{http://www.w3.org/1999/xhtml}div", NS)
    assert div is not None
    assert xml_to_resource(resource_to_xml(resource)) == resource


@pytest.mark.parametrize("name", ["phq-9", "gad-7", "phq-2", "gad-2"])
def test_questionnaire_round_trips(name: str) -> None:
    """Each shipped Questionnaire: JSON -> XML -> JSON is unchanged (decimals, booleans)."""
    data = json.loads((profiles_dir() / f"Questionnaire-{name}.json").read_text("utf-8"))
    assert xml_to_resource(resource_to_xml(data)) == data


def test_transaction_bundle_round_trips_with_nested_resources() -> None:
    """A Bundle nests each entry's resource inside <resource> and reads back equal."""
    bundle = transaction_bundle()
    root = _tree(bundle)
    nested = root.find("f:entry/f:resource/f:Patient", NS)
    assert nested is not None
    assert xml_to_resource(resource_to_xml(bundle)) == bundle


def test_contained_resource_round_trips() -> None:
    """contained resources nest like Bundle entries."""
    resource = fresh("Condition")
    resource["contained"] = [{"resourceType": "Patient", "id": "p", "active": True}]
    assert xml_to_resource(resource_to_xml(resource)) == resource


def test_unknown_json_element_cannot_be_written() -> None:
    """An element R4 does not define has no XML form: EmitError naming it."""
    resource = fresh("Patient")
    resource["favouriteColour"] = "blue"
    with pytest.raises(EmitError) as info:
        resource_to_xml(resource)
    assert info.value.issues[0].expression == "Patient.favouriteColour"


def test_unknown_xml_element_is_rejected_with_its_line() -> None:
    """Reading an undefined element is a ReadError naming the line."""
    data = (
        b'<Patient xmlns="http://hl7.org/fhir">\n<gender value="female"/>\n'
        b'<shoeSize value="9"/>\n</Patient>'
    )
    with pytest.raises(ReadError) as info:
        xml_to_resource(data, file="p.xml")
    assert info.value.location is not None
    assert info.value.location.line == 3
    assert info.value.location.file == "p.xml"


def test_bad_boolean_is_rejected() -> None:
    """A boolean attribute that is not true/false is a ReadError."""
    with pytest.raises(ReadError):
        xml_to_resource(b'<Patient xmlns="http://hl7.org/fhir"><active value="yes"/></Patient>')


def test_external_entities_are_not_expanded() -> None:
    """An XXE payload is not resolved: the entity never becomes a value."""
    data = (
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Patient xmlns="http://hl7.org/fhir"><gender value="&x;"/></Patient>'
    )
    try:
        resource = xml_to_resource(data)
    except ReadError:
        return
    assert "root" not in json.dumps(resource)


def test_non_fhir_namespace_is_rejected() -> None:
    """A document outside the FHIR namespace is not a FHIR resource."""
    with pytest.raises(ReadError):
        xml_to_resource(b"<Patient><gender value='female'/></Patient>")


def test_malformed_xml_is_a_read_error() -> None:
    """Not well-formed XML is a ReadError, not an lxml exception."""
    with pytest.raises(ReadError):
        xml_to_resource(b"<Patient xmlns='http://hl7.org/fhir'>")
