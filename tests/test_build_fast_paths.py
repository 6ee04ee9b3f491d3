"""Property tests: every fast path of the build stage equals the plain computation it replaces.

One rule, one place: the record-id minter (one SHA-1 prefix per record), the remembered shared
ids, the precomputed conditional-create keys and the one-pass answer items + total are each
checked against the plain function (``uuid.uuid5``, :func:`record_identifier` +
:func:`if_none_exist`, :func:`score_instrument`) over generated inputs, and every pre-serialised
part of a bundle (``fragments=True``, the remembered referrer entries) dumps to the bytes of the
plain dicts it stands for.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_iapt.errors import Location, ScoringError
from fhir_iapt.fhir.common import (
    answered_items,
    entry,
    keyed_entry,
    questionnaire_response,
    score_observation,
)
from fhir_iapt.fhir.ids import (
    RecordIds,
    cached_shared_resource_id,
    deterministic_id,
    if_none_exist,
    record_identifier,
    record_resource_id,
    shared_resource_id,
)
from fhir_iapt.fhir.referral import _referrer_entries, _shared_referrer
from fhir_iapt.scoring.instruments import instrument_spec, instrument_specs, score_instrument
from fhir_iapt.systems import LOINC

# Text as identifiers come: plain tokens, URLs, and anything else (search-escaped characters,
# spaces, non-ASCII). NUL is the part separator and never part of a value.
_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
_PLAIN = st.from_regex(r"[A-Za-z0-9._~:/-]{0,20}", fullmatch=True)
_VALUES = _PLAIN | _TEXT | st.sampled_from(["|", ",", "$", "\\", "a b", "é", "x/y|z"])
_ROLES = (
    st.none()
    | _VALUES
    | st.sampled_from(
        [
            "Condition/0",
            "Observation/hba1c/0",
            "QuestionnaireResponse/PHQ-9",
            "Consent/share-outcomes",
        ]
    )
)
_NAMESPACES = st.uuids() | st.just(uuid.UUID("6f0b6a8e-3c52-5b55-9d4c-0e5e0f1d2a33"))


def _uuid5(namespace: uuid.UUID, *parts: str) -> str:
    return str(uuid.uuid5(namespace, "\x00".join(parts)))


@settings(max_examples=300, deadline=None)
@given(namespace=_NAMESPACES, system=_VALUES, record_id=_VALUES, role=_VALUES)
def test_record_ids_equal_uuid5_of_the_parts(
    namespace: uuid.UUID, system: str, record_id: str, role: str
) -> None:
    """RecordIds (one hashed prefix per record) gives uuid5 over record|system|id|role."""
    ids = RecordIds(namespace, system, record_id)
    expected = _uuid5(namespace, "record", system, record_id, role)
    assert ids.resource_id(role) == expected
    assert record_resource_id(namespace, system, record_id, role) == expected


@settings(max_examples=300, deadline=None)
@given(system=_VALUES, record_id=_VALUES, role=_ROLES)
def test_record_ids_keys_equal_if_none_exist_of_the_identifier(
    system: str, record_id: str, role: str | None
) -> None:
    """RecordIds' identifier and ifNoneExist key equal record_identifier + if_none_exist."""
    ids = RecordIds(uuid.uuid4(), system, record_id)
    identifier = record_identifier(system, record_id, role)
    assert ids.identifier(role) == identifier
    assert ids.if_none_exist(role) == if_none_exist(identifier)


@settings(max_examples=200, deadline=None)
@given(namespace=_NAMESPACES, kind=_VALUES, system=_VALUES, value=_VALUES)
def test_shared_ids_cached_or_not_equal_uuid5(
    namespace: uuid.UUID, kind: str, system: str, value: str
) -> None:
    """A remembered shared id (first and repeated call) is the uuid5 computed plainly."""
    expected = _uuid5(namespace, "shared", kind, system, value)
    assert shared_resource_id(namespace, kind, system, value) == expected
    assert cached_shared_resource_id(namespace, kind, system, value) == expected
    assert cached_shared_resource_id(namespace, kind, system, value) == expected


@settings(deadline=None)
@given(namespace=_NAMESPACES, parts=st.lists(_TEXT, min_size=1, max_size=5))
def test_deterministic_id_equals_uuid5(namespace: uuid.UUID, parts: list[str]) -> None:
    """deterministic_id formats SHA-1 as uuid5 does (version 5, RFC 4122 variant)."""
    assert deterministic_id(namespace, *parts) == _uuid5(namespace, *parts)


@settings(deadline=None)
@given(method=st.sampled_from(["conditional-create", "put"]), system=_VALUES, value=_VALUES)
def test_keyed_entry_equals_entry(method: Any, system: str, value: str) -> None:
    """An entry made with a precomputed key is the entry made from the identifier."""
    identifier = {"system": system, "value": value}
    resource = {"resourceType": "Observation", "id": "abc"}
    key = None if method == "put" else if_none_exist(identifier)
    assert keyed_entry(resource, key, method) == entry(
        resource, identifier=identifier, method=method
    )


def test_keyed_entry_refuses_a_conditional_create_without_a_key() -> None:
    """A conditional-create entry without its ifNoneExist key is a programming error."""
    with pytest.raises(ValueError, match="ifNoneExist"):
        keyed_entry({"resourceType": "Patient", "id": "x"}, None, "conditional-create")


_INSTRUMENTS = sorted(instrument_specs())
_ANSWER = st.none() | st.integers(-2, 5) | st.booleans() | st.just("1")


@st.composite
def _answers(draw: st.DrawFn) -> tuple[str, tuple[Any, ...]]:
    name = draw(st.sampled_from(_INSTRUMENTS))
    spec = instrument_spec(name)
    sizes = sorted({len(spec.items), len(spec.all_items), len(spec.items) - 1})
    size = draw(st.sampled_from(sizes))
    valid = st.lists(st.integers(0, 3), min_size=size, max_size=size)
    anything = st.lists(_ANSWER, min_size=size, max_size=size)
    return name, tuple(draw(valid | anything))


def _plain_items(name: str, answers: tuple[Any, ...]) -> list[dict[str, Any]]:
    spec = instrument_spec(name)
    items = []
    for item, value in zip(spec.all_items, answers, strict=False):
        if value is None:
            continue
        option = next(a for a in item.answers if a.score == value)
        coding = {"system": LOINC, "code": option.code, "display": option.display}
        items.append({"linkId": item.code, "answer": [{"valueCoding": coding}]})
    return items


@settings(max_examples=400, deadline=None)
@given(_answers())
def test_answered_items_total_equals_score_instrument(case: tuple[str, tuple[Any, ...]]) -> None:
    """One-pass items + total equal score_instrument's total (or raise its very error)."""
    name, answers = case
    spec = instrument_spec(name)
    where = Location(file="x.csv", row=3)
    expected: Any
    try:
        expected = score_instrument(name, answers, location=where)
    except ScoringError as exc:
        expected = exc
    if isinstance(expected, ScoringError):
        with pytest.raises(ScoringError) as caught:
            answered_items(spec, answers, location=where)
        assert caught.value.error_code == expected.error_code
        assert caught.value.issues == expected.issues
        assert str(caught.value) == str(expected)
        return
    items, total = answered_items(spec, answers, location=where)
    assert total == expected.total
    assert items == _plain_items(name, answers)


def test_answered_items_never_share_codings_between_bundles() -> None:
    """Each call gives fresh item dicts: changing one bundle never changes another."""
    spec = instrument_spec("PHQ-9")
    first, _ = answered_items(spec, (1,) * 9)
    second, _ = answered_items(spec, (1,) * 9)
    first[0]["answer"][0]["valueCoding"]["code"] = "changed"
    assert second[0]["answer"][0]["valueCoding"]["code"] != "changed"


@settings(max_examples=300, deadline=None)
@given(_answers())
def test_answered_item_fragments_serialise_as_the_plain_items(
    case: tuple[str, tuple[Any, ...]],
) -> None:
    """Pre-serialised items (fragments=True) dump to the bytes of the plain item dicts."""
    name, answers = case
    spec = instrument_spec(name)
    try:
        plain, total = answered_items(spec, answers)
    except ScoringError:
        with pytest.raises(ScoringError):
            answered_items(spec, answers, fragments=True)
        return
    made, made_total = answered_items(spec, answers, fragments=True)
    assert made_total == total
    assert orjson.dumps(made) == orjson.dumps(plain)


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(_INSTRUMENTS),
    total=st.integers(0, 80),
    day=st.dates(),
    performer=st.none() | st.just({"reference": "urn:uuid:p"}),
)
def test_score_observation_and_response_fragments_equal_plain(
    name: str, total: int, day: Any, performer: Any
) -> None:
    """score_observation / questionnaire_response with fragments dump as the plain dicts."""
    spec = instrument_spec(name)
    subject = {"reference": "urn:uuid:s"}
    identifier = {"system": "https://example.org/id", "value": "r/1"}
    for fragments in (False, True):
        obs = score_observation(
            "o1",
            identifier=identifier,
            spec=spec,
            total=total,
            subject=subject,
            effective=day,
            performer=performer,
            derived_from={"reference": "urn:uuid:q"},
            fragments=fragments,
        )
        qr = questionnaire_response(
            "q1",
            identifier=identifier,
            spec=spec,
            answers=(1,) * len(spec.items),
            subject=subject,
            authored=day,
            author=performer,
            fragments=fragments,
        )
        dumped = orjson.dumps([obs, qr])
        if not fragments:
            plain = dumped
    assert dumped == plain


@settings(max_examples=100, deadline=None)
@given(
    namespace=_NAMESPACES,
    method=st.sampled_from(["conditional-create", "put"]),
    system=_VALUES,
    value=_VALUES,
    name=st.none() | _TEXT,
    ods=_PLAIN,
)
def test_remembered_referrer_entries_equal_freshly_built(
    namespace: uuid.UUID, method: Any, system: str, value: str, name: str | None, ods: str
) -> None:
    """The remembered, pre-serialised referrer entries are the entries built afresh."""
    practitioner_id = shared_resource_id(namespace, "Practitioner", system, value)
    fresh, actor = _referrer_entries(
        namespace, method, practitioner_id, {"system": system, "value": value}, name, ods
    )
    for _ in range(2):  # first call builds, second is remembered
        made, made_actor = _shared_referrer(namespace, method, system, value, name, ods)
        assert orjson.dumps(list(made)) == orjson.dumps(fresh)
        assert made_actor == actor
