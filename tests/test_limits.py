"""Input limits: stated in one place (fhir_iapt.limits), configurable, and enforced by every
reader as a located rejection that names the field, never the value, with the other records
still converted; lone surrogate escapes and bytes that are not UTF-8 likewise.
"""

from __future__ import annotations

import io
import json
import os
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fhir_iapt.cli import main
from fhir_iapt.errors import ConfigError
from fhir_iapt.limits import DEFAULT_LIMITS, ENV_VARS, Limits, current
from fhir_iapt.pipeline import convert_bytes
from fhir_iapt.results import Converted, Rejected, Result
from fhir_iapt.sources import SourceRecord, read_records

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
OVER_LIMIT = "FI105"
NAME = "Hartley"  # the first record's family name in every example


def _example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def _convert(body: bytes, mapping: str, name: str = "in") -> list[Result]:
    return convert_bytes(body, name=name, mapping=mapping, validation="none")


def _outcomes(results: list[Result]) -> str:
    return json.dumps([r.outcome for r in results if isinstance(r, Rejected)])


def _assert_first_rejected_rest_as_before(
    body: bytes, plain: bytes, mapping: str, code: str, field: str | None, value: str
) -> Rejected:
    """The first record is rejected with ``code`` naming ``field`` and not ``value``; every
    other record comes out as it does from the unchanged export."""
    results = _convert(body, mapping)
    before = _convert(plain, mapping)
    first = results[0]
    assert isinstance(first, Rejected), first
    assert first.error.error_code == code, first.error.message
    assert first.error.location is not None
    assert first.error.location.field == field
    assert value not in _outcomes(results)
    assert [type(r) for r in results[1:]] == [type(r) for r in before[1:]]
    assert any(isinstance(r, Converted) for r in results[1:])
    return first


# --- the settings ---------------------------------------------------------------------------


def test_defaults_are_far_above_a_real_export() -> None:
    """The defaults hold every bundled example whole (each far above what they need)."""
    assert Limits() == DEFAULT_LIMITS
    assert DEFAULT_LIMITS.max_depth >= 50
    assert DEFAULT_LIMITS.max_field_chars >= 100_000
    assert DEFAULT_LIMITS.max_line_bytes >= 1 << 20
    assert DEFAULT_LIMITS.max_number_digits >= 100


def test_environment_variables_override_each_default() -> None:
    """Each FHIR_IAPT_MAX_* variable sets its limit; the others keep their defaults."""
    env = {
        "FHIR_IAPT_MAX_DEPTH": "12",
        "FHIR_IAPT_MAX_FIELD_CHARS": "3_000",
        "FHIR_IAPT_MAX_LINE_BYTES": " 4096 ",
        "FHIR_IAPT_MAX_NUMBER_DIGITS": "40",
    }
    assert Limits.from_env(env) == Limits(12, 3000, 4096, 40)
    assert Limits.from_env({"FHIR_IAPT_MAX_DEPTH": "7"}) == Limits(max_depth=7)
    assert Limits.from_env({"FHIR_IAPT_MAX_DEPTH": ""}) == DEFAULT_LIMITS
    assert Limits.from_env(Limits(9, 8, 7, 6).as_env()) == Limits(9, 8, 7, 6)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FHIR_IAPT_MAX_DEPTH", "deep"),
        ("FHIR_IAPT_MAX_DEPTH", "1"),
        ("FHIR_IAPT_MAX_FIELD_CHARS", "0"),
        ("FHIR_IAPT_MAX_LINE_BYTES", "-5"),
        ("FHIR_IAPT_MAX_LINE_BYTES", "1.5e6"),
        ("FHIR_IAPT_MAX_NUMBER_DIGITS", "5000"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(variable: str, value: str) -> None:
    """A value that is not a whole number in range is ConfigError FI805 naming the variable."""
    with pytest.raises(ConfigError) as info:
        Limits.from_env({variable: value})
    assert info.value.error_code == "FI805"
    assert variable in info.value.message


def test_the_readers_read_the_environment_when_they_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A variable set in the process reaches convert_bytes (as it reaches the relay and the
    CLI's worker processes, which inherit the environment)."""
    body = _example("cardiac.ndjson")
    monkeypatch.setenv("FHIR_IAPT_MAX_FIELD_CHARS", str(len(NAME) - 1))
    assert current().max_field_chars == len(NAME) - 1
    first = _convert(body, "cardiac-json")[0]
    assert isinstance(first, Rejected)
    assert first.error.error_code == OVER_LIMIT
    monkeypatch.setenv("FHIR_IAPT_MAX_FIELD_CHARS", "many")
    with pytest.raises(ConfigError, match="FHIR_IAPT_MAX_FIELD_CHARS"):
        _convert(body, "cardiac-json")


def test_read_records_takes_limits_from_the_caller() -> None:
    """A Limits passed to read_records is used instead of the environment."""
    body = _example("diabetes.csv")
    items = list(
        read_records(
            io.BytesIO(body),
            name="d.csv",
            fmt="csv",
            limits=Limits(max_field_chars=len(NAME) - 1),
        )
    )
    first = items[0]
    assert not isinstance(first, SourceRecord)
    assert first.error_code == OVER_LIMIT


# --- field length ---------------------------------------------------------------------------

LONG = "H" * (DEFAULT_LIMITS.max_field_chars + 1)


def test_a_csv_cell_past_the_field_length_rejects_its_row_naming_the_column() -> None:
    """A 131,073-character cell: FI105 naming family_name (it was FI101 from csv's own limit,
    naming no field); the other rows convert."""
    plain = _example("diabetes.csv")
    body = plain.replace(NAME.encode(), LONG.encode(), 1)
    _assert_first_rejected_rest_as_before(
        body, plain, "diabetes-csv", OVER_LIMIT, "family_name", LONG
    )


def test_a_csv_cell_at_the_field_length_is_read() -> None:
    """The field limit is exact: a cell of exactly max_field_chars characters is read."""
    body = _example("diabetes.csv").replace(NAME.encode(), LONG[:-1].encode(), 1)
    [first, *_] = read_records(io.BytesIO(body), name="d.csv", fmt="csv")
    assert isinstance(first, SourceRecord)
    assert first.data["family_name"] == LONG[:-1]


@pytest.mark.parametrize("example", ["cardiac.ndjson", "cardiac.json"])
def test_a_json_string_past_the_field_length_rejects_its_record(example: str) -> None:
    """NDJSON line or array item: FI105 naming the key; the other records convert (the value
    used to be read and converted)."""
    plain = _example(example)
    body = plain.replace(f'"{NAME}"'.encode(), f'"{LONG}"'.encode(), 1)
    _assert_first_rejected_rest_as_before(body, plain, "cardiac-json", OVER_LIMIT, "family", LONG)


def test_an_xml_attribute_past_the_field_length_rejects_its_record() -> None:
    """FI105 naming the element and attribute; the other records convert."""
    plain = _example("respiratory.xml")
    body = plain.replace(NAME.encode(), LONG.encode(), 1)
    _assert_first_rejected_rest_as_before(
        body, plain, "respiratory-xml", OVER_LIMIT, "Name/@family", LONG
    )


def test_a_questionnaire_response_string_past_the_field_length_is_rejected() -> None:
    """The FHIR layout: a QuestionnaireResponse whose text is too long is one FI105."""
    data = json.loads(_example("phq9-lhcforms-response.json"))
    data["item"][0]["text"] = LONG
    results = _convert(json.dumps(data).encode(), "questionnaire-response")
    assert [r.error.error_code for r in results if isinstance(r, Rejected)] == [OVER_LIMIT]


# --- digits -------------------------------------------------------------------------------

DIGITS = "9" * (DEFAULT_LIMITS.max_number_digits + 1)


def test_a_csv_cell_past_the_digits_limit_rejects_its_row_naming_the_column() -> None:
    """A 1,001-digit PHQ-9 answer: FI105 naming the column (the map stage's int() raised,
    an unforeseen FI001, and past 4,300 digits said so in its message)."""
    plain = _example("diabetes.csv")
    row = plain.split(b"\n")[1]
    cells = row.split(b",")
    header = plain.split(b"\n")[0].split(b",")
    cells[header.index(b"phq9_q1")] = DIGITS.encode()
    body = plain.replace(row, b",".join(cells), 1)
    _assert_first_rejected_rest_as_before(
        body, plain, "diabetes-csv", OVER_LIMIT, "phq9_q1", DIGITS
    )


def test_an_xml_value_past_the_digits_limit_rejects_its_record() -> None:
    """A 1,001-digit answer in an XML record: FI105 naming the element; the others convert."""
    plain = _example("respiratory.xml")
    body = plain.replace(
        b'<Answer item="1">2</Answer>', b'<Answer item="1">' + DIGITS.encode() + b"</Answer>", 1
    )
    _assert_first_rejected_rest_as_before(
        body, plain, "respiratory-xml", OVER_LIMIT, "Answer", DIGITS
    )


def test_digits_at_the_limit_are_read() -> None:
    """The digits limit is exact: a run of exactly max_number_digits digits is read."""
    body = b"a,b\n" + DIGITS[:-1].encode() + b",1\n"
    [first] = read_records(io.BytesIO(body), name="d.csv", fmt="csv")
    assert isinstance(first, SourceRecord)


# --- line length ----------------------------------------------------------------------------

BIG = DEFAULT_LIMITS.max_line_bytes + DEFAULT_LIMITS.max_line_bytes // 2


def test_a_csv_row_past_the_line_length_is_skipped_and_the_next_rows_read() -> None:
    """A 1.5 MiB row (one quoted cell of many short lines, which csv.field_size_limit never
    sees whole): FI105 at its row and line, and every later row is read as before."""
    plain = _example("diabetes.csv")
    cell = b'"' + b"x\n" * (BIG // 2) + b'"'
    body = plain.replace(NAME.encode(), cell, 1)
    first = _assert_first_rejected_rest_as_before(
        body, plain, "diabetes-csv", OVER_LIMIT, None, "x"
    )
    assert first.error.location is not None
    assert (first.error.location.row, first.error.location.line) == (1, 2)
    assert "line-length limit" in first.error.message


def test_an_ndjson_line_past_the_line_length_is_skipped_and_the_next_lines_read() -> None:
    """A 1.5 MiB NDJSON line: FI105 at line 1; the lines after it convert."""
    plain = _example("cardiac.ndjson")
    body = plain.replace(f'"{NAME}"'.encode(), b"[" + b"0," * (BIG // 2) + b"0]", 1)
    _assert_first_rejected_rest_as_before(body, plain, "cardiac-json", OVER_LIMIT, None, NAME)


def test_a_json_array_item_past_the_line_length_is_skipped_and_the_next_items_read() -> None:
    """A 1.5 MiB array item stops being built and is FI105; the items after it convert."""
    plain = _example("cardiac.json")
    body = plain.replace(f'"{NAME}"'.encode(), b"[" + b"0," * (BIG // 2) + b"0]", 1)
    _assert_first_rejected_rest_as_before(body, plain, "cardiac-json", OVER_LIMIT, None, NAME)


def test_an_xml_record_past_the_line_length_is_skipped_and_the_next_records_read() -> None:
    """A 1.5 MiB record element (many small children): FI105; the later records convert."""
    plain = _example("respiratory.xml")
    body = plain.replace(b"<MRCDyspnoea", b"<x/>" * (BIG // 4) + b"<MRCDyspnoea", 1)
    _assert_first_rejected_rest_as_before(body, plain, "respiratory-xml", OVER_LIMIT, None, NAME)


def test_a_bundle_entry_past_the_line_length_is_skipped_and_the_next_entries_read() -> None:
    """A streamed Bundle of QuestionnaireResponses: an entry past the limit is FI105 at
    Bundle.entry[0]; the entries after it are read."""
    response = json.loads(_example("phq9-lhcforms-response.json"))
    huge = dict(response, extension=[{"url": "x", "valueString": "y" * 1000}] * (BIG // 1000))
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": huge}, {"resource": response}, {"resource": response}],
    }
    results = _convert(json.dumps(bundle).encode(), "questionnaire-response")
    assert len(results) == 3
    first = results[0]
    assert isinstance(first, Rejected)
    assert first.error.error_code == OVER_LIMIT
    assert first.error.location is not None
    assert first.error.location.element == "Bundle.entry[0].resource"
    assert [type(r) for r in results[1:]] == [
        type(r) for r in _convert(json.dumps(response).encode(), "questionnaire-response")
    ] * 2


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("csv", b"a,b\n1," + b"x" * 10_000_000 + b"\n2,3\n"),
        ("json", b'{"a": "' + b"x" * 10_000_000 + b'"}\n{"a": "b"}\n'),
    ],
    ids=["csv", "ndjson"],
)
def test_a_10_mb_line_is_never_held_whole(fmt: str, body: bytes) -> None:
    """Reading past a 10 MB line allocates far less than the line (the csv module used to read
    it whole, and the NDJSON reader joined it), and the next record is read."""
    tracemalloc.start()
    try:
        items = list(read_records(io.BytesIO(body), name="big", fmt=fmt))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * DEFAULT_LIMITS.max_line_bytes, peak
    assert [getattr(i, "error_code", None) for i in items] == [OVER_LIMIT, None]


def test_a_csv_row_over_a_small_limit_never_leaves_its_quoted_lines_as_rows() -> None:
    """After an over-long quoted cell spanning lines, reading resumes at the next row (its
    inner lines are not read as rows), and the line numbers stay right."""
    body = b'a,b\n1,"' + b"9990000018,x\n" * 50 + b'"\n2,3\n'
    items = list(
        read_records(io.BytesIO(body), name="c.csv", fmt="csv", limits=Limits(max_line_bytes=200))
    )
    assert [getattr(i, "error_code", None) for i in items] == [OVER_LIMIT, None]
    last = items[1]
    assert isinstance(last, SourceRecord)
    assert last.data == {"a": "2", "b": "3"}
    assert (last.location.row, last.location.line) == (2, 53)


# --- lone surrogates and bytes that are not UTF-8 -------------------------------------------

SURROGATES = ["\\ud800", "\\udc00", "\\uDBFF\\uDBFF", "\\udfff\\ud800"]


@pytest.mark.parametrize("escape", SURROGATES)
@pytest.mark.parametrize("example", ["cardiac.ndjson", "cardiac.json"])
def test_a_lone_surrogate_escape_rejects_its_record(example: str, escape: str) -> None:
    """``"Hart\\ud800ley"`` is valid JSON but not Unicode text: the record is FI101 naming the
    key (it converted, then crashed the writers; ijson turned a high one into "?"), the other
    records convert."""
    plain = _example(example)
    body = plain.replace(f'"{NAME}"'.encode(), f'"Hart{escape}ley"'.encode(), 1)
    _assert_first_rejected_rest_as_before(body, plain, "cardiac-json", "FI101", "family", NAME)


@pytest.mark.parametrize(
    "text", ["Hart\\ud83d\\ude00ley", "Hart\\\\ud800ley", "Hart\\\\\\ud83d\\ude00ley"]
)
@pytest.mark.parametrize("example", ["cardiac.ndjson", "cardiac.json"])
def test_paired_surrogates_and_escaped_backslashes_are_text(example: str, text: str) -> None:
    """A surrogate pair is one character, and ``\\\\ud800`` is a backslash and letters: both
    read as text, exactly as the JSON says."""
    body = _example(example).replace(f'"{NAME}"'.encode(), f'"{text}"'.encode(), 1)
    [first, *_] = read_records(io.BytesIO(body), name="c", fmt="json")
    assert isinstance(first, SourceRecord)
    assert first.data["patient"]["name"]["family"] == json.loads(f'"{text}"')


def test_a_surrogate_escape_split_across_reads_is_still_seen() -> None:
    """The guard sees an escape cut by a read boundary (a paired one stays text, a lone one is
    refused) wherever the cut falls."""

    class Trickle(io.BytesIO):
        def __init__(self, data: bytes, size: int) -> None:
            super().__init__(data)
            self.size = size

        def read(self, size: int | None = -1) -> bytes:
            return super().read(self.size)

    cases = [
        ("\\ud83d\\ude00", True),
        ("\\ud800x", False),
        ("a\\udc00", False),
        ("\\ud800\\ude00\\\\\\n\\ud83d\\udc00", True),  # two pairs around "\\\n"
        ("x\\\\ud83d\\udc00", False),  # a backslash, "ud83d", then a lone low surrogate
    ]
    for text, ok in cases:
        body = b'[{"a": "' + text.encode() + b'"}, {"a": "b"}]'
        for size in range(1, 16):
            items = list(read_records(Trickle(body, size), name="t", fmt="json"))
            assert isinstance(items[1], SourceRecord), (text, size)
            assert isinstance(items[0], SourceRecord) is ok, (text, size)


@pytest.mark.parametrize(
    ("example", "mapping"),
    [
        ("diabetes.csv", "diabetes-csv"),
        ("cardiac.json", "cardiac-json"),
        ("cardiac.ndjson", "cardiac-json"),
        ("respiratory.xml", "respiratory-xml"),
    ],
)
@pytest.mark.parametrize("bad", [b"\xed\xa0\x80", b"\xff", b"\xc3"])
def test_bytes_that_are_not_utf8_are_a_located_rejection(
    example: str, mapping: str, bad: bytes
) -> None:
    """Invalid UTF-8 in the second record: the first converts as before, then one FI103 (or
    FI104 where the XML parser names the error otherwise) located, never an exception."""
    plain = _example(example)
    second = re.findall(rb"\b9\d{9}\b", plain)[1]
    body = plain.replace(second, second[:3] + bad + second[3:], 1)
    results = _convert(body, mapping)
    before = _convert(plain, mapping)
    assert type(results[0]) is type(before[0])
    rejected = [r for r in results if isinstance(r, Rejected)]
    assert rejected
    assert rejected[0].error.error_code in {"FI103", "FI104"}
    assert rejected[0].error.location is not None
    assert second.decode() not in _outcomes(results)


# --- the CLI ---------------------------------------------------------------------------------


def test_convert_max_options_set_the_limits_for_the_run(tmp_path: Path) -> None:
    """``--max-field-chars 5`` rejects every record holding a longer value (FI105 in
    summary.json), and leaves the environment as it was."""
    source = tmp_path / "d.csv"
    source.write_bytes(_example("diabetes.csv"))
    out = tmp_path / "out"
    args = ["convert", str(source), "--mapping", "diabetes-csv", "--validate", "none"]
    done = CliRunner().invoke(main, [*args, "--out", str(out), "--max-field-chars", "5"])
    assert done.exit_code == 1, done.output
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    assert summary["rejected"] == {OVER_LIMIT: summary["records"]}
    assert ENV_VARS["max_field_chars"] not in os.environ


def test_convert_refuses_a_bad_limit_with_usage_exit(tmp_path: Path) -> None:
    """A bad --max-* value is exit 2 with an OperationOutcome naming it; nothing written."""
    source = tmp_path / "d.csv"
    source.write_bytes(_example("diabetes.csv"))
    out = tmp_path / "out"
    args = ["convert", str(source), "--mapping", "diabetes-csv", "--out", str(out)]
    done = CliRunner().invoke(main, [*args, "--max-depth", "0"])
    assert done.exit_code == 2
    assert "FI805" in done.output
    assert not out.exists()


def test_every_example_converts_under_the_defaults() -> None:
    """No bundled example meets a limit: each converts exactly as with limits far higher."""
    high = Limits(10_000, 10**9, 10**9, 4300)
    for example, fmt in [
        ("diabetes.csv", "csv"),
        ("cardiac.json", "json"),
        ("cardiac.ndjson", "json"),
        ("phq9-lhcforms-response.json", "fhir"),
    ]:
        data = _example(example)
        default = list(read_records(io.BytesIO(data), name="e", fmt=fmt))
        wide = list(read_records(io.BytesIO(data), name="e", fmt=fmt, limits=high))
        assert all(isinstance(i, SourceRecord) for i in default), example
        assert [i.data for i in default] == [i.data for i in wide]  # type: ignore[union-attr]
