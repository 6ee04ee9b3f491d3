"""The JSON Schema of the mapping format (issue 14): generated from the vocabulary the loader
checks files against, committed as mappings/mapping.schema.json, and in step with the loader:
every mapping that loads validates, and mappings the loader refuses for their keys, targets,
types or counts are refused by the schema too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fhir_iapt import _data
from fhir_iapt.errors import MappingError
from fhir_iapt.mapping import _model, load_mapping, propose_mapping
from fhir_iapt.mapping.schema import VALUES, mapping_schema
from fhir_iapt.mapping.targets import MAP_TARGETS

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "mappings" / "mapping.schema.json"
TEST_MAPPINGS = ROOT / "tests" / "data" / "mappings"
#: broken mappings whose problem only the loader can see (an XPath that does not compile, a
#: lookup table that is not there, the header comment): the schema checks shapes, not these
LOADER_ONLY = {"bad-xpath.yaml", "missing-table.yaml", "no-header.yaml"}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(COMMITTED.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: jsonschema.Draft202012Validator, data: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]


def test_the_committed_schema_is_the_generated_one() -> None:
    """mappings/mapping.schema.json is exactly what `python -m fhir_iapt.mapping.schema`
    prints (regenerate it after changing the vocabulary)."""
    printed = subprocess.run(
        [sys.executable, "-m", "fhir_iapt.mapping.schema"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert printed == COMMITTED.read_text("utf-8")
    assert json.loads(printed) == mapping_schema()


def test_every_mapping_that_loads_validates(
    validator: jsonschema.Draft202012Validator, tmp_path: Path
) -> None:
    """The bundled mappings, the test layouts and a proposal of mapping init all load and
    all validate against the schema."""
    files = sorted(_data.mappings_dir().glob("*.yaml")) + sorted(TEST_MAPPINGS.glob("*.yaml"))
    proposal = propose_mapping(ROOT / "examples" / "cardiac.json", "referral")
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text(proposal.text, encoding="utf-8")
    files.append(proposed)
    assert len(files) >= 9
    for path in files:
        load_mapping(path)
        data = yaml.safe_load(path.read_text("utf-8"))
        assert _errors(validator, data) == [], path.name


def test_mappings_the_loader_refuses_for_their_shape_the_schema_refuses(
    validator: jsonschema.Draft202012Validator,
) -> None:
    """Each broken test mapping (an unknown key, target, target field, type or format
    version, a required field missing, too few answer columns) fails to load and fails the
    schema, but for the few only the loader can check (LOADER_ONLY)."""
    broken = sorted((TEST_MAPPINGS / "broken").glob("*.yaml"))
    checked = 0
    for path in broken:
        with pytest.raises(MappingError):
            load_mapping(path)
        try:
            data = yaml.safe_load(path.read_text("utf-8"))
        except yaml.YAMLError:
            continue  # not YAML at all: an editor says so before any schema
        if path.name in LOADER_ONLY:
            continue
        assert _errors(validator, data), f"{path.name} loads as broken but passes the schema"
        checked += 1
    assert checked >= 6


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"fields": {"record_id": {"from": "id", "type": "date", "table": "sex"}}}, "table"),
        ({"fields": {"record_id": {"from": "id", "type": "code"}}}, "table"),
        ({"fields": {"patient.family": {"from": "n", "type": "name"}}}, "given_to"),
        ({"input": {"format": "csv", "record": "/A/B"}}, "record"),
        ({"input": {"format": "xml"}}, "record"),
        ({"groups": {"conditions": {"fields": {"colour": "c"}}}}, "colour"),
        ({"groups": {"conditions": {"each": "x", "items": [{"snomed": "s"}]}}}, "items"),
        ({"screenings": {"items": [{"instrument": "PHQ-99", "answers": "x"}]}}, "PHQ-99"),
        ({"constants": {"nhs": "x"}}, "nhs"),
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(
    validator: jsonschema.Draft202012Validator, tmp_path: Path, change: dict[str, Any], where: str
) -> None:
    """One wrong option at a time on a good mapping: the loader refuses it, and so does the
    schema (an option of another type, a type without what it needs, an option of another
    input format, an unknown item field, a group both ways, an unknown instrument, a constant
    for no field)."""
    base = yaml.safe_load((_data.mappings_dir() / "diabetes-csv.yaml").read_text("utf-8"))
    broken = {**base, **change}
    if "fields" in change:
        broken["fields"] = {**base["fields"], **change["fields"]}
    path = tmp_path / "changed.yaml"
    path.write_text("# changed: one wrong option.\n" + yaml.safe_dump(broken), encoding="utf-8")
    with pytest.raises(MappingError):
        load_mapping(path)
    errors = _errors(validator, broken)
    assert errors, "the schema accepts it"


def test_every_option_of_the_vocabulary_is_in_the_schema_with_its_meaning() -> None:
    """Each key of the vocabulary the loader checks is a property of the schema where it
    applies, described by what the vocabulary says it means (an editor's hover text)."""
    schema = mapping_schema()
    defs = schema["$defs"]
    spec = defs["field_spec"]["properties"]
    for key, meaning in _model.COMMON_FIELD_OPTIONS.items():
        assert meaning in spec[key]["description"]
    for type_name, options in _model.TYPE_OPTIONS.items():
        for key, meaning in options.items():
            assert f"{type_name}: {meaning}" in spec[key]["description"]
    forms = {f["properties"]["format"]["const"]: f for f in defs["input"]["oneOf"]}
    for fmt, options in _model.INPUT_OPTIONS.items():
        assert set(forms[fmt]["properties"]) == set(options)
    screening = defs["screenings"]["properties"]
    assert set(screening) == set(_model.SCREENING_OPTIONS)
    assert set(screening["items"]["items"]["properties"]) == set(_model.SCREENING_ITEM_OPTIONS)
    assert schema["properties"]["target"]["enum"] == list(MAP_TARGETS)


def test_an_option_without_a_value_shape_stops_the_generation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new option in the vocabulary with no shape in VALUES is an error naming it, not a
    schema that silently lacks it."""
    monkeypatch.setitem(_model.TYPE_OPTIONS, "ods", {"strict": "a new option"})
    monkeypatch.setattr("fhir_iapt.mapping.schema.TYPE_OPTIONS", _model.TYPE_OPTIONS)
    assert "strict" not in VALUES
    with pytest.raises(KeyError, match="strict"):
        mapping_schema()


def test_the_editor_line_is_a_comment_the_loader_accepts(tmp_path: Path) -> None:
    """A mapping opening with the `# yaml-language-server: $schema=...` line README documents
    loads as it did without it, and the line names the committed schema."""
    readme = (ROOT / "mappings" / "README.md").read_text("utf-8")
    [line] = {row for row in readme.splitlines() if row.startswith("# yaml-language-server:")}
    target = line.split("$schema=", 1)[1].strip()
    assert (ROOT / "mappings" / target).resolve() == COMMITTED.resolve()
    original = (_data.mappings_dir() / "cardiac-json.yaml").read_text("utf-8")
    path = tmp_path / "cardiac-json.yaml"
    path.write_text(f"{line}\n{original}", encoding="utf-8")
    with_line, without = load_mapping(path), load_mapping("cardiac-json")
    assert [f.target for f in with_line.fields] == [f.target for f in without.fields]
    assert with_line.input_options == without.input_options
