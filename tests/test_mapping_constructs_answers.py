"""Issue 14: questionnaire answers as clinic exports hold them - every answer in one column
("1,2,0,3,1,1,0,2,0", ``split:``) and answers as words ("Several days") that a table turns into
scores (``answer_table:``, ``unscored_answer_table:`` for PHQ-9 item 10) - checked when the
mapping loads and per record (FI303 naming the column and item, never the answer), and the fast
path for them deciding exactly as the slow path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from constructs_helpers import (
    NHS,
    convert,
    csv_bytes,
    has_problem,
    issue_at,
    json_bytes,
    line_of,
    load,
    load_error,
    mapping_text,
    one_record,
    rejected,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_iapt.errors import Issue, Location, RecordError
from fhir_iapt.mapping import _engine
from fhir_iapt.mapping._model import FixedScreening
from fhir_iapt.mapping._types import Invalid
from fhir_iapt.records import Screening

ROOT = Path(__file__).resolve().parent.parent
PHQ9 = ["Not at all", "Several days", "More than half the days", "Nearly every day"]
DIFFICULTY = ["Not difficult at all", "Somewhat difficult", "Very difficult", "Extremely difficult"]


def _screenings(item: str) -> str:
    return f"screenings:\n  items:\n    - {item}\n"


def _column(item_options: str = "") -> str:
    return mapping_text(
        extra=_screenings(f'{{instrument: PHQ-9, answers: phq9, split: ","{item_options}}}')
    )


def _scores(record: Any) -> list[tuple[str, tuple[int | None, ...]]]:
    return [(s.instrument, s.answers) for s in record.screenings]


# --- every answer in one column ----------------------------------------------------------------


def test_one_column_of_answers_gives_the_item_scores(tmp_path: Path) -> None:
    """split: "," reads 1,2,0,3,1,1,0,2,0 as PHQ-9 items 1-9 (spaces around answers allowed,
    item 10 optional); a blank column means not done."""
    mapping = load(tmp_path, _column())
    rows = [
        {"phq9": "1,2,0,3,1,1,0,2,0"},
        {"id": "R2", "phq9": "1, 2, 0, 3, 1, 1, 0, 2, 0, 3"},
        {"id": "R3", "phq9": ""},
    ]
    first, second, third = convert(mapping, csv_bytes(rows))
    assert _scores(first) == [("PHQ-9", (1, 2, 0, 3, 1, 1, 0, 2, 0))]
    assert _scores(second) == [("PHQ-9", (1, 2, 0, 3, 1, 1, 0, 2, 0, 3))]
    assert _scores(third) == []


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("1,2,0", "PHQ-9 needs 9 or 10 answers separated by ','"),
        ("1,2,0,3,1,1,0,2,0,1,1", "PHQ-9 needs 9 or 10 answers separated by ','"),
        ("1,2,7,3,1,1,0,2,0", "PHQ-9 item 3 is not a score from 0 to 3"),
        ("1,,0,3,1,1,0,2,0", "PHQ-9 item 2 is blank while other items are answered"),
    ],
)
def test_one_column_that_does_not_fit_is_rejected(tmp_path: Path, cell: str, words: str) -> None:
    """A wrong count, an impossible answer or a gap rejects the record: FI303 naming the
    column and the item, never the answers."""
    mapping = load(tmp_path, _column())
    error = rejected(mapping, csv_bytes([{"phq9": cell}]), secrets=(cell,))
    issue = issue_at(error, "phq9")
    assert issue.error_code == "FI303"
    assert words in issue.diagnostics


def test_one_column_in_json_must_be_text(tmp_path: Path) -> None:
    """In JSON, split: reads a string; an array there is a structure problem (FI304)."""
    text = mapping_text(
        input_lines="format: json",
        extra=_screenings('{instrument: GAD-2, answers: scores, split: ";"}'),
    )
    visit = {"id": "R1", "clinic": "RZZ10", "visit": "2025-03-04", "nhs": NHS, "refer": True}
    data = json_bytes([{**visit, "scores": "1;2"}, {**visit, "id": "R2", "scores": [1, 2]}])
    ok, bad = convert(load(tmp_path, text), data, "export.json")
    assert _scores(ok) == [("GAD-2", (1, 2))]
    assert isinstance(bad, RecordError)
    assert issue_at(bad, "scores").error_code == "FI304"


def test_split_needs_one_path_and_a_separator(tmp_path: Path) -> None:
    """split: with a list of columns, or a separator holding a digit, is a load error."""
    text = mapping_text(extra=_screenings('{instrument: GAD-2, answers: [g1, g2], split: ","}'))
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "answers: [g1, g2]"),
        key="screenings.items[0].answers",
        words="with split:, answers: is the one path",
    )
    text = mapping_text(extra=_screenings('{instrument: GAD-2, answers: gad2, split: "0"}'))
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "answers: gad2"),
        key="screenings.items[0].split",
        words="no digits",
    )
    text = mapping_text(extra=_screenings("{instrument: GAD-2, answers: gad2}"))
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "answers: gad2"),
        key="screenings.items[0].answers",
        words="add split:",
    )


# --- answers as words, through a table -------------------------------------------------------


def _words(answers: str = "[q1, q2, q3, q4, q5, q6, q7, q8, q9, q10]", more: str = "") -> str:
    return mapping_text(
        extra=_screenings(
            f"{{instrument: PHQ-9, answers: {answers}, answer_table: frequency-answers{more}}}"
        )
    )


_ITEMS = [f"q{i}" for i in range(1, 11)]


def _row(cells: list[str], **more: str) -> dict[str, str]:
    return {**dict(zip(_ITEMS, cells + [""] * (10 - len(cells)), strict=True)), **more}


def test_answers_as_words_become_scores(tmp_path: Path) -> None:
    """answer_table: frequency-answers turns 'Several days' (any case) into 1, and so on."""
    mapping = load(tmp_path, _words())
    cells = [PHQ9[i % 4] for i in range(9)]
    cells[4] = cells[4].upper()
    record = one_record(mapping, csv_bytes([_row(cells)]))
    assert _scores(record) == [("PHQ-9", tuple(i % 4 for i in range(9)))]


def test_item_ten_words_come_from_their_own_table(tmp_path: Path) -> None:
    """unscored_answer_table: difficulty-answers reads PHQ-9 item 10; a frequency word there,
    or a difficulty word in a scored item, is rejected (each item has its own answers)."""
    mapping = load(tmp_path, _words(more=", unscored_answer_table: difficulty-answers"))
    cells = [PHQ9[1]] * 9 + [DIFFICULTY[2]]
    assert _scores(one_record(mapping, csv_bytes([_row(cells)]))) == [("PHQ-9", (1,) * 9 + (2,))]
    error = rejected(mapping, csv_bytes([_row([PHQ9[1]] * 10)]), secrets=(PHQ9[1],))
    assert "PHQ-9 item 10 is not an answer the table difficulty-answers knows" in (
        issue_at(error, "q10").diagnostics
    )
    cells = [PHQ9[1]] * 2 + [DIFFICULTY[2]] + [PHQ9[1]] * 6
    error = rejected(mapping, csv_bytes([_row(cells)]), secrets=(DIFFICULTY[2],))
    assert issue_at(error, "q3").error_code == "FI303"


@pytest.mark.parametrize("word", ["Sometimes", "1", "several  days"])
def test_a_word_the_table_lacks_is_rejected(tmp_path: Path, word: str) -> None:
    """An answer not in the table (digits too: the table is the answers) rejects the record:
    FI303 naming the column, the item and the table."""
    mapping = load(tmp_path, _words())
    cells = [PHQ9[0]] * 9
    cells[1] = word
    secrets = (word,) if len(word) > 1 else ()  # "1" is in "row 1" anyway
    error = rejected(mapping, csv_bytes([_row(cells)]), secrets=secrets)
    issue = issue_at(error, "q2")
    assert issue.error_code == "FI303"
    assert "PHQ-9 item 2 is not an answer the table frequency-answers knows" in issue.diagnostics


def test_words_in_one_column(tmp_path: Path) -> None:
    """split: and answer_table: together read 'Not at all;Several days' as GAD-2 0, 1."""
    text = mapping_text(
        extra=_screenings(
            '{instrument: GAD-2, answers: gad2, split: ";", answer_table: frequency-answers}'
        )
    )
    record = one_record(load(tmp_path, text), csv_bytes([{"gad2": "Not at all; several days"}]))
    assert _scores(record) == [("GAD-2", (0, 1))]


def test_answer_tables_are_checked_when_the_mapping_loads(tmp_path: Path) -> None:
    """A missing table, a table whose scores the instrument cannot have, and an unscored table
    for an instrument with no unscored items are each located."""
    text = _words(more="").replace("frequency-answers", "no-such-answers")
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "no-such-answers"),
        key="screenings.items[0].answer_table",
        words="no lookup table 'no-such-answers'",
    )
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "site-answers.yaml").write_text(
        "# site-answers: test table.\nterms:\n  Never: 0\n  Always: 4\n", encoding="utf-8"
    )
    text = _words().replace("frequency-answers", "site-answers")
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "site-answers"),
        key="screenings.items[0].answer_table",
        words="whole numbers from 0 to 3 for PHQ-9",
    )
    text = mapping_text(
        extra=_screenings(
            "{instrument: GAD-2, answers: [g1, g2], unscored_answer_table: difficulty-answers}"
        )
    )
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "difficulty-answers"),
        key="screenings.items[0].unscored_answer_table",
        words="GAD-2 has no unscored items",
    )


_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<Export>
  <Visit id="V1" clinic="RZZ10" date="2025-03-04" nhs="9434765919" refer="Y">
    <Screening instrument="GAD-2"><Answer item="1">Several days</Answer>
      <Answer item="2">Sometimes</Answer></Screening>
  </Visit>
  <Visit id="V2" clinic="RZZ10" date="2025-03-04" nhs="9434765919" refer="Y">
    <Screening instrument="GAD-2"><Answer item="2">nearly every day</Answer>
      <Answer item="1">Not at all</Answer></Screening>
  </Visit>
</Export>
"""


def test_answer_words_in_xml_elements(tmp_path: Path) -> None:
    """Repeated <Answer> elements with words read through the block's answer_table:; an
    unknown word is FI303 at its element's line."""
    fields = {
        "record_id": '{from: "@id", type: string, required: true}',
        "clinic_ods": '{from: "@clinic", type: ods, required: true}',
        "event_date": '{from: "@date", type: date, required: true}',
        "patient.nhs_number": '{from: "@nhs", type: nhs_number, required: true}',
        "referral.decision": '{from: "@refer", type: bool, required: true}',
    }
    text = mapping_text(
        base=fields,
        input_lines="format: xml\nrecord: /Export/Visit",
        extra=(
            "screenings:\n  each: Screening\n  answer_table: frequency-answers\n"
            '  instrument: {from: "@instrument", type: code, table: instrument-names, '
            "required: true}\n"
            '  answers: {each: Answer, item: "@item", value: "."}\n'
        ),
    )
    bad, good = convert(load(tmp_path, text), _XML, "export.xml")
    assert _scores(good) == [("GAD-2", (0, 3))]
    assert isinstance(bad, RecordError)
    [issue] = bad.issues
    assert issue.error_code == "FI303"
    assert "GAD-2 item 2 is not an answer the table frequency-answers knows" in issue.diagnostics
    assert issue.location is not None
    assert issue.location.line == 1 + _XML.decode().splitlines().index(
        '      <Answer item="2">Sometimes</Answer></Screening>'
    )
    assert "Sometimes" not in str(bad.to_operation_outcome())


def test_bundled_answer_tables_agree_with_the_instruments_table() -> None:
    """frequency-answers / difficulty-answers hold exactly instruments.yaml's answer sets."""
    instruments = yaml.safe_load((ROOT / "mappings/tables/instruments.yaml").read_text())
    sets = instruments["answer_sets"]
    for table, names in (
        ("frequency-answers", ("frequency", "frequency_input_aliases")),
        ("difficulty-answers", ("difficulty",)),
    ):
        terms = yaml.safe_load((ROOT / f"mappings/tables/{table}.yaml").read_text())["terms"]
        expected = {a["display"]: a["score"] for name in names for a in sets[name]}
        assert terms == expected


# --- the fast path for these answers decides as the slow path ---------------------------------

_AT = Location(file="export.csv", row=1, line=2)
_WORD = st.sampled_from(PHQ9 + DIFFICULTY + [w.lower() for w in PHQ9] + [w.upper() for w in PHQ9])
_CELL = st.one_of(
    _WORD,
    st.sampled_from(["", " ", "0", "1", "3", "4", " Several days", "Several days "]),
    st.text(max_size=6),
)


def _fixed(tmp_path: Path, item: str) -> FixedScreening:
    mapping = load(tmp_path, mapping_text(extra=_screenings(item)))
    assert mapping.screenings is not None
    [fixed] = mapping.screenings.fixed
    return fixed


def _same_answers(fixed: FixedScreening, data: Any) -> None:
    slow_issues: list[Issue] = []
    slow = _engine.slow_answers(fixed, data, _AT, slow_issues)
    assert fixed.answers.get_all is not None
    try:
        cells = fixed.answers.get_all(data)
    except Invalid:
        cells = None
    if cells is not None:
        fast = fixed.fast(fixed.shape, cells)
        if fast is not _engine.DEFER:
            assert (fast, []) == (slow, slow_issues)
    both: list[Issue] = []
    assert (_engine.fixed_answers(fixed, data, _AT, both), both) == (slow, slow_issues)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cells=st.lists(_CELL, min_size=10, max_size=10))
def test_word_answers_fast_path_agrees_with_slow_path(tmp_path: Path, cells: list[str]) -> None:
    """Per-item word columns: the table fast path defers or gives the slow path's answers."""
    fixed = _fixed(
        tmp_path,
        "{instrument: PHQ-9, answers: [q1, q2, q3, q4, q5, q6, q7, q8, q9, q10], "
        "answer_table: frequency-answers, unscored_answer_table: difficulty-answers}",
    )
    _same_answers(fixed, dict(zip(_ITEMS, cells, strict=True)))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(st.one_of(_CELL, st.sampled_from(["0", "1", "2", "3"])), max_size=12),
    words=st.booleans(),
)
def test_one_column_fast_path_agrees_with_slow_path(
    tmp_path: Path, cells: list[str], words: bool
) -> None:
    """One column of answers (digits or words): the fast path defers or agrees."""
    table = ", answer_table: frequency-answers" if words else ""
    fixed = _fixed(tmp_path, f'{{instrument: PHQ-9, answers: phq9, split: ","{table}}}')
    _same_answers(fixed, {"phq9": ",".join(c.replace(",", "") for c in cells)})


def test_fast_path_decides_clean_answers(tmp_path: Path) -> None:
    """Clean words and clean one-column digits never need the slow path."""
    fixed = _fixed(
        tmp_path,
        "{instrument: PHQ-9, answers: [q1, q2, q3, q4, q5, q6, q7, q8, q9], "
        "answer_table: frequency-answers}",
    )
    row = dict(zip(_ITEMS, [PHQ9[i % 4] for i in range(9)], strict=False))
    assert fixed.answers.get_all is not None
    assert fixed.fast(fixed.shape, fixed.answers.get_all(row)) == tuple(i % 4 for i in range(9))
    fixed = _fixed(tmp_path, '{instrument: GAD-7, answers: gad7, split: ","}')
    assert fixed.answers.get_all is not None
    assert fixed.fast(fixed.shape, fixed.answers.get_all({"gad7": "0,1,2,3,0,1,2"})) == (
        0,
        1,
        2,
        3,
        0,
        1,
        2,
    )
    assert fixed.fast(fixed.shape, fixed.answers.get_all({"gad7": ""})) is None


def test_screening_record_type_is_unchanged(tmp_path: Path) -> None:
    """What the constructs give is the same Screening a per-item digit mapping gives."""
    record = one_record(load(tmp_path, _column()), csv_bytes([{"phq9": "0,0,0,0,0,0,0,0,1"}]))
    assert record.screenings == (Screening("PHQ-9", (0,) * 8 + (1,), record.event_date),)
