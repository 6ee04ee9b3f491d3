"""Score one screening instrument (PHQ-9, GAD-7, PHQ-2, GAD-2) from its item answers.

Everything clinical here comes from ``mappings/tables/instruments.yaml`` (item codes, answer
codes and their scores, total range, PHQ-9 severity bands, the PHQ-2 / GAD-2 positive cut-off):
this module only adds the items up and checks them. PHQ-9's 10th item (difficulty) is checked
but never counted in the total.

Bad answers raise :class:`~fhir_iapt.errors.ScoringError` whose issues name each wrong item and
the rule it broke, never the value given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fhir_iapt._data import load_table
from fhir_iapt.errors import Issue, Location, ScoringError
from fhir_iapt.systems import Coding, project_url

#: Our CodeSystem for totals with no verified LOINC / SNOMED code (``own: true`` in the tables:
#: ``profiles/CodeSystem-iapt-measure.json``), e.g. the GAD-2 total, WSAS and the ADSMs.
IAPT_MEASURE_SYSTEM = project_url("CodeSystem", "iapt-measure")


@dataclass(frozen=True, slots=True)
class AnswerOption:
    """One answer of an answer set: LOINC answer code (``LA…``), display and score."""

    code: str
    display: str
    score: int


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """One item: its LOINC code, its text and the answers it takes."""

    code: str
    text: str
    answers: tuple[AnswerOption, ...]
    scored: bool = True
    #: Score range of the answer set, worked out once (score_instrument is on the hot path).
    min_score: int = field(init=False)
    max_score: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_score", min(a.score for a in self.answers))
        object.__setattr__(self, "max_score", max(a.score for a in self.answers))


@dataclass(frozen=True, slots=True)
class Band:
    """A severity band of totals, inclusive at both ends."""

    min: int
    max: int
    label: str


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """An instrument as ``instruments.yaml`` describes it."""

    name: str  # "PHQ-9"
    slug: str  # "phq-9"
    title: str
    status: str  # V / V2 / U, from the table
    panel: Coding
    totals: tuple[Coding, ...]
    range: tuple[int, int]
    items: tuple[ItemSpec, ...]  # scored items, in order
    unscored_items: tuple[ItemSpec, ...] = ()
    bands: tuple[Band, ...] = ()
    positive_at: int | None = None
    #: answer codes accepted on input only (e.g. LA18938-3 scored as 2), never emitted.
    input_aliases: tuple[AnswerOption, ...] = ()

    @property
    def all_items(self) -> tuple[ItemSpec, ...]:
        return self.items + self.unscored_items

    def answer_score(self, item_index: int, code: str) -> int | None:
        """The score of answer ``code`` to item ``item_index`` (0-based), or None if unknown."""
        item = self.all_items[item_index]
        options = item.answers + (self.input_aliases if item.scored else ())
        for option in options:
            if option.code == code:
                return option.score
        return None


@dataclass(frozen=True, slots=True)
class InstrumentScore:
    """The scored instrument: total of the scored items, and band / positive where defined."""

    instrument: str
    total: int
    answers: tuple[int | None, ...]
    band: str | None = None  # PHQ-9 severity band label
    positive: bool | None = None  # PHQ-2 / GAD-2 screen result; None where not defined


def _answers(table: Mapping[str, Any], name: str) -> tuple[AnswerOption, ...]:
    return tuple(
        AnswerOption(code=str(a["code"]), display=str(a["display"]), score=int(a["score"]))
        for a in table["answer_sets"][name]
    )


def _coding(raw: Mapping[str, Any]) -> Coding:
    """A table coding; ``own: true`` means ours (:data:`IAPT_MEASURE_SYSTEM`), with no system."""
    system = IAPT_MEASURE_SYSTEM if raw.get("own") else str(raw["system"])
    return Coding(system=system, code=str(raw["code"]), display=raw.get("display"))


def _spec(table: Mapping[str, Any], name: str, raw: Mapping[str, Any]) -> InstrumentSpec:
    default_answers = _answers(table, str(raw["answers"]))
    items = tuple(
        ItemSpec(code=str(i["code"]), text=str(i["text"]), answers=default_answers)
        for i in raw["items"]
    )
    unscored = tuple(
        ItemSpec(
            code=str(i["code"]),
            text=str(i["text"]),
            answers=_answers(table, str(i.get("answers", raw["answers"]))),
            scored=False,
        )
        for i in raw.get("unscored_items", ())
    )
    aliases_name = f"{raw['answers']}_input_aliases"
    aliases = _answers(table, aliases_name) if aliases_name in table["answer_sets"] else ()
    low, high = raw["range"]
    return InstrumentSpec(
        name=name,
        slug=str(raw["slug"]),
        title=str(raw["title"]),
        status=str(raw["status"]),
        panel=_coding(raw["panel"]),
        totals=tuple(_coding(t) for t in raw["total"]),
        range=(int(low), int(high)),
        items=items,
        unscored_items=unscored,
        bands=tuple(
            Band(min=int(b["min"]), max=int(b["max"]), label=str(b["label"]))
            for b in raw.get("bands", ())
        ),
        positive_at=int(raw["positive_at"]) if raw.get("positive_at") is not None else None,
        input_aliases=aliases,
    )


@cache
def instrument_specs() -> Mapping[str, InstrumentSpec]:
    """Every instrument in ``instruments.yaml``, by name (``"PHQ-9"``…)."""
    table = load_table("instruments")
    return {str(name): _spec(table, str(name), raw) for name, raw in table["instruments"].items()}


def instrument_spec(instrument: str, *, location: Location | None = None) -> InstrumentSpec:
    """The spec of ``instrument`` (``"PHQ-9"`` or its slug ``"phq-9"``); ScoringError if unknown."""
    specs = instrument_specs()
    if instrument in specs:
        return specs[instrument]
    for spec in specs.values():
        if spec.slug == instrument.lower():
            return spec
    known = ", ".join(sorted(specs))
    raise ScoringError(
        f"unknown instrument (known: {known})",
        location=location,
        error_code="FI351",
    )


def _item_location(
    spec: InstrumentSpec,
    index: int,
    location: Location | None,
    item_locations: Sequence[Location] | None,
) -> Location:
    if item_locations is not None and index < len(item_locations):
        return item_locations[index]
    base = location or Location()
    return base.with_field(f"{spec.name} item {index + 1}")


def score_instrument(
    instrument: str,
    answers: Sequence[int | None],
    *,
    location: Location | None = None,
    item_locations: Sequence[Location] | None = None,
) -> InstrumentScore:
    """Score ``answers`` (item scores in table order) for ``instrument``.

    Every scored item must be an int in its answer set's range; PHQ-9 may carry its unscored
    10th item (None or 0-3), which is checked but not counted. ``item_locations[i]``, when
    given, is where item ``i`` came from (a CSV column, a FHIRPath) for error messages.
    """
    spec = instrument_spec(instrument, location=location)
    issues: list[Issue] = []
    n_scored = len(spec.items)
    if len(answers) not in (n_scored, len(spec.all_items)):
        expected = str(n_scored)
        if spec.unscored_items:
            expected = f"{n_scored} or {len(spec.all_items)}"
        raise ScoringError(
            f"{spec.name} needs {expected} item answers, got {len(answers)}",
            location=location,
            error_code="FI352",
        )
    for index, value in enumerate(answers):
        item = spec.all_items[index]
        if value is None:
            if item.scored:
                issues.append(
                    Issue(
                        diagnostics=f"{spec.name} item {index + 1} is required to score the total",
                        code="required",
                        location=_item_location(spec, index, location, item_locations),
                        error_code="FI353",
                    )
                )
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            issues.append(
                Issue(
                    diagnostics=f"{spec.name} item {index + 1} must be a whole number",
                    code="value",
                    location=_item_location(spec, index, location, item_locations),
                    error_code="FI354",
                )
            )
            continue
        if not item.min_score <= value <= item.max_score:
            issues.append(
                Issue(
                    diagnostics=(
                        f"{spec.name} item {index + 1} must be between "
                        f"{item.min_score} and {item.max_score}"
                    ),
                    code="value",
                    location=_item_location(spec, index, location, item_locations),
                    error_code="FI355",
                )
            )
    if issues:
        raise ScoringError(
            f"{spec.name} cannot be scored ({len(issues)} item problem(s))",
            issues=issues,
            location=location,
        )
    total = sum(v for v in answers[:n_scored] if v is not None)
    return InstrumentScore(
        instrument=spec.name,
        total=total,
        answers=tuple(answers),
        band=band_for(spec, total),
        positive=(total >= spec.positive_at) if spec.positive_at is not None else None,
    )


def band_for(spec: InstrumentSpec, total: int) -> str | None:
    """The band label of ``total`` for instruments with bands (PHQ-9), else None."""
    for band in spec.bands:
        if band.min <= total <= band.max:
            return band.label
    return None


__all__ = [
    "IAPT_MEASURE_SYSTEM",
    "AnswerOption",
    "Band",
    "Coding",
    "InstrumentScore",
    "InstrumentSpec",
    "ItemSpec",
    "band_for",
    "instrument_spec",
    "instrument_specs",
    "score_instrument",
]
