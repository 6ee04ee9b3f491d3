"""Outcome bundles: golden files, consent gate, links, ids, and bad input as OperationOutcomes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_iapt.consent import ConsentRegister, load_consent_register
from fhir_iapt.fhir.episode import IAPT_OUTCOME_SYSTEM
from fhir_iapt.fhir.responses import score_questionnaire_response
from fhir_iapt.fhir.validate import default_validator, has_errors
from fhir_iapt.pipeline import convert_bytes, convert_stream
from fhir_iapt.results import Converted, Rejected, Result, Skipped
from fhir_iapt.scoring.recovery import FLAG_NAMES

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "outcomes"
EXAMPLE_CSV = ROOT / "examples" / "iapt-outcomes.csv"
EXAMPLE_QR = ROOT / "examples" / "phq9-lhcforms-response.json"
KEY = "https://fhir-iapt.github.io/fhir/Id/iapt-care-pathway|"
#: The example's header without its optional last column (the rows below do not have it).
HEADER = EXAMPLE_CSV.read_text().splitlines()[0].removesuffix(",first_treatment_date")


def run_csv(text: str, name: str = "episodes.csv") -> list[Result]:
    """Every row of an episode CSV through the pipeline (validator left to its own tests)."""
    return convert_bytes(text.encode(), name=name, mapping="iapt-outcomes", validation="none")


def convert_questionnaire_responses(
    stream: io.BufferedIOBase | io.BytesIO, *, name: str, consent: ConsentRegister | None = None
) -> list[Result]:
    """QuestionnaireResponses through the one pipeline, with their mapping."""
    return list(
        convert_stream(
            stream,
            name=name,
            mapping="questionnaire-response",  # type: ignore[arg-type]
            consent=consent,
            validation="none",
        )
    )


def _flags(bundle: dict[str, Any]) -> tuple[bool | str | None, ...]:
    outcome = bundle["entry"][-1]["resource"]
    got: list[bool | str | None] = []
    for component in outcome["component"]:
        if "valueBoolean" in component:
            got.append(component["valueBoolean"])
        else:
            got.append(component["dataAbsentReason"]["coding"][0]["code"])
    return tuple(got)


def test_example_export_matches_golden() -> None:
    """The bundled example export gives exactly the reviewed golden bundles."""
    results = run_csv(EXAMPLE_CSV.read_text(), name="iapt-outcomes.csv")
    converted = {r.key: r.bundle for r in results if isinstance(r, Converted)}
    expected = json.loads((DATA / "iapt-outcomes.expected.json").read_text())
    assert converted == expected


# Hand-worked from the example rows (DOMAIN.md definitions), in FLAG_NAMES order.
EXAMPLE_FLAGS = {
    "TT-0001": (True, True, True, True, False, True),  # GAD: PHQ 16->7, GAD 14->5
    "TT-0002": (True, True, True, True, False, True),  # SPIN 34->17 decides (GAD 10->9 would not)
    "TT-0003": (
        True,
        False,
        "not-applicable",
        "not-applicable",
        "not-applicable",
        "not-applicable",
    ),  # one contact
    # open pathway (no discharge date): not finished however many contacts (5)
    "TT-0004": (
        True,
        False,
        "not-applicable",
        "not-applicable",
        "not-applicable",
        "not-applicable",
    ),
    # PHQ 6 -> 13, GAD 5 -> 10: not a case at the start, so recovery and reliable recovery are
    # not applicable (outside the recovery denominator); PHQ +7 / GAD +5 is reliable deterioration
    "TT-0005": (False, True, "not-applicable", False, True, "not-applicable"),
}


def test_example_flags_are_the_hand_worked_ones() -> None:
    """Each consented example episode carries the flags worked out by hand."""
    results = {r.key: r for r in run_csv(EXAMPLE_CSV.read_text())}
    for pathway, flags in EXAMPLE_FLAGS.items():
        result = results[KEY + pathway]
        assert isinstance(result, Converted)
        assert result.kind == "outcome"
        assert _flags(result.bundle) == flags, pathway


@pytest.mark.parametrize(
    ("consent", "reason"),
    [
        ("N", "outcomes-consent-withheld"),
        ("W", "outcomes-consent-withdrawn"),
        ("", "outcomes-consent-not-recorded"),
        ("n", "outcomes-consent-withheld"),
    ],
)
def test_no_consent_produces_no_resource(consent: str, reason: str) -> None:
    """An episode without consent Y yields a Skipped with the reason and no resource at all."""
    row = (
        "TT-9,urn:ref,R-9,9000000009,RXT01,2024-01-01,2024-03-01,F41.1,,6,46,16,4,14,3,,,,"
        f"20,5,2024-01-10,2024-02-28,{consent}"
    )
    [result] = run_csv(f"{HEADER}\n{row}\n")
    assert isinstance(result, Skipped)
    assert result.reason == reason
    assert not hasattr(result, "bundle")
    assert "9000000009" not in repr(result)


def test_example_skips_are_counted_with_reasons() -> None:
    """The example's N, W and blank rows are the only ones skipped, each with its reason."""
    skipped = [r for r in run_csv(EXAMPLE_CSV.read_text()) if isinstance(r, Skipped)]
    assert [(r.key, r.reason) for r in skipped] == [
        (KEY + "TT-0006", "outcomes-consent-withheld"),
        (KEY + "TT-0007", "outcomes-consent-withdrawn"),
        (KEY + "TT-0008", "outcomes-consent-not-recorded"),
    ]


def test_links_and_codes() -> None:
    """Every Observation is basedOn the referral by identifier, subject by NHS number, performer
    by ODS; the outcome is derivedFrom the score Observations of the measures compared."""
    results = {r.key: r for r in run_csv(EXAMPLE_CSV.read_text())}
    result = results[KEY + "TT-0002"]
    assert isinstance(result, Converted)
    resources = [e["resource"] for e in result.bundle["entry"]]
    for resource in resources:
        assert resource["basedOn"] == [
            {
                "type": "ServiceRequest",
                "identifier": {
                    "system": "https://example-trust.nhs.uk/Id/respiratory-visit",
                    "value": "RV-2002",
                },
            }
        ]
        assert resource["subject"]["identifier"] == {
            "system": "https://fhir.nhs.uk/Id/nhs-number",
            "value": "9912003888",
        }
        assert resource["performer"][0]["identifier"]["value"] == "RXT01"
        assert resource["category"][0]["coding"][0]["code"] == "survey"
    outcome = resources[-1]
    assert outcome["code"]["coding"][0] == {
        "system": IAPT_OUTCOME_SYSTEM,
        "code": "episode-outcome",
        "display": "IAPT episode outcome",
    }
    assert [c["code"]["coding"][0]["code"] for c in outcome["component"]] == list(FLAG_NAMES)
    by_url = {e["fullUrl"]: e["resource"] for e in result.bundle["entry"]}
    derived = [by_url[d["reference"]]["identifier"][0]["value"] for d in outcome["derivedFrom"]]
    assert derived == [
        f"TT-0002/Observation/score/{m}/{w}" for m in ("PHQ-9", "SPIN") for w in ("first", "last")
    ]
    codes = {r["identifier"][0]["value"]: r["code"]["coding"][0]["code"] for r in resources[:-1]}
    assert codes["TT-0002/Observation/score/PHQ-9/first"] == "44261-6"
    assert codes["TT-0002/Observation/score/GAD-7/last"] == "70274-6"
    assert codes["TT-0002/Observation/score/WSAS/first"] == "wsas-total"


def test_rerun_is_byte_identical_and_keys_are_conditional() -> None:
    """Converting the export twice gives identical bundles; every entry is a conditional create
    on its business identifier, so re-sending creates no duplicates."""
    first = [r for r in run_csv(EXAMPLE_CSV.read_text()) if isinstance(r, Converted)]
    again = [r for r in run_csv(EXAMPLE_CSV.read_text()) if isinstance(r, Converted)]
    assert [json.dumps(r.bundle) for r in first] == [json.dumps(r.bundle) for r in again]
    ids = [e["resource"]["id"] for r in first for e in r.bundle["entry"]]
    assert len(ids) == len(set(ids))
    for r in first:
        for e in r.bundle["entry"]:
            ident = e["resource"]["identifier"][0]
            assert e["request"] == {
                "method": "POST",
                "url": "Observation",
                "ifNoneExist": f"identifier={ident['system']}|{ident['value']}",
            }


def test_lhcforms_response_matches_golden() -> None:
    """With the example export as consent register (its DC-1001 pathway says Y), the
    LHC-Forms-shaped PHQ-9 response scores to the reviewed golden bundle (total 12)."""
    register = load_consent_register([EXAMPLE_CSV])
    with EXAMPLE_QR.open("rb") as fh:
        [result] = convert_questionnaire_responses(fh, name=EXAMPLE_QR.name, consent=register)
    assert isinstance(result, Converted)
    bundle = result.bundle
    assert bundle == json.loads((DATA / "phq9-lhcforms-response.expected.json").read_text())
    assert bundle == score_questionnaire_response(json.loads(EXAMPLE_QR.read_text()))
    observation = bundle["entry"][1]["resource"]
    assert observation["valueQuantity"]["value"] == 12  # 2+3+1+2+0+1+2+1+0 by hand
    assert observation["derivedFrom"] == [{"reference": bundle["entry"][0]["fullUrl"]}]


def _qr(**changes: Any) -> dict[str, Any]:
    qr: dict[str, Any] = json.loads(EXAMPLE_QR.read_text())
    qr.update(changes)
    return qr


def _gad7(codes: list[str], **extra: Any) -> dict[str, Any]:
    links = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "https://fhir-iapt.github.io/fhir/Questionnaire/gad-7",
        "subject": {
            "type": "Patient",
            "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9912003888"},
        },
        "authored": "2024-05-01",
        "item": [
            {
                "linkId": link,
                "answer": [{"valueCoding": {"system": "http://loinc.org", "code": code}}],
            }
            for link, code in zip(links[: len(codes)], codes, strict=True)
        ],
        **extra,
    }


def test_own_gad7_with_alias_code_and_stream_shapes() -> None:
    """Our GAD-7 Questionnaire is recognised, LA18938-3 scores 2, and a Bundle, an array and
    NDJSON of responses each give one outcome per response, in order."""
    qr = _gad7(
        ["LA6571-9", "LA18938-3", "LA6569-3", "LA6568-5", "LA6568-5", "LA6568-5", "LA6568-5"]
    )
    bundle = score_questionnaire_response(qr)
    assert bundle["entry"][1]["resource"]["valueQuantity"]["value"] == 6
    assert bundle["entry"][1]["resource"]["code"]["coding"][0]["code"] == "70274-6"
    # The streams carry standard answer codes only: the alias is accepted for scoring, but a
    # response claiming our GAD-7 Questionnaire must use its answerOptions to pass validation.
    qr = _gad7(["LA6571-9", "LA6570-1", "LA6569-3", "LA6568-5", "LA6568-5", "LA6568-5", "LA6568-5"])
    lhc = json.loads(EXAMPLE_QR.read_text())
    shapes = [
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": qr}, {"resource": lhc}],
            }
        ),
        json.dumps([qr, lhc]),
        json.dumps(qr) + "\n\n" + json.dumps(lhc) + "\n",
    ]
    consent = ConsentRegister({"9912003888": "Y", "9000000009": "Y"})
    for text in shapes:
        results = list(
            convert_questionnaire_responses(io.BytesIO(text.encode()), name="in", consent=consent)
        )
        assert [type(r) for r in results] == [Converted, Converted]
        assert [
            r.bundle["entry"][1]["resource"]["valueQuantity"]["value"]
            for r in results
            if isinstance(r, Converted)
        ] == [6, 12]
        assert [r.location.row for r in results] == [1, 2]


def test_items_matched_by_linkid_and_scored_by_ordinal() -> None:
    """With no recognisable questionnaire, PHQ-2 is found from its linkIds; an answer with an
    unknown code is scored from its ordinalValue extension."""
    ordinal = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
    qr = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "item": [
            {
                "linkId": "/44250-9",
                "answer": [
                    {
                        "valueCoding": {
                            "code": "X1",
                            "extension": [{"url": ordinal, "valueDecimal": 3}],
                        }
                    }
                ],
            },
            {"linkId": "/44255-8", "answer": [{"valueInteger": 1}]},
        ],
    }
    observation = score_questionnaire_response(qr)["entry"][1]["resource"]
    assert observation["code"]["coding"][0]["code"] == "55758-7"
    assert observation["valueQuantity"]["value"] == 4


BAD_INPUTS: list[tuple[str, str, str, str | None]] = [
    # (label, CSV row after the pathway/referral/patient columns, error field, error code)
    ("non-numeric score", "16,x,14,5,,,,22,10", "phq9_last", "FI354"),
    ("score out of range", "28,7,14,5,,,,22,10", "phq9_first", "FI355"),
    ("GAD-7 out of range", "16,7,22,5,,,,22,10", "gad7_first", "FI355"),
    ("WSAS out of range", "16,7,14,5,,,,41,10", "wsas_first", "FI355"),
    ("unknown ADSM", "16,7,14,5,BDI,30,10,22,10", "adsm", "FI357"),
    ("ADSM score with no ADSM named", "16,7,14,5,,30,10,22,10", "adsm", "FI358"),
    ("ADSM out of its own range", "16,7,14,5,PDSS,29,10,22,10", "adsm_first", "FI355"),
    ("fractional PHQ-9", "16.5,7,14,5,,,,22,10", "phq9_first", "FI354"),
]


@pytest.mark.parametrize(
    ("label", "scores", "field", "code"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_episode_rows_are_located(label: str, scores: str, field: str, code: str) -> None:
    """A bad score or ADSM rejects the row with an OperationOutcome naming file, row and field,
    never the value."""
    row = (
        f"TT-9,urn:ref,R-9,9000000009,RXT01,2024-01-01,2024-03-01,F41.0,,6,46,{scores},"
        "2024-01-10,2024-02-28,Y"
    )
    [result] = run_csv(f"{HEADER}\n{row}\n", name="bad.csv")
    assert isinstance(result, Rejected), label
    issues = result.outcome["issue"]
    assert any(i["location"] == [f"bad.csv row 1 line 2 field {field}"] for i in issues), issues
    assert any(i["details"]["coding"][0]["code"] == code for i in issues)
    assert "9000000009" not in json.dumps(result.outcome)


def test_bad_consent_value_and_dates() -> None:
    """A consent value other than Y/N/W/blank, or a last score before the first, is rejected."""
    row = (
        "TT-9,urn:ref,R-9,9000000009,RXT01,2024-01-01,2024-03-01,F41.1,,6,46,16,7,14,5,,,,"
        "22,10,2024-02-28,2024-01-10,maybe"
    )
    [result] = run_csv(f"{HEADER}\n{row}\n", name="bad.csv")
    assert isinstance(result, Rejected)
    fields = {i["location"][0].rsplit(" ", 1)[-1] for i in result.outcome["issue"]}
    assert fields == {"consent_share_outcomes", "last_score_date"}


BAD_QRS: list[tuple[str, Any, str]] = [
    ("not a resource", [1, 2], "$[0]"),
    ("wrong resourceType", {"resourceType": "Observation"}, "$[0]"),
    ("in progress", _qr(status="in-progress"), "QuestionnaireResponse.status"),
    ("no subject", _qr(subject=None), "QuestionnaireResponse.subject"),
    ("item not an array", _qr(item={"linkId": "x"}), "QuestionnaireResponse.item"),
    ("item without linkId", _qr(item=[{"text": "x"}]), "QuestionnaireResponse.item[0].linkId"),
    (
        "unknown questionnaire",
        _qr(
            questionnaire="http://example.org/Q/bdi",
            item=[{"linkId": "q1", "answer": [{"valueInteger": 1}]}],
        ),
        "QuestionnaireResponse.questionnaire",
    ),
    (
        "unscorable answer",
        _gad7(["LA6571-9", "LA9999-9", "LA6568-5", "LA6568-5", "LA6568-5", "LA6568-5", "LA6568-5"]),
        "QuestionnaireResponse.item[1].answer[0]",
    ),
    (
        "missing item",
        _gad7(["LA6571-9"] * 6),
        "QuestionnaireResponse.item.where(linkId ends with '69736-7')",
    ),
    (
        "two answers",
        _qr(item=[{"linkId": "/44250-9", "answer": [{"valueInteger": 1}] * 2}]),
        "QuestionnaireResponse.item[0].answer",
    ),
    ("bad authored", _qr(authored="yesterday"), "QuestionnaireResponse.authored"),
]


@pytest.mark.parametrize(("label", "resource", "element"), BAD_QRS, ids=[b[0] for b in BAD_QRS])
def test_malformed_questionnaire_responses(label: str, resource: Any, element: str) -> None:
    """A malformed QuestionnaireResponse becomes a Rejected whose OperationOutcome gives the
    FHIRPath of the problem; nothing raises."""
    payload = resource if label == "not a resource" else [resource]
    results = list(
        convert_questionnaire_responses(io.BytesIO(json.dumps(payload).encode()), name="qr.json")
    )
    assert isinstance(results[0], Rejected), label
    rendered = json.dumps(results[0].outcome)
    assert f"element {element}" in rendered, rendered


def test_unreadable_json_is_a_read_rejection() -> None:
    """Text that is neither JSON nor NDJSON gives one located rejection per bad line."""
    results = list(convert_questionnaire_responses(io.BytesIO(b"{nope\n{also bad\n"), name="x"))
    assert [type(r) for r in results] == [Rejected, Rejected]
    assert [r.location.line for r in results] == [1, 2]


def _component(bundle: dict[str, Any], code: str) -> dict[str, Any]:
    [found] = [
        c
        for c in bundle["entry"][-1]["resource"]["component"]
        if c["code"]["coding"][0]["code"] == code
    ]
    return found


@pytest.mark.parametrize(
    ("label", "discharge", "scores", "absent"),
    [
        # PHQ-9 6 -> 4, GAD-7 5 -> 3: never a case
        ("not a case at the start", "2024-03-01", "6,4,5,3", ("recovery", "reliable-recovery")),
        # open pathway, 6 contacts, a case who improved
        (
            "open pathway",
            "",
            "16,4,14,3",
            ("recovery", "reliable-improvement", "reliable-deterioration", "reliable-recovery"),
        ),
    ],
)
def test_not_applicable_flags_are_data_absent_and_the_bundle_validates(
    label: str, discharge: str, scores: str, absent: tuple[str, ...]
) -> None:
    """A flag that does not apply is a dataAbsentReason not-applicable component (never
    valueBoolean false), and the real validator accepts the bundle."""
    row = (
        f"TT-9,urn:ref,R-9,9000000009,RXT01,2024-01-01,{discharge},F41.1,,6,46,{scores},,,,"
        "20,5,2024-01-10,2024-02-28,Y"
    )
    [result] = run_csv(f"{HEADER}\n{row}\n")
    assert isinstance(result, Converted), label
    for code in absent:
        component = _component(result.bundle, code)
        assert "valueBoolean" not in component, code
        assert component["dataAbsentReason"]["coding"] == [
            {
                "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                "code": "not-applicable",
            }
        ]
    if not discharge:
        assert _component(result.bundle, "finished-treatment")["valueBoolean"] is False
    issues = default_validator().validate(result.bundle)
    assert not has_errors(issues), [i.diagnostics for i in issues]
