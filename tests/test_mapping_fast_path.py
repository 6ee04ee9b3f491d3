"""The screening fast path: real data is never dropped, and it decides exactly as the slow path.

``_engine.fast_answers`` scores an instrument's item cells with one dict lookup each and, for
anything it is not sure of, defers to ``_engine.slow_answers`` (the reporting path). The
property tests below call both on the same generated cells and records, valid and invalid, and
require the same answers or the same issues (error code, location, diagnostics).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fhir_iapt.errors import Issue, Location
from fhir_iapt.mapping import _engine, load_mapping, map_values, read_source
from fhir_iapt.mapping._compile import _get_all, instrument_shapes
from fhir_iapt.mapping._model import AnswerPaths, FixedScreening, InstrumentShape, Mapping
from fhir_iapt.mapping._paths import compile_path
from fhir_iapt.mapping._types import Invalid
from fhir_iapt.pipeline import convert_bytes
from fhir_iapt.results import Converted, Rejected
from fhir_iapt.sources import SourceRecord

ROOT = Path(__file__).resolve().parent.parent
PER_ITEM_JSON = ROOT / "tests" / "data" / "mappings" / "per-item-json.yaml"
SHAPES = instrument_shapes()

_VISIT: dict[str, Any] = {
    "visitId": "V-1",
    "visitDate": "2025-04-01",
    "nhsNumber": "9990000018",
    "refer": True,
    "consent": True,
    "share": True,
}


def _visit(scores: dict[str, Any]) -> bytes:
    return json.dumps([{**_VISIT, "scores": scores}]).encode()


def _phq9(value: Any, **changes: Any) -> dict[str, Any]:
    scores = {f"phq9_{i}": value for i in range(1, 10)}
    scores.update(changes)
    return scores


def _only(results: list[Any]) -> Any:
    assert len(results) == 1, results
    return results[0]


def _total_observations(bundle: dict[str, Any]) -> dict[str, Any]:
    """Instrument name -> the total score Observation's value, from a referral bundle."""
    out: dict[str, Any] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] != "Observation":
            continue
        instrument = resource["identifier"][0]["value"].rsplit("/", 1)[1]
        out[instrument] = resource["valueQuantity"]["value"]
    return out


def _rejections(result: Any) -> list[tuple[str | None, str | None]]:
    assert isinstance(result, Rejected), result
    return [
        (issue.error_code, issue.location.field if issue.location else None)
        for issue in result.error.issues
    ]


# --- the defects: data dropped, or taken, by the fast path only ------------------------------


def test_all_zero_phq9_through_json_item_keys_is_a_screening_with_total_0() -> None:
    """A PHQ-9 scored 0 on every item, one JSON key per item, gives a PHQ-9 total of 0."""
    result = _only(
        convert_bytes(_visit(_phq9(0)), name="v.json", mapping=PER_ITEM_JSON, validation="none")
    )
    assert isinstance(result, Converted), result
    assert _total_observations(result.bundle) == {"PHQ-9": 0}


def test_all_zero_phq9_and_gad7_through_json_item_keys_are_both_kept() -> None:
    """All-zero PHQ-9 and GAD-7 (JSON numbers, item 10 too) are two screenings, totals 0."""
    scores = {**_phq9(0, phq9_10=0), **{f"gad7_{i}": 0 for i in range(1, 8)}}
    values, issues = map_values(
        _only(
            list(
                read_source(
                    io.BytesIO(_visit(scores)), name="v.json", mapping=load_mapping(PER_ITEM_JSON)
                )
            )
        ),
        load_mapping(PER_ITEM_JSON),
    )
    assert issues == []
    assert [(s["instrument"], s["answers"]) for s in values["screenings"]] == [
        ("PHQ-9", (0,) * 10),
        ("GAD-7", (0,) * 7),
    ]


def _diabetes_csv(changes: dict[str, str]) -> bytes:
    text = (ROOT / "examples" / "diabetes.csv").read_text(encoding="utf-8")
    header, first = list(csv.reader(io.StringIO(text)))[:2]
    row = dict(zip(header, first, strict=True))
    row.update(changes)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, list(row.values())])
    return out.getvalue().encode()


def test_all_zero_phq9_through_csv_columns_is_a_screening_with_total_0() -> None:
    """A PHQ-9 scored "0" in every CSV column gives a PHQ-9 total of 0."""
    zeros = {f"phq9_q{i}": "0" for i in range(1, 11)}
    result = _only(
        convert_bytes(_diabetes_csv(zeros), name="d.csv", mapping="diabetes-csv", validation="none")
    )
    assert isinstance(result, Converted), result
    assert _total_observations(result.bundle)["PHQ-9"] == 0


@pytest.mark.parametrize("boolean", [True, False], ids=["true", "false"])
@pytest.mark.parametrize(
    ("scores", "field", "diagnostic"),
    [
        pytest.param(lambda b: _phq9(1, phq9_3=b), "scores.phq9_3", "PHQ-9 item 3", id="item-key"),
        pytest.param(lambda b: _phq9(b), "scores.phq9_1", "PHQ-9 item 1", id="every-item-key"),
        pytest.param(lambda b: {"phq2": [1, b]}, "scores.phq2", "PHQ-2 item 2", id="array"),
    ],
)
def test_json_boolean_answer_is_rejected_naming_the_field(
    boolean: bool, scores: Any, field: str, diagnostic: str
) -> None:
    """JSON true / false as an item score rejects the record, naming the item's field."""
    result = _only(
        convert_bytes(
            _visit(scores(boolean)), name="v.json", mapping=PER_ITEM_JSON, validation="none"
        )
    )
    assert _rejections(result)[0] == ("FI303", field)
    issue = result.outcome["issue"][0]
    assert f"field {field}" in issue["location"][0]
    assert f"{diagnostic} is not a score from 0 to 3" in issue["diagnostics"]


@pytest.mark.parametrize(
    "raw",
    ["[1]", '{"score": 1}', "1.0", "2E0"],
    ids=["array", "object", "decimal-1.0", "exponent"],
)
def test_json_non_integer_answer_is_rejected_not_taken_or_crashing(raw: str) -> None:
    """An item score that is a JSON array, object or decimal is an FI303 naming the item."""
    scores = ", ".join(f'"phq9_{i}": {raw if i == 4 else 2}' for i in range(1, 10))
    text = json.dumps([{**_VISIT, "scores": "@"}]).replace('"@"', "{" + scores + "}")
    result = _only(
        convert_bytes(text.encode(), name="v.json", mapping=PER_ITEM_JSON, validation="none")
    )
    assert _rejections(result) == [("FI303", "scores.phq9_4")]


@pytest.mark.parametrize("digit", ["\u0663", "\uff13"], ids=["arabic-indic-3", "fullwidth-3"])
def test_non_ascii_digit_answer_is_rejected(digit: str) -> None:
    """An item score written in non-ASCII digits is not a score (CSV column and JSON key)."""
    result = _only(
        convert_bytes(
            _diabetes_csv({"phq9_q2": digit}),
            name="d.csv",
            mapping="diabetes-csv",
            validation="none",
        )
    )
    assert _rejections(result) == [("FI303", "phq9_q2")]
    result = _only(
        convert_bytes(
            _visit(_phq9(1, phq9_2=digit)), name="v.json", mapping=PER_ITEM_JSON, validation="none"
        )
    )
    assert _rejections(result) == [("FI303", "scores.phq9_2")]


def test_non_ascii_digit_item_number_is_rejected() -> None:
    """An XML answer whose item number is in non-ASCII digits names no item."""
    text = (ROOT / "examples" / "respiratory.xml").read_text(encoding="utf-8")
    old = '<Answer item="4">3</Answer>'
    assert old in text
    raw = text.replace(old, '<Answer item="\u0664">3</Answer>', 1).encode()
    result = convert_bytes(raw, name="r.xml", mapping="respiratory-xml", validation="none")[0]
    assert _rejections(result) == [("FI303", "@item")]


# --- fast path == slow path ------------------------------------------------------------------

_AT = Location(file="x", row=1, line=2)
_VALID_TEXT = st.sampled_from(["0", "1", "2", "3"])
_VALID_INT = st.integers(0, 3)
_NUMERIC_TEXT = st.builds(
    lambda pre, sign, digits, frac, post: f"{pre}{sign}{digits}{frac}{post}",
    st.sampled_from(["", " ", "  ", "\t"]),
    st.sampled_from(["", "+", "-"]),
    st.from_regex(r"[0-9]{1,3}", fullmatch=True),
    st.sampled_from(["", ".", ".0", ".5", "e0"]),
    st.sampled_from(["", " ", "\n"]),
)
_ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "\u0663",
        "\uff13",
        "\u00b3",
        "\u0661",
        "1e0",
        "0x1",
        "00",
        "03",
        "3 ",
        " 2",
        "true",
        "null",
        "None",
        "\u22121",
        "4",
        "-0",
        "+0",
        "1_0",
    ]
)
TEXT_CELL = st.one_of(_VALID_TEXT, _NUMERIC_TEXT, _ODD_TEXT, st.text(max_size=3))
JSON_CELL = st.one_of(
    TEXT_CELL,
    _VALID_INT,
    st.integers(-3, 12),
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(),
    st.decimals(allow_nan=False, places=1, min_value=-5, max_value=5),
    st.sampled_from([Decimal("1.0"), Decimal("0"), Decimal("3"), Decimal("1E+0")]),
    st.lists(_VALID_INT, max_size=2),
    st.dictionaries(st.sampled_from(["a", "score"]), _VALID_INT, max_size=1),
)
_BLANK = {"csv": st.sampled_from(["", " "]), "json": st.sampled_from(["", " ", None, []])}
_VALID = {"csv": _VALID_TEXT, "json": st.one_of(_VALID_INT, _VALID_TEXT)}
_ANY = {"csv": TEXT_CELL, "json": JSON_CELL}


@st.composite
def _cells(draw: st.DrawFn, fmt: str, count: int) -> list[Any]:
    """Item cells: all valid, all blank, valid with a few odd ones, or anything at all."""
    kind = draw(st.sampled_from(["valid", "blank", "mostly-valid", "any"]))
    if kind == "blank":
        return draw(st.lists(_BLANK[fmt], min_size=count, max_size=count))
    if kind == "any":
        return draw(st.lists(st.one_of(_ANY[fmt], _BLANK[fmt]), min_size=count, max_size=count))
    cells = draw(st.lists(_VALID[fmt], min_size=count, max_size=count))
    if kind == "mostly-valid":
        for index in draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=3)):
            cells[index] = draw(st.one_of(_ANY[fmt], _BLANK[fmt]))
    return cells


def _fixed(fmt: str, shape: InstrumentShape, count: int) -> FixedScreening:
    """One instrument read through ``count`` per-item paths (CSV columns or nested JSON keys)."""
    texts = [f"q{i}" if fmt == "csv" else f"s.q{i}" for i in range(1, count + 1)]
    paths = tuple(compile_path(fmt, text) for text in texts)
    return FixedScreening(shape, AnswerPaths(per_item=paths, get_all=_get_all(fmt, paths)))


def _record(fmt: str, cells: list[Any], missing: set[int], nest: Any) -> Any:
    """The record holding ``cells`` at q1..qn; JSON may lack keys or not nest an object."""
    items = {f"q{i + 1}": cell for i, cell in enumerate(cells) if i not in missing or fmt == "csv"}
    if fmt == "csv":
        return items
    return {"s": items if nest is None else nest}


_SHAPE_COUNTS = [
    (shape, count) for shape in SHAPES.values() for count in range(shape.scored, shape.total + 1)
]


@st.composite
def _case(draw: st.DrawFn) -> tuple[str, FixedScreening, Any, list[Any]]:
    fmt = draw(st.sampled_from(["csv", "json"]))
    shape, count = draw(st.sampled_from(_SHAPE_COUNTS))
    cells = draw(_cells(fmt, count))
    missing = (
        set(draw(st.lists(st.integers(0, count - 1), max_size=2)))
        if draw(st.integers(0, 9)) == 0
        else set()
    )
    nest = draw(st.sampled_from(["text", 3, ["list"]])) if draw(st.integers(0, 19)) == 0 else None
    return fmt, _fixed(fmt, shape, count), _record(fmt, cells, missing, nest), cells


def _slow(fixed: FixedScreening, data: Any) -> tuple[Any, list[Issue]]:
    issues: list[Issue] = []
    return _engine.slow_answers(fixed, data, _AT, issues), issues


def _either(fixed: FixedScreening, data: Any) -> tuple[Any, list[Issue]]:
    issues: list[Issue] = []
    return _engine.fixed_answers(fixed, data, _AT, issues), issues


@settings(max_examples=600, deadline=None)
@given(_case())
def test_fast_path_decides_exactly_as_the_slow_path(
    case: tuple[str, FixedScreening, Any, list[Any]],
) -> None:
    """On any cells, the fast path either defers or gives the slow path's answers, no issues."""
    _fmt, fixed, data, _cells_drawn = case
    slow = _slow(fixed, data)
    assert fixed.answers.get_all is not None
    try:
        cells = fixed.answers.get_all(data)
    except Invalid:  # a structure problem: the engine leaves it to the slow path to report
        cells = None
    if cells is not None:
        fast = _engine.fast_answers(fixed.shape, cells)
        event("fast path deferred" if fast is _engine.DEFER else "fast path decided")
        if fast is not _engine.DEFER:
            assert (fast, []) == slow
    assert _either(fixed, data) == slow


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fast_path_takes_every_clean_instrument(data: st.DataObject) -> None:
    """Clean scores and all-blank items are decided by the fast path, as the slow path does."""
    fmt = data.draw(st.sampled_from(["csv", "json"]))
    shape, count = data.draw(st.sampled_from(_SHAPE_COUNTS))
    scored = data.draw(st.lists(_VALID[fmt], min_size=shape.scored, max_size=shape.scored))
    rest = data.draw(
        st.lists(
            st.one_of(_VALID[fmt], st.sampled_from(["", None])),
            min_size=count - shape.scored,
            max_size=count - shape.scored,
        )
    )
    if fmt == "csv":
        rest = ["" if cell is None else cell for cell in rest]
    fixed = _fixed(fmt, shape, count)
    for cells in (scored + rest, [""] * count):
        record = _record(fmt, cells, set(), None)
        assert fixed.answers.get_all is not None
        fast = _engine.fast_answers(fixed.shape, fixed.answers.get_all(record))
        assert fast is not _engine.DEFER
        assert (fast, []) == _slow(fixed, record)
    expected = tuple(int(c) for c in scored)
    unscored = tuple(None if c in ("", None) else int(c) for c in rest)
    if any(a is not None for a in unscored):
        expected += unscored
    assert _engine.fast_answers(shape, tuple(scored + rest)) == expected


def _slow_only(mapping: Mapping) -> Mapping:
    """``mapping`` with its fast path switched off (no ``get_all``): the slow path alone."""
    spec = mapping.screenings
    assert spec is not None
    fixed = tuple(replace(f, answers=replace(f.answers, get_all=None)) for f in spec.fixed)
    return replace(mapping, screenings=replace(spec, fixed=fixed))


_JSON_MAPPING = load_mapping(PER_ITEM_JSON)
_CSV_MAPPING = load_mapping("diabetes-csv")
_CSV_ROW = dict(
    zip(
        *list(
            csv.reader(
                io.StringIO((ROOT / "examples" / "diabetes.csv").read_text(encoding="utf-8"))
            )
        )[:2],
        strict=True,
    )
)


@st.composite
def _json_visit(draw: st.DrawFn) -> dict[str, Any]:
    scores: dict[str, Any] = {}
    for prefix, count in (("phq9_", 10), ("gad7_", 7)):
        for i, cell in enumerate(draw(_cells("json", count)), start=1):
            scores[f"{prefix}{i}"] = cell
    scores["phq2"] = draw(st.one_of(st.none(), st.lists(JSON_CELL, max_size=3), _cells("json", 2)))
    visit_date = draw(st.sampled_from(["2025-04-01", "2099-01-01", "01/04/2025", None, 7]))
    return {**_VISIT, "visitDate": visit_date, "scores": scores}


@st.composite
def _csv_row(draw: st.DrawFn) -> dict[str, str]:
    row = dict(_CSV_ROW)
    for prefix, count in (("phq9_q", 10), ("gad7_q", 7), ("phq2_q", 2), ("gad2_q", 2)):
        for i, cell in enumerate(draw(_cells("csv", count)), start=1):
            row[f"{prefix}{i}"] = cell
    row["review_date"] = draw(st.sampled_from(["2025-04-01", "2099-01-01", "1/4/2025", ""]))
    return row


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.tuples(st.just("json"), _json_visit()), st.tuples(st.just("csv"), _csv_row())))
def test_whole_records_map_the_same_with_and_without_the_fast_path(
    case: tuple[str, dict[str, Any]],
) -> None:
    """Every mapped value and every issue, in order, is the same with the fast path off."""
    fmt, data = case
    mapping = _JSON_MAPPING if fmt == "json" else _CSV_MAPPING
    record = SourceRecord(data, Location(file=f"x.{fmt}", row=1, line=2))
    assert map_values(record, mapping) == map_values(record, _slow_only(mapping))
