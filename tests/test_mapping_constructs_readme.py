"""mappings/README.md's "Export features" examples load and convert as written (the
documentation is a test): the Windows-1252 CSV with a preamble, and the namespaced XML."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

from constructs_helpers import NHS, convert, load

from fhir_iapt.mapping import _model, _types
from fhir_iapt.records import ConditionData, ContextValue, ReferralRecord, Screening

README = (Path(__file__).resolve().parent.parent / "mappings" / "README.md").read_text("utf-8")


def _section() -> str:
    match = re.search(r"^## Export features\n(.*?)(?=^## )", README, flags=re.DOTALL | re.M)
    assert match, "mappings/README.md has no '## Export features' section"
    return match.group(1)


def _block(lang: str, first_line: str = "") -> str:
    blocks = re.findall(rf"```{lang}\n(.*?)```", _section(), flags=re.DOTALL)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, f"expected one {lang} block starting {first_line!r}"
    return found[0]


def test_readme_csv_example_converts(tmp_path: Path) -> None:
    """The CSV example (cp1252, preamble, dashed NHS number, name column, date with a time,
    decimal comma with its unit, a default, two conditions, one-column and word answers)
    gives this referral."""
    mapping = load(tmp_path, _block("yaml", "# site-a-csv"))
    data = _block("csv").replace("\n", "\r\n").encode("cp1252")
    [record] = convert(mapping, data)
    assert isinstance(record, ReferralRecord), record
    assert record.record_id == "A-1"
    assert (record.patient.nhs_number, record.patient.family, record.patient.given) == (
        NHS,
        "O'BRIEN",
        ("Zoë",),
    )
    assert record.event_date == date(2025, 3, 4)
    assert record.context == (ContextValue("hba1c", Decimal("53.5"), date(2025, 3, 4)),)
    assert record.referral.decision is True
    assert record.referral.consent_to_refer is False  # blank: the default N
    assert record.conditions == (
        ConditionData("44054006", "Type 2 diabetes mellitus"),
        ConditionData("38341003", "Hypertension"),
    )
    assert record.screenings == (
        Screening("PHQ-9", (1, 2, 0, 3, 1, 1, 0, 2, 0), date(2025, 3, 4)),
        Screening("GAD-2", (1, 0), date(2025, 3, 4)),
    )
    assert record.location is not None
    assert (record.location.row, record.location.line) == (1, 4)


def test_readme_xml_example_converts(tmp_path: Path) -> None:
    """The namespaced XML example gives this referral."""
    mapping = load(tmp_path, _block("yaml", "# site-b-xml"))
    [record] = convert(mapping, _block("xml").encode("utf-8"), "export.xml")
    assert isinstance(record, ReferralRecord), record
    assert (record.record_id, record.clinic_ods, record.event_date) == (
        "B-1",
        "RZZ20",
        date(2025, 3, 4),
    )
    assert (record.patient.nhs_number, record.patient.family, record.patient.given) == (
        NHS,
        "DOE",
        ("Jane",),
    )
    assert record.referral.decision is True


def test_every_mapping_key_is_documented() -> None:
    """Every key of the format's vocabulary (_model.py) is named in mappings/README.md, and
    every field type has its options declared."""
    assert set(_model.TYPE_OPTIONS) == set(_types.TYPES)
    keys = {
        *(k for options in _model.INPUT_OPTIONS.values() for k in options),
        *_model.FIELD_KEYS,
        *_model.GROUP_OPTIONS,
        *_model.SCREENING_OPTIONS,
        *_model.SCREENING_ITEM_OPTIONS,
    }
    missing = sorted(k for k in keys if not re.search(rf"\b{re.escape(k)}\b", README))
    assert missing == []
