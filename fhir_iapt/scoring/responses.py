"""Read and score a FHIR QuestionnaireResponse answering a PHQ-9, GAD-7, PHQ-2 or GAD-2.

Accepted shapes (all R4 JSON, as plain dicts):

- responses to the project's own Questionnaires (``{CANONICAL_BASE}/Questionnaire/phq-9``…),
  whose item linkIds are the LOINC item codes;
- responses to LOINC-coded Questionnaires from other tools: ``questionnaire`` is the LOINC
  panel (``http://loinc.org/q/44249-1``, or any canonical ending in the panel code), or nothing
  useful, in which case the instrument is found from the item linkIds (``/44250-9`` in the
  LHC-Forms PHQ-9 shape: the last path segment is the LOINC item code).

Each answer's score is, in order: the LOINC answer code (``LA6568-5``…, with or without
``system``; ``LA18938-3`` reads as 2) looked up in ``instruments.yaml``; an ``ordinalValue`` /
``itemWeight`` extension on the answer or its coding; a ``valueInteger``. Items the instrument
does not have (e.g. a calculated total) are ignored. Anything malformed raises a RecordError or
ScoringError whose location element is a FHIRPath such as
``QuestionnaireResponse.item[3].answer[0]``. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_iapt.errors import Issue, Location, RecordError, ScoringError
from fhir_iapt.scoring.instruments import (
    InstrumentScore,
    InstrumentSpec,
    instrument_specs,
    score_instrument,
)
from fhir_iapt.systems import LOINC, project_url

ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
_SCORE_EXTENSIONS = (ORDINAL_VALUE, ITEM_WEIGHT)
_ACCEPTED_STATUS = ("completed", "amended")

MALFORMED = "FI361"
UNKNOWN_QUESTIONNAIRE = "FI362"
UNSCORABLE_ANSWER = "FI363"
NOT_COMPLETED = "FI364"


@dataclass(frozen=True, slots=True)
class ScoredResponse:
    """What a QuestionnaireResponse said: the instrument, its score, and who/when."""

    spec: InstrumentSpec
    score: InstrumentScore
    authored: str | None  # the QR's ``authored`` dateTime, as sent
    subject: dict[str, Any]
    author: dict[str, Any] | None
    based_on: tuple[dict[str, Any], ...]
    identifier: dict[str, str] | None  # the QR's business identifier (system + value) if any


def _fail(message: str, element: str, location: Location, code: str = MALFORMED) -> RecordError:
    where = Location(file=location.file, row=location.row, line=location.line, element=element)
    return RecordError(message, location=where, error_code=code)


def _canonical(url: str) -> str:
    return url.split("|", 1)[0].rstrip("/")


def _by_questionnaire(url: str) -> InstrumentSpec | None:
    url = _canonical(url)
    for spec in instrument_specs().values():
        if url == project_url("Questionnaire", spec.slug):
            return spec
        if url.startswith(LOINC) or "/Questionnaire/" in url:
            tail = url.rsplit("/", 1)[-1]
            if tail == spec.panel.code and spec.panel.system == LOINC:
                return spec
    return None


def _link_code(link_id: str) -> str:
    """``/44250-9`` or ``phq9/44250-9`` -> ``44250-9``; ``44250-9`` stays."""
    return link_id.rstrip("/").rsplit("/", 1)[-1]


def _walk(items: Any, path: str, location: Location) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every item (depth first, nested groups and answer items included) with its FHIRPath."""
    if items is None:
        return
    if not isinstance(items, list):
        raise _fail("item must be an array", path, location)
    for index, item in enumerate(items):
        here = f"{path}[{index}]"
        if not isinstance(item, dict):
            raise _fail("item must be an object", here, location)
        link_id = item.get("linkId")
        if not isinstance(link_id, str) or not link_id:
            raise _fail("item.linkId is required", f"{here}.linkId", location)
        yield here, item
        yield from _walk(item.get("item"), f"{here}.item", location)
        answers = item.get("answer")
        if isinstance(answers, list):
            for a_index, answer in enumerate(answers):
                if isinstance(answer, dict):
                    yield from _walk(answer.get("item"), f"{here}.answer[{a_index}].item", location)


def _by_items(codes: set[str]) -> InstrumentSpec | None:
    """The smallest instrument whose items cover every known item code present."""
    best: InstrumentSpec | None = None
    for spec in instrument_specs().values():
        item_codes = {i.code for i in spec.all_items}
        scored = {i.code for i in spec.items}
        if not codes & scored or not codes <= item_codes | _other_codes(spec):
            continue
        if best is None or len(spec.items) < len(best.items):
            best = spec
    return best


def _other_codes(spec: InstrumentSpec) -> set[str]:
    return {t.code for t in spec.totals} | {spec.panel.code}


def _extension_score(holder: Mapping[str, Any]) -> Decimal | None:
    for ext in holder.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") in _SCORE_EXTENSIONS:
            for key in ("valueDecimal", "valueInteger"):
                if key in ext:
                    try:
                        return Decimal(str(ext[key]))
                    except InvalidOperation:
                        return None
    return None


def _answer_score(
    spec: InstrumentSpec, index: int, answer: Any, element: str, location: Location
) -> int:
    if not isinstance(answer, dict):
        raise _fail("answer must be an object", element, location)
    coding = answer.get("valueCoding")
    found: Decimal | None = None
    if isinstance(coding, dict):
        system = coding.get("system")
        code = coding.get("code")
        if system in (None, LOINC) and isinstance(code, str):
            known = spec.answer_score(index, code)
            if known is not None:
                return known
        found = _extension_score(coding)
    elif coding is not None:
        raise _fail("answer.valueCoding must be an object", f"{element}.valueCoding", location)
    if found is None:
        found = _extension_score(answer)
    if found is None and "valueInteger" in answer:
        raw = answer["valueInteger"]
        if isinstance(raw, int) and not isinstance(raw, bool):
            found = Decimal(raw)
    if found is None or found != found.to_integral_value():
        raise ScoringError(
            f"{spec.name} item {index + 1}: answer has no score (not a known LOINC answer code, "
            "no ordinalValue, no valueInteger)",
            location=Location(
                file=location.file, row=location.row, line=location.line, element=element
            ),
            error_code=UNSCORABLE_ANSWER,
        )
    return int(found)


def read_questionnaire_response(qr: Any, *, location: Location | None = None) -> ScoredResponse:
    """Identify the instrument a QuestionnaireResponse answers and score it.

    Raises RecordError (malformed, unknown questionnaire, not completed) or ScoringError (an
    answer with no score, an item missing or out of range), located by FHIRPath.
    """
    location = location or Location()
    root = "QuestionnaireResponse"
    if not isinstance(qr, dict) or qr.get("resourceType") != root:
        raise _fail("not a QuestionnaireResponse (resourceType)", root, location)
    status = qr.get("status")
    if status not in _ACCEPTED_STATUS:
        raise _fail(
            "status must be completed or amended to be scored",
            f"{root}.status",
            location,
            NOT_COMPLETED,
        )
    subject = qr.get("subject")
    if not isinstance(subject, dict) or not subject:
        raise _fail(
            "subject is required to say whose scores these are", f"{root}.subject", location
        )
    authored = qr.get("authored")
    if authored is not None and not isinstance(authored, str):
        raise _fail("authored must be a dateTime string", f"{root}.authored", location)
    if isinstance(authored, str):
        try:
            date.fromisoformat(authored[:10])
        except ValueError:
            raise _fail("authored is not a valid dateTime", f"{root}.authored", location) from None

    items = list(_walk(qr.get("item"), f"{root}.item", location))
    spec: InstrumentSpec | None = None
    questionnaire = qr.get("questionnaire")
    if questionnaire is not None and not isinstance(questionnaire, str):
        raise _fail("questionnaire must be a canonical URL", f"{root}.questionnaire", location)
    if questionnaire:
        spec = _by_questionnaire(questionnaire)
    if spec is None:
        known = {c.code for s in instrument_specs().values() for c in s.all_items}
        spec = _by_items({_link_code(i["linkId"]) for _, i in items} & known)
    if spec is None:
        raise _fail(
            "questionnaire is not a PHQ-9, GAD-7, PHQ-2 or GAD-2 this adapter knows (neither "
            "its canonical nor its item linkIds match)",
            f"{root}.questionnaire",
            location,
            UNKNOWN_QUESTIONNAIRE,
        )

    positions = {item.code: n for n, item in enumerate(spec.all_items)}
    answers: list[int | None] = [None] * len(spec.all_items)
    where: list[Location] = [
        Location(
            file=location.file,
            row=location.row,
            line=location.line,
            element=f"{root}.item.where(linkId ends with '{item.code}')",
        )
        for item in spec.all_items
    ]
    issues: list[Issue] = []
    for path, item in items:
        index = positions.get(_link_code(item["linkId"]))
        if index is None:
            continue
        where[index] = Location(
            file=location.file, row=location.row, line=location.line, element=path
        )
        if answers[index] is not None:
            raise _fail("the same question is answered twice", f"{path}.linkId", location)
        raw = item.get("answer")
        if raw is None or raw == []:
            continue
        if not isinstance(raw, list) or len(raw) != 1:
            raise _fail("a question takes exactly one answer", f"{path}.answer", location)
        try:
            answers[index] = _answer_score(spec, index, raw[0], f"{path}.answer[0]", location)
        except ScoringError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ScoringError(
            f"{spec.name} answers cannot be scored", issues=issues, location=location
        )
    score = score_instrument(spec.name, answers, item_locations=where)

    identifier = qr.get("identifier")
    ident: dict[str, str] | None = None
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        system = identifier.get("system")
        if isinstance(system, str) and system:
            ident = {"system": system, "value": identifier["value"]}
    author = qr.get("author")
    based_on = qr.get("basedOn") or []
    if not isinstance(based_on, list) or not all(isinstance(b, dict) for b in based_on):
        raise _fail("basedOn must be an array of references", f"{root}.basedOn", location)
    return ScoredResponse(
        spec=spec,
        score=score,
        authored=authored,
        subject=dict(subject),
        author=dict(author) if isinstance(author, dict) else None,
        based_on=tuple(dict(b) for b in based_on),
        identifier=ident,
    )


__all__ = ["ScoredResponse", "read_questionnaire_response"]
