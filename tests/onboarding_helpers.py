"""Helpers for the `mapping init` tests: the check that no value of a sample reached an
output."""

from __future__ import annotations

import yaml

from fhir_iapt import _data


def assert_no_values(text: str, values: list[str]) -> None:
    """No value of the sample is in ``text``; values of two characters or fewer, and terms of
    the bundled lookup tables (the vocabulary, not patient data), are too short or too common
    to tell."""
    vocabulary = set()
    for table in (_data.mappings_dir() / "tables").glob("*.yaml"):
        terms = (yaml.safe_load(table.read_text("utf-8")) or {}).get("terms") or {}
        vocabulary |= {str(t).casefold() for t in terms}
    checked = 0
    for value in values:
        value = value.strip()
        if len(value) <= 2 or value.casefold() in vocabulary:
            continue
        checked += 1
        assert value not in text, f"a value of the sample ({value!r}) is in the output"
    assert checked, "no value of the sample was long enough to look for"
