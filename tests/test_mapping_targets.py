"""Targets: one typed contract per record kind, imported directly, used the same by every path."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import pytest

from fhir_iapt.errors import MappingError
from fhir_iapt.mapping import load_mapping, map_record, read_source
from fhir_iapt.mapping.contract import MapTarget, TargetFields
from fhir_iapt.mapping.referral import FIELDS
from fhir_iapt.mapping.response import ResponseRecord
from fhir_iapt.mapping.targets import MAP_TARGETS
from fhir_iapt.records import ReferralRecord
from fhir_iapt.scoring.episode import EpisodeRecord
from fhir_iapt.sources import SourceRecord
from fhir_iapt.targets import TARGETS, target_of

PACKAGE = Path(__file__).resolve().parent.parent / "fhir_iapt"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_every_map_target_has_a_whole_target() -> None:
    """Each record kind a mapping can name has exactly one whole Target (gate and builder)."""
    assert set(MAP_TARGETS) == set(TARGETS) == {"referral", "episode", "questionnaire-response"}
    for name, target in TARGETS.items():
        assert target.contract is MAP_TARGETS[name]
        assert callable(target.gate)
        assert callable(target.build)


@pytest.mark.parametrize(
    ("mapping", "record_type"),
    [
        ("diabetes-csv", ReferralRecord),
        ("respiratory-xml", ReferralRecord),
        ("cardiac-json", ReferralRecord),
        ("iapt-outcomes", EpisodeRecord),
        ("questionnaire-response", ResponseRecord),
    ],
)
def test_map_record_returns_the_targets_record_type(mapping: str, record_type: type) -> None:
    """map_record gives the target's typed record for each bundled mapping's first example."""
    loaded = load_mapping(mapping)
    assert loaded.contract.record_type is record_type
    assert target_of(loaded).contract.record_type is record_type
    example = {
        "diabetes-csv": "diabetes.csv",
        "respiratory-xml": "respiratory.xml",
        "cardiac-json": "cardiac.json",
        "iapt-outcomes": "iapt-outcomes.csv",
        "questionnaire-response": "phq9-lhcforms-response.json",
    }[mapping]
    data = (EXAMPLES / example).read_bytes()
    first = next(
        r
        for r in read_source(io.BytesIO(data), name=example, mapping=loaded)
        if isinstance(r, SourceRecord)
    )
    assert isinstance(map_record(first, loaded), record_type)


def test_no_target_is_resolved_from_a_string() -> None:
    """No module resolves a "module:function" string with importlib (targets import directly)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "import_module"
                and path.name != "__init__.py"
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    # fhir_iapt/__init__.py loads public names lazily by module name (import cost), nothing else
    assert offenders == []


def test_a_target_read_whole_refuses_fields(tmp_path: Path) -> None:
    """A questionnaire-response mapping that adds fields: is refused with its file and line."""
    path = tmp_path / "qr-with-fields.yaml"
    path.write_text(
        "# QRs\nformat: 1\ntarget: questionnaire-response\ninput: {format: fhir}\n"
        "fields:\n  x: {from: y}\n",
        encoding="utf-8",
    )
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    rendered = json.dumps(caught.value.to_operation_outcome())
    assert "takes no fields" in rendered
    assert "qr-with-fields.yaml" in rendered


def test_a_target_reads_only_its_formats(tmp_path: Path) -> None:
    """A questionnaire-response mapping over CSV input is refused when it loads."""
    path = tmp_path / "qr-csv.yaml"
    path.write_text(
        "# QRs\nformat: 1\ntarget: questionnaire-response\ninput: {format: csv}\n", encoding="utf-8"
    )
    expected = "line 4 field input: the questionnaire-response target reads fhir"
    with pytest.raises(MappingError, match=expected):
        load_mapping(path)


def test_map_target_needs_exactly_one_way_to_make_its_record() -> None:
    """A MapTarget with both fill and read (or neither) is a programming error, caught early."""
    with pytest.raises(TypeError):
        MapTarget("x", dict, TargetFields(frozenset()))
    with pytest.raises(TypeError):
        MapTarget(
            "x", dict, TargetFields(frozenset()), fill=lambda v, at, s: v, read=lambda d, at: d
        )


def test_referral_fields_cover_the_canonical_record() -> None:
    """Every scalar of ReferralRecord / PatientData / ReferralData is a referral target field."""
    patient = {
        f"patient.{n}"
        for n in (
            "nhs_number",
            "family",
            "given",
            "birth_date",
            "sex",
            "gp_practice_ods",
            "nhs_number_verification",
        )
    }
    referral = {
        f"referral.{n}"
        for n in (
            "decision",
            "consent_to_refer",
            "consent_to_share_outcomes",
            "referrer_id",
            "referrer_id_system",
            "referrer_name",
            "source_snomed",
            "reason",
            "performer_ods",
        )
    }
    top = {"record_id", "clinic_ods", "event_date"}
    assert patient | referral | top <= FIELDS.scalars
    assert set(ReferralRecord.__dataclass_fields__) >= {"conditions", "context", "screenings"}
    assert FIELDS.groups["conditions"] == {"snomed", "display", "text"}
    assert FIELDS.screenings
