"""The JSON Schema of the mapping format, generated from what the loader checks files against.

Keys and what they mean come from the format's vocabulary (:mod:`fhir_iapt.mapping._model`:
``INPUT_OPTIONS``, ``COMMON_FIELD_OPTIONS``, ``TYPE_OPTIONS``, ``GROUP_OPTIONS``,
``SCREENING_OPTIONS``, ``SCREENING_ITEM_OPTIONS``), the targets and their fields from
:data:`fhir_iapt.mapping.targets.MAP_TARGETS`, the field types from ``_types.TYPES``, the input
formats from :data:`fhir_iapt.sources.FORMATS` and the instruments from
``tables/instruments.yaml``. Only the shape of each option's value is said here
(:data:`VALUES`), and an option of the vocabulary without one stops the generation, so a new
option cannot be left out of the schema.

The schema is for editors (completion, hover text, checking as you type); the loader stays the
check that counts (it also reads lookup tables, compiles XPaths and checks defaults)::

    python -m fhir_iapt.mapping.schema > mappings/mapping.schema.json

tests/test_mapping_schema.py checks the committed file is what this prints.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fhir_iapt.mapping._compile import instrument_shapes
from fhir_iapt.mapping._loader import _MAX_SKIP_LINES, FORMAT_VERSION
from fhir_iapt.mapping._model import (
    COMMON_FIELD_OPTIONS,
    GROUP_OPTIONS,
    INPUT_OPTIONS,
    SCREENING_ITEM_OPTIONS,
    SCREENING_OPTIONS,
    TYPE_OPTIONS,
)
from fhir_iapt.mapping._types import TYPES
from fhir_iapt.mapping.targets import MAP_TARGETS

_TEXT: dict[str, Any] = {"type": "string", "minLength": 1}
_NUMBER: dict[str, Any] = {
    "anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^[+-]?[0-9]+(\.[0-9]+)?$"}]
}
_ISO_DATE: dict[str, Any] = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}

#: The shape of each option's value, by key (``(type, key)`` where it depends on the type).
VALUES: dict[str | tuple[str, str], dict[str, Any]] = {
    # input:
    "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
    "quotechar": {"type": "string", "minLength": 1, "maxLength": 1},
    "encoding": _TEXT,
    "skip_lines": {"type": "integer", "minimum": 0, "maximum": _MAX_SKIP_LINES},
    "layout": {"enum": ["auto", "array", "ndjson"]},
    "record": {"type": "string", "pattern": "^/[^/]"},
    "namespaces": {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"pattern": r"^(?![Xx][Mm][Ll])[^\W\d][\w.-]*$"},
        "additionalProperties": _TEXT,
    },
    # fields
    "from": _TEXT,
    "type": {"enum": list(TYPES)},
    "required": {"type": "boolean"},
    "optional_column": {"type": "boolean"},
    "default": {"type": ["string", "number", "boolean"]},
    "list": {"type": "boolean"},
    "max_length": {"type": "integer", "minimum": 1},
    ("int", "min"): _NUMBER,
    ("int", "max"): _NUMBER,
    ("decimal", "min"): _NUMBER,
    ("decimal", "max"): _NUMBER,
    ("date", "min"): _ISO_DATE,
    "unit": _TEXT,
    "decimal_separator": {"enum": [".", ","]},
    "formats": {"type": "array", "minItems": 1, "items": _TEXT},
    "allow_future": {"type": "boolean"},
    "table": _TEXT,
    "separators": _TEXT,
    "display_to": _TEXT,
    "values": {"type": "array", "minItems": 1, "items": _TEXT},
    "given_to": _TEXT,
}

#: The options a type needs (the loader refuses the field without them).
_NEEDS = {"code": ["table"], "name": ["given_to"]}


def _value(key: str, type_name: str | None = None) -> dict[str, Any]:
    found = VALUES.get((type_name, key)) if type_name else None
    if found is None:
        found = VALUES.get(key)
    if found is None:
        raise KeyError(
            f"the mapping vocabulary has the option {key!r}"
            + (f" ({type_name})" if type_name else "")
            + ": say the shape of its value in fhir_iapt/mapping/schema.py VALUES"
        )
    return dict(found)


def _described(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, **schema}


def _input() -> dict[str, Any]:
    forms = []
    for fmt, options in INPUT_OPTIONS.items():
        properties: dict[str, Any] = {"format": {"const": fmt, "description": f"{fmt} input"}}
        for key, meaning in options.items():
            if key != "format":
                properties[key] = _described(_value(key), meaning)
        form: dict[str, Any] = {
            "type": "object",
            "required": ["format"],
            "properties": properties,
            "additionalProperties": False,
        }
        if fmt == "xml":
            form["required"] = ["format", "record"]
        forms.append(form)
    return {"description": "how the export is read", "oneOf": forms}


def _field_spec() -> dict[str, Any]:
    meanings: dict[str, list[str]] = {}
    for key, meaning in COMMON_FIELD_OPTIONS.items():
        meanings[key] = [meaning]
    for type_name, options in TYPE_OPTIONS.items():
        for key, meaning in options.items():
            meanings.setdefault(key, []).append(f"{type_name}: {meaning}")
    properties: dict[str, Any] = {}
    for key, said in meanings.items():
        shapes = [_value(key, t) for t, options in TYPE_OPTIONS.items() if key in options] or [
            _value(key)
        ]
        unique = [s for i, s in enumerate(shapes) if s not in shapes[:i]]
        shape = unique[0] if len(unique) == 1 else {"anyOf": unique}
        properties[key] = _described(shape, "; ".join(said))
    by_type = []
    for type_name, options in TYPE_OPTIONS.items():
        allowed = [*COMMON_FIELD_OPTIONS, *options]
        then: dict[str, Any] = {
            "propertyNames": {"enum": allowed},
            "properties": {key: _value(key, type_name) for key in options},
        }
        if _NEEDS.get(type_name):
            then["required"] = _NEEDS[type_name]
        condition: dict[str, Any] = {
            "properties": {"type": {"const": type_name}},
            "required": ["type"],
        }
        if type_name == "string":  # also the type of a field that names none
            condition = {
                "anyOf": [
                    {"properties": {"type": {"const": "string"}}, "required": ["type"]},
                    {"not": {"required": ["type"]}},
                ]
            }
        by_type.append({"if": condition, "then": then})
    return {
        "type": "object",
        "required": ["from"],
        "properties": properties,
        "additionalProperties": False,
        "allOf": by_type,
    }


def _named(names: list[str]) -> dict[str, Any]:
    """Keys that are ``names``, or start with ``_`` (read and checked, not passed on)."""
    return {"anyOf": [{"enum": names}, {"pattern": "^_"}]}


def _group(item_fields: list[str] | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "object",
        "additionalProperties": {"$ref": "#/$defs/field"},
    }
    if item_fields is not None:
        fields["propertyNames"] = _named(item_fields)
    return {
        "type": "object",
        "properties": {
            "each": _described(_TEXT, GROUP_OPTIONS["each"]),
            "fields": {"description": GROUP_OPTIONS["fields"], **fields},
            "items": {
                "description": GROUP_OPTIONS["items"],
                "type": "array",
                "minItems": 1,
                "items": fields,
            },
        },
        "additionalProperties": False,
        "oneOf": [
            {"required": ["fields"], "not": {"required": ["items"]}},
            {
                "required": ["items"],
                "not": {"anyOf": [{"required": ["fields"]}, {"required": ["each"]}]},
            },
        ],
    }


def _screenings() -> dict[str, Any]:
    instruments = list(instrument_shapes())
    item_properties: dict[str, Any] = {
        "instrument": {"enum": instruments},
        "answers": {"anyOf": [_TEXT, {"type": "array", "minItems": 1, "items": _TEXT}]},
        "split": _TEXT,
        "date": {"$ref": "#/$defs/field"},
        "answer_table": _TEXT,
        "unscored_answer_table": _TEXT,
    }
    counts = [
        {
            "if": {"properties": {"instrument": {"const": name}}, "required": ["instrument"]},
            "then": {
                "properties": {
                    "answers": {
                        "if": {"type": "array"},
                        "then": {"minItems": shape.scored, "maxItems": shape.total},
                    }
                }
            },
        }
        for name, shape in instrument_shapes().items()
    ]
    item = {
        "type": "object",
        "required": ["instrument", "answers"],
        "allOf": counts,
        "properties": {
            key: _described(item_properties[key], meaning)
            for key, meaning in SCREENING_ITEM_OPTIONS.items()
        },
        "additionalProperties": False,
    }
    element_answers = {
        "type": "object",
        "required": ["each", "item", "value"],
        "properties": {"each": _TEXT, "item": _TEXT, "value": _TEXT},
        "additionalProperties": False,
    }
    block_properties: dict[str, Any] = {
        "date": {"$ref": "#/$defs/field"},
        "items": {"type": "array", "items": item},
        "each": _TEXT,
        "instrument": {"$ref": "#/$defs/field"},
        "answers": element_answers,
        "answer_table": _TEXT,
        "unscored_answer_table": _TEXT,
    }
    return {
        "type": "object",
        "properties": {
            key: _described(block_properties[key], meaning)
            for key, meaning in SCREENING_OPTIONS.items()
        },
        "additionalProperties": False,
        "oneOf": [
            {
                "required": ["items"],
                "not": {
                    "anyOf": [
                        {"required": [k]}
                        for k in (
                            "each",
                            "instrument",
                            "answers",
                            "answer_table",
                            "unscored_answer_table",
                        )
                    ]
                },
            },
            {"required": ["each", "instrument", "answers"], "not": {"required": ["items"]}},
        ],
    }


def _per_target() -> list[dict[str, Any]]:
    out = []
    for name, contract in MAP_TARGETS.items():
        declared = contract.fields
        then: dict[str, Any]
        if contract.read is not None:
            then = {
                "not": {
                    "anyOf": [
                        {"required": [k]} for k in ("constants", "fields", "groups", "screenings")
                    ]
                }
            }
        else:
            scalars = sorted(declared.scalars)
            groups = {
                group: _group(sorted(fields)) for group, fields in sorted(declared.groups.items())
            }
            then = {
                "required": ["source_system", "fields"],
                "properties": {
                    "constants": {"propertyNames": {"enum": scalars}},
                    "fields": {"propertyNames": _named(scalars)},
                    "groups": {
                        "propertyNames": {"enum": sorted(declared.groups)},
                        "properties": groups,
                    },
                },
            }
            if not declared.screenings:
                then["properties"]["screenings"] = False
            then["allOf"] = [
                {
                    "anyOf": [
                        {"required": ["fields"], "properties": {"fields": {"required": [f]}}},
                        {"required": ["constants"], "properties": {"constants": {"required": [f]}}},
                    ]
                }
                for f in sorted(declared.required)
            ]
        if contract.input_formats:
            then.setdefault("properties", {})["input"] = {
                "properties": {"format": {"enum": sorted(contract.input_formats)}}
            }
        condition = {"properties": {"target": {"const": name}}, "required": ["target"]}
        out.append({"if": condition, "then": then})
    return out


def mapping_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a mapping file, read as YAML."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Generated by `python -m fhir_iapt.mapping.schema` from the vocabulary the "
        "mapping loader checks files against; do not edit (mappings/README.md, 'Editors').",
        "title": f"fhir-iapt mapping file (format {FORMAT_VERSION})",
        "description": "Where each field of a clinic export goes (mappings/README.md). The "
        "loader also checks what a schema cannot: the header comment, lookup tables, XPaths, "
        "defaults and units.",
        "type": "object",
        "required": ["format", "target", "input"],
        "properties": {
            "format": {"description": "the mapping format version", "const": FORMAT_VERSION},
            "name": _described(_TEXT, "the mapping's name (default: the file name without .yaml)"),
            "target": {
                "description": "the record kind the export's records become",
                "enum": list(MAP_TARGETS),
            },
            "input": {"$ref": "#/$defs/input"},
            "source_system": {
                "description": "the identifier system of the export's record ids",
                "type": "string",
                "pattern": "^(https?://|urn:)",
            },
            "constants": {
                "description": "target field -> the value the export lacks",
                "type": "object",
                "additionalProperties": {"type": ["string", "integer", "boolean"]},
            },
            "fields": {
                "description": "target field -> field spec",
                "type": "object",
                "additionalProperties": {"$ref": "#/$defs/field"},
            },
            "groups": {
                "description": "repeating groups: group name -> group spec",
                "type": "object",
                "additionalProperties": _group(),
            },
            "screenings": {"$ref": "#/$defs/screenings"},
        },
        "additionalProperties": False,
        "allOf": _per_target(),
        "$defs": {
            "input": _input(),
            "field": {
                "description": "a field spec, or a source path (short for {from: <it>, type: "
                "string})",
                "anyOf": [_TEXT, {"$ref": "#/$defs/field_spec"}],
            },
            "field_spec": _field_spec(),
            "screenings": _described(_screenings(), "the screening instruments"),
        },
    }


def main() -> None:
    """Print the schema (what mappings/mapping.schema.json holds)."""
    sys.stdout.write(json.dumps(mapping_schema(), indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()


__all__ = ["VALUES", "main", "mapping_schema"]
