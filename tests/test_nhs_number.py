"""NHS number modulus 11 check and normal form, table-driven from DOMAIN.md's rule and examples.

DOMAIN.md: digits 1-9 x weights 10...2, summed; check = 11 - (sum mod 11); 11 -> 0; 10 -> the
number is invalid; it must equal digit 10. 9000000009 and 9912003888 are valid. The other
numbers below are worked out by hand from that rule (arithmetic in the comments).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from fhir_iapt.errors import RecordError
from fhir_iapt.mapping import load_mapping, map_record, read_source
from fhir_iapt.nhs_number import check_digit, is_valid_nhs_number, normalise_nhs_number
from fhir_iapt.sources import SourceRecord

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

VALIDITY = [
    # DOMAIN.md's valid examples.
    pytest.param("9000000009", True, id="domain-example-9000000009"),
    pytest.param("9912003888", True, id="domain-example-9912003888"),
    # 9x10 = 90; 90 mod 11 = 2; check 9: any other last digit is wrong.
    pytest.param("9000000008", False, id="wrong-check-digit"),
    pytest.param("9000000000", False, id="wrong-check-digit-0"),
    # 5x4 + 1x2 = 22; 22 mod 11 = 0; 11 - 0 = 11 -> 0.
    pytest.param("0000005010", True, id="check-11-is-0"),
    pytest.param("0000005011", False, id="check-11-is-not-written-1"),
    # 4x3 = 12; 12 mod 11 = 1; 11 - 1 = 10 -> invalid whatever digit 10 is.
    *(pytest.param(f"000000040{d}", False, id=f"check-10-invalid-{d}") for d in range(10)),
    # Wrong length.
    pytest.param("", False, id="empty"),
    pytest.param("900000000", False, id="9-digits"),
    pytest.param("90000000009", False, id="11-digits"),
    # Not digits.
    pytest.param("90000000O9", False, id="letter-O"),
    pytest.param("A000000009", False, id="letter-A"),
    pytest.param("900000000-", False, id="hyphen"),
    pytest.param("900 000 0009", False, id="spaces-not-normalised"),
    pytest.param(
        "\u0669\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0669",
        False,
        id="arabic-indic-digits",
    ),
    pytest.param("\u00b2" * 10, False, id="superscript-digits"),
]


@pytest.mark.parametrize(("digits", "valid"), VALIDITY)
def test_is_valid_nhs_number(digits: str, valid: bool) -> None:
    """is_valid_nhs_number follows DOMAIN.md's modulus 11 rule on exactly 10 ASCII digits."""
    assert is_valid_nhs_number(digits) is valid


NORMAL_FORMS = [
    pytest.param("9000000009", "9000000009", id="already-normal"),
    pytest.param("900 000 0009", "9000000009", id="spaces-3-3-4"),
    pytest.param(" 991 200 3888 ", "9912003888", id="spaces-around"),
    pytest.param("9000000009\n", "9000000009", id="trailing-newline"),
    pytest.param("900-000-0009", None, id="hyphens-not-stripped"),
    pytest.param("900 000 0008", None, id="bad-check-digit"),
    pytest.param("0000 0004 05", None, id="check-10"),
    pytest.param("900 000 000", None, id="too-short"),
    pytest.param("", None, id="empty"),
    pytest.param("   ", None, id="blank"),
]


@pytest.mark.parametrize(("raw", "expected"), NORMAL_FORMS)
def test_normalise_nhs_number(raw: str, expected: str | None) -> None:
    """normalise_nhs_number strips spaces and gives 10 valid digits, or None."""
    assert normalise_nhs_number(raw) == expected


@pytest.mark.parametrize("value", ["\u00b2" * 10, "\u0669" + "\u0660" * 8 + "\u0669"])
def test_mapping_rejects_non_ascii_digits_as_not_10_digits(value: str) -> None:
    """A CSV NHS number in non-ASCII digits is a FI301 'not 10 digits' issue, not a crash."""
    mapping = load_mapping("diabetes-csv")
    lines = (EXAMPLES / "diabetes.csv").read_text(encoding="utf-8").splitlines()
    header, row = next(csv.reader(lines[:1])), next(csv.reader(lines[1:2]))
    row[header.index("nhs_number")] = value
    out = io.StringIO()
    csv.writer(out).writerows([header, row])
    raw = out.getvalue()
    items = list(read_source(io.BytesIO(raw.encode()), name="u.csv", mapping=mapping))
    record = items[0]
    assert isinstance(record, SourceRecord), record
    with pytest.raises(RecordError) as caught:
        map_record(record, mapping)
    nhs = [
        i
        for i in caught.value.issues
        if i.location is not None and i.location.field == "nhs_number"
    ]
    assert [(i.error_code, i.diagnostics) for i in nhs] == [("FI301", "is not 10 digits")]


@pytest.mark.parametrize(
    ("first_nine", "expected"),
    [("900000000", 9), ("991200388", 8), ("000000501", 0), ("000000040", None)],
)
def test_check_digit_follows_domain_rules(first_nine: str, expected: int | None) -> None:
    """check_digit gives DOMAIN.md's digit (11 -> 0) and None where the check would be 10."""
    assert check_digit(first_nine) == expected
