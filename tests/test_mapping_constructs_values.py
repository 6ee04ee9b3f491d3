"""Issue 14: value constructs clinic exports use, each a few lines of mapping, checked when the
mapping loads (a MappingError naming file, line and key) and per record (a RecordError whose
issue names file, row and field and the rule, never the value).

NHS numbers with dashes, dates with a time, two-digit years (refused, saying why), decimal
commas, values with units, censored values (refused: the target takes exact values), defaults
for blank cells, a combined "SURNAME, Forename" column, several conditions in one CSV row.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from constructs_helpers import (
    NHS,
    convert,
    csv_bytes,
    has_problem,
    issue_at,
    line_of,
    load,
    load_error,
    mapping_text,
    one_record,
    outcome_issue,
    rejected,
)

from fhir_iapt.records import ConditionData, ContextValue

DASHED = f"{NHS[:3]}-{NHS[3:6]}-{NHS[6:]}"


# --- NHS numbers with dashes ---------------------------------------------------------------


def _dashes() -> str:
    return mapping_text(
        fields={
            "patient.nhs_number": '{from: nhs, type: nhs_number, required: true, separators: "-"}'
        }
    )


def test_nhs_number_with_dashes_reads_as_ten_digits(tmp_path: Path) -> None:
    """separators: "-" lets 943-476-5919 (and spaces, as before) give the 10 digits."""
    mapping = load(tmp_path, _dashes())
    data = csv_bytes([{"nhs": DASHED}, {"id": "R2", "nhs": f"{NHS[:3]} {NHS[3:6]}-{NHS[6:]}"}])
    records = convert(mapping, data)
    assert [getattr(r, "patient", None) and r.patient.nhs_number for r in records] == [NHS, NHS]


def test_nhs_number_with_other_separators_is_rejected_by_rule(tmp_path: Path) -> None:
    """A separator the mapping does not allow rejects the record: FI301 naming the column and
    the separators allowed, not the number."""
    mapping = load(tmp_path, _dashes())
    bad = f"{NHS[:3]}_{NHS[3:6]}_{NHS[6:]}"
    error = rejected(mapping, csv_bytes([{"nhs": bad}]), secrets=(bad, NHS))
    issue = issue_at(error, "nhs")
    assert issue.error_code == "FI301"
    assert "grouped only by spaces or '-'" in issue.diagnostics
    assert outcome_issue(error, "nhs")["details"]["coding"][0]["code"] == "FI301"


def test_nhs_number_without_separators_still_refuses_dashes(tmp_path: Path) -> None:
    """Dashes are read only where the mapping says so: the default still refuses them."""
    mapping = load(tmp_path, mapping_text())
    error = rejected(mapping, csv_bytes([{"nhs": DASHED}]), secrets=(DASHED, NHS))
    assert issue_at(error, "nhs").diagnostics == "is not 10 digits"


def test_bad_separators_are_a_load_error(tmp_path: Path) -> None:
    """separators holding a digit, or on a field that is not an NHS number, is located."""
    text = mapping_text(
        fields={
            "patient.nhs_number": '{from: nhs, type: nhs_number, required: true, separators: "-1"}',
            "patient.family": '{from: surname, type: string, separators: "-"}',
        }
    )
    error = load_error(tmp_path, text)
    has_problem(
        error,
        line=line_of(text, "patient.nhs_number"),
        key="fields.patient.nhs_number.separators",
        words="not digits",
    )
    has_problem(
        error,
        line=line_of(text, "patient.family"),
        key="fields.patient.family.separators",
        words="does not apply to a string field",
    )


# --- dates with a time; two-digit years ------------------------------------------------------


def _timed() -> str:
    return mapping_text(
        fields={
            "event_date": '{from: visit, type: date, required: true, formats: ["%Y-%m-%d %H:%M", '
            '"%d/%m/%Y %H:%M:%S", "%Y-%m-%d"]}'
        }
    )


def test_dates_with_a_time_read_as_their_date(tmp_path: Path) -> None:
    """A format with %H:%M (or %H:%M:%S) reads 2025-03-04 10:30 as 4 March 2025."""
    mapping = load(tmp_path, _timed())
    rows = [
        {"visit": "2025-03-04 10:30"},
        {"visit": "04/03/2025 23:59:59"},
        {"visit": "2025-03-04"},
    ]
    records = convert(mapping, csv_bytes(rows))
    assert [getattr(r, "event_date", r) for r in records] == [date(2025, 3, 4)] * 3


def test_a_date_with_an_impossible_time_is_rejected(tmp_path: Path) -> None:
    """25:30 is no time of day: FI301 naming the column and the rule."""
    mapping = load(tmp_path, _timed())
    error = rejected(mapping, csv_bytes([{"visit": "2025-03-04 25:30"}]), secrets=("25:30",))
    issue = issue_at(error, "visit")
    assert issue.error_code == "FI301"
    assert "not a real time of day" in issue.diagnostics


def test_a_time_without_minutes_is_a_load_error(tmp_path: Path) -> None:
    """A format with %H but no %M is refused where it is written."""
    text = mapping_text(
        fields={"event_date": '{from: visit, type: date, required: true, formats: ["%Y-%m-%d %H"]}'}
    )
    error = load_error(tmp_path, text)
    has_problem(
        error,
        line=line_of(text, "event_date"),
        key="fields.event_date.formats",
        words="a time in a date format is %H:%M",
    )


def test_two_digit_year_format_is_refused_saying_why(tmp_path: Path) -> None:
    """%y is a load error that says why: the century would be a guess."""
    text = mapping_text(
        fields={"event_date": '{from: visit, type: date, required: true, formats: ["%d/%m/%y"]}'}
    )
    error = load_error(tmp_path, text)
    issue = has_problem(
        error, line=line_of(text, "event_date"), key="fields.event_date.formats", words="%y"
    )
    assert "two-digit year" in issue.diagnostics
    assert "1925 or 2025" in issue.diagnostics


def test_a_two_digit_year_value_is_rejected_saying_why(tmp_path: Path) -> None:
    """04/03/25 in a %d/%m/%Y column is rejected as a two-digit year, not a vague mismatch."""
    text = mapping_text(
        fields={"event_date": '{from: visit, type: date, required: true, formats: ["%d/%m/%Y"]}'}
    )
    mapping = load(tmp_path, text)
    error = rejected(mapping, csv_bytes([{"visit": "04/03/25"}]), secrets=("04/03/25",))
    issue = issue_at(error, "visit")
    assert issue.error_code == "FI301"
    assert "two-digit year" in issue.diagnostics


# --- decimal commas, units, censored values -------------------------------------------------


def _hba1c(options: str) -> str:
    return mapping_text(fields={"context.hba1c": f"{{from: hba1c, type: decimal{options}}}"})


def _hba1c_value(mapping_text_: str, cell: str, tmp_path: Path) -> object:
    record = one_record(load(tmp_path, mapping_text_), csv_bytes([{"hba1c": cell}]))
    [context] = record.context
    assert isinstance(context, ContextValue)
    assert context.kind == "hba1c"
    return context.value


def test_decimal_comma_is_read(tmp_path: Path) -> None:
    """decimal_separator: "," reads 7,5 as 7.5."""
    assert _hba1c_value(_hba1c(', decimal_separator: ","'), "7,5", tmp_path) == Decimal("7.5")


def test_decimal_comma_field_refuses_a_point(tmp_path: Path) -> None:
    """With a decimal comma, 7.5 is ambiguous (a thousands point?) and rejected by rule."""
    mapping = load(tmp_path, _hba1c(', decimal_separator: ","'))
    error = rejected(mapping, csv_bytes([{"hba1c": "7.5"}]), secrets=("7.5",))
    issue = issue_at(error, "hba1c")
    assert issue.error_code == "FI301"
    assert "',' as the decimal separator" in issue.diagnostics


def test_bad_decimal_separator_is_a_load_error(tmp_path: Path) -> None:
    """decimal_separator is '.' or ','; another is located."""
    text = _hba1c(', decimal_separator: ";"')
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "context.hba1c"),
        key="fields.context.hba1c.decimal_separator",
        words="'.' or ','",
    )


def test_value_with_its_unit_is_read(tmp_path: Path) -> None:
    """unit: mmol/mol reads 48 mmol/mol, 48mmol/mol and 48 alike."""
    text = _hba1c(", unit: mmol/mol")
    for cell in ("48 mmol/mol", "48mmol/mol", "48"):
        assert _hba1c_value(text, cell, tmp_path) == Decimal(48)


def test_value_with_another_unit_is_rejected(tmp_path: Path) -> None:
    """48 % in a mmol/mol field is not converted: FI301 naming the unit expected."""
    mapping = load(tmp_path, _hba1c(", unit: mmol/mol"))
    error = rejected(mapping, csv_bytes([{"hba1c": "6.5 %"}]), secrets=("6.5",))
    issue = issue_at(error, "hba1c")
    assert issue.error_code == "FI301"
    assert "followed by its unit mmol/mol" in issue.diagnostics


def test_a_unit_the_target_is_not_in_is_a_load_error(tmp_path: Path) -> None:
    """HbA1c is recorded in mmol/mol: a mapping saying % is refused (no conversion is done)."""
    text = _hba1c(', unit: "%"')
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "context.hba1c"),
        key="fields.context.hba1c.unit",
        words="recorded in mmol/mol",
    )


def test_censored_value_is_rejected_as_censored(tmp_path: Path) -> None:
    """<20 is refused as a censored value (never kept without its comparator), naming the
    rule, not the value."""
    for options in ("", ", unit: mmol/mol"):
        mapping = load(tmp_path, _hba1c(options))
        for cell in ("<20", "> 250", "<=20"):
            error = rejected(mapping, csv_bytes([{"hba1c": cell}]), secrets=(cell,))
            issue = issue_at(error, "hba1c")
            assert issue.error_code == "FI301"
            assert "censored value" in issue.diagnostics
            assert "comparator" in issue.diagnostics


def test_censored_whole_number_is_rejected_as_censored(tmp_path: Path) -> None:
    """An int field says the same of <3."""
    text = mapping_text(fields={"context.mrc_grade": "{from: mrc, type: int}"})
    error = rejected(load(tmp_path, text), csv_bytes([{"mrc": "<3"}]), secrets=("<3",))
    assert "censored value" in issue_at(error, "mrc").diagnostics


# --- a default for a blank cell --------------------------------------------------------------


def _consent_default(default: str) -> str:
    return mapping_text(
        fields={"referral.consent_to_refer": f"{{from: consent, type: bool, default: {default}}}"}
    )


def test_blank_cell_takes_the_default(tmp_path: Path) -> None:
    """default: N makes a blank (or spaces-only) consent cell read as no; a filled one wins."""
    mapping = load(tmp_path, _consent_default('"N"'))
    rows = [{"consent": ""}, {"id": "R2", "consent": "  "}, {"id": "R3", "consent": "Y"}]
    records = convert(mapping, csv_bytes(rows))
    assert [getattr(r, "referral", r).consent_to_refer for r in records] == [False, False, True]


def test_default_does_not_hide_a_bad_value(tmp_path: Path) -> None:
    """A filled cell that breaks the rule is still rejected (FI301), default or not."""
    mapping = load(tmp_path, _consent_default('"N"'))
    error = rejected(mapping, csv_bytes([{"consent": "perhaps"}]), secrets=("perhaps",))
    assert issue_at(error, "consent").error_code == "FI301"


def test_default_breaking_the_rule_is_a_load_error(tmp_path: Path) -> None:
    """A default the field's own rule refuses is reported where it is written."""
    text = _consent_default('"perhaps"')
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "referral.consent_to_refer"),
        key="fields.referral.consent_to_refer.default",
        words="the default breaks the field's rule",
    )


def test_default_on_a_required_field_is_a_load_error(tmp_path: Path) -> None:
    """A required field takes no default: its blank must reject the record."""
    text = mapping_text(
        fields={"referral.decision": '{from: refer, type: bool, required: true, default: "Y"}'}
    )
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "referral.decision"),
        key="fields.referral.decision.default",
        words="required field takes no default",
    )


# --- a combined "SURNAME, Forename" column ---------------------------------------------------


def _name() -> str:
    return mapping_text(
        fields={"patient.family": "{from: patient_name, type: name, given_to: patient.given}"}
    )


def test_combined_name_column_gives_family_and_given(tmp_path: Path) -> None:
    """'SMITH, John Paul' gives family SMITH, given 'John Paul' (as a given-name column would)."""
    record = one_record(
        load(tmp_path, _name()), csv_bytes([{"patient_name": " SMITH ,  John Paul "}])
    )
    assert (record.patient.family, record.patient.given) == ("SMITH", ("John Paul",))


def test_name_without_the_comma_is_rejected(tmp_path: Path) -> None:
    """ "John Smith" cannot be split safely: FI301 naming the column and the form expected."""
    mapping = load(tmp_path, _name())
    for cell in ("John Smith", "SMITH,", "SMITH, John, Paul"):
        error = rejected(mapping, csv_bytes([{"patient_name": cell}]), secrets=("John", "SMITH"))
        issue = issue_at(error, "patient_name")
        assert issue.error_code == "FI301"
        assert "'FAMILY, Given names'" in issue.diagnostics


def test_name_field_needs_given_to_and_a_free_target(tmp_path: Path) -> None:
    """A name field without given_to, or whose given_to is also mapped, is a load error."""
    text = mapping_text(fields={"patient.family": "{from: patient_name, type: name}"})
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "patient.family"),
        key="fields.patient.family.type",
        words="needs given_to",
    )
    text = mapping_text(
        fields={
            "patient.family": "{from: patient_name, type: name, given_to: patient.given}",
            "patient.given": "{from: forename, type: string}",
        }
    )
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "patient.family"),
        key="fields.patient.family",
        words="'patient.given' is filled from patient.family",
    )


# --- several conditions in one CSV row -------------------------------------------------------

_TWO_CONDITIONS = """groups:
  conditions:
    items:
      - snomed: {from: diabetes_type, type: code, table: diabetes-type, required: true,
                 display_to: display}
      - snomed: {from: other_condition, type: code, table: ltc-conditions, display_to: display}
        text: {from: other_text, type: string}
"""


def test_two_code_columns_give_two_conditions(tmp_path: Path) -> None:
    """items: reads one condition per entry from its own columns; a blank optional one is left
    out."""
    mapping = load(tmp_path, mapping_text(extra=_TWO_CONDITIONS))
    rows = [
        {"diabetes_type": "T2", "other_condition": "13645005", "other_text": "since 2019"},
        {"id": "R2", "diabetes_type": "T1", "other_condition": "", "other_text": ""},
    ]
    first, second = convert(mapping, csv_bytes(rows))
    assert [c.snomed for c in getattr(first, "conditions", ())] == ["44054006", "13645005"]
    assert first.conditions[1] == ConditionData(  # type: ignore[union-attr]
        "13645005", "Chronic obstructive pulmonary disease", "since 2019"
    )
    assert [c.snomed for c in getattr(second, "conditions", ())] == ["46635009"]


def test_a_bad_second_condition_is_rejected_naming_its_column(tmp_path: Path) -> None:
    """An unknown code in the second column rejects the record naming that column (FI301);
    the first, required, column blank is FI302 even when the second is filled."""
    mapping = load(tmp_path, mapping_text(extra=_TWO_CONDITIONS))
    error = rejected(
        mapping,
        csv_bytes([{"diabetes_type": "T2", "other_condition": "999999999", "other_text": ""}]),
        secrets=("999999999",),
    )
    assert issue_at(error, "other_condition").error_code == "FI301"
    error = rejected(
        mapping,
        csv_bytes([{"diabetes_type": "", "other_condition": "13645005", "other_text": ""}]),
        secrets=(),
    )
    assert issue_at(error, "diabetes_type").error_code == "FI302"


def test_items_with_each_or_fields_is_a_load_error(tmp_path: Path) -> None:
    """items: is the record's own items: with each: or beside fields: it is located."""
    text = mapping_text(
        extra=_TWO_CONDITIONS.replace(
            "    items:", "    each: Diagnosis\n    fields: {}\n    items:"
        )
    )
    error = load_error(tmp_path, text)
    has_problem(
        error,
        line=line_of(text, "each: Diagnosis"),
        key="groups.conditions.each",
        words="leave each: out",
    )
    has_problem(
        error, line=line_of(text, "fields: {}"), key="groups.conditions.fields", words="not both"
    )
    text = mapping_text(
        extra=_TWO_CONDITIONS.replace("text: {from: other_text", "shoe: {from: other_text")
    )
    has_problem(
        load_error(tmp_path, text),
        line=line_of(text, "shoe:"),
        key="groups.conditions.items[1].shoe",
        words="conditions items have no field 'shoe'",
    )
