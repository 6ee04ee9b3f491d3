"""The error-code CodeSystem registers exactly the FIxxx codes the package uses.

The package's source is scanned for every ``FI`` + three digits literal (``error_code="FI301"``,
``code = "FI100"`` class attributes, module constants such as ``STRUCTURE = "FI401"``, codes named
in docstrings), so a new code cannot be added without registering it in
``profiles/CodeSystem-error-code.json``, and a code the package stopped using cannot linger there.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

import fhir_iapt
from fhir_iapt import errors
from fhir_iapt._data import profiles_dir

_CODE = re.compile(r"\bFI\d{3}\b")
_PACKAGE = Path(fhir_iapt.__file__).resolve().parent


def _code_system() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (profiles_dir() / "CodeSystem-error-code.json").read_text(encoding="utf-8")
    )
    return data


def _defined() -> set[str]:
    return {str(c["code"]) for c in _code_system()["concept"]}


def _used_in_package() -> dict[str, list[str]]:
    """Code -> the package files that mention it."""
    used: dict[str, list[str]] = {}
    for path in sorted(_PACKAGE.rglob("*.py")):
        for code in sorted(set(_CODE.findall(path.read_text(encoding="utf-8")))):
            used.setdefault(code, []).append(str(path.relative_to(_PACKAGE)))
    return used


def _error_classes() -> list[type[errors.FhirIaptError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.FhirIaptError)
    ]


def test_scan_finds_codes_the_package_is_known_to_use() -> None:
    """The source scan sees codes from class attributes, error_code= arguments and constants."""
    used = _used_in_package()
    assert "errors.py" in used["FI100"]  # ReadError.code
    assert "mapping/_engine.py" in used["FI302"]  # error_code="FI302"
    assert "fhir/validate.py" in used["FI401"]  # STRUCTURE = "FI401"
    assert "consent.py" in used["FI810"]  # UNREADABLE_REGISTER: Final = "FI810"


def test_every_code_the_package_uses_is_registered() -> None:
    """No FIxxx literal in fhir_iapt/ is missing from the error-code CodeSystem."""
    missing = {code: files for code, files in _used_in_package().items() if code not in _defined()}
    assert missing == {}


def test_code_system_has_no_code_the_package_never_uses() -> None:
    """Every registered code is used somewhere in fhir_iapt/."""
    assert _defined() - set(_used_in_package()) == set()


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_each_exception_class_code_is_registered(cls: type[errors.FhirIaptError]) -> None:
    """The stage code of every exception class in errors.py is in the CodeSystem."""
    assert cls.code in _defined()


def test_exception_classes_are_the_documented_tree() -> None:
    """errors.py has the exception classes its docstring lists (so the check above covers them)."""
    names = {cls.__name__ for cls in _error_classes()}
    assert names == {
        "FhirIaptError",
        "ReadError",
        "MappingError",
        "RecordError",
        "ScoringError",
        "ProfileError",
        "EmitError",
        "UnwritableRecordError",
        "DeliveryError",
        "TransportError",
        "ServerError",
        "AuthError",
        "ConfigError",
        "RelayError",
        "RequestRefusedError",
        "AccessDeniedError",
        "OutboxUnavailableError",
    }


def test_code_system_is_complete_with_unique_described_codes() -> None:
    """content is complete, count matches, and each code is unique with a display and definition."""
    cs = _code_system()
    assert cs["url"] == errors.ERROR_CODE_SYSTEM
    assert cs["content"] == "complete"
    concepts = cs["concept"]
    codes = [c["code"] for c in concepts]
    assert len(codes) == len(set(codes))
    assert cs["count"] == len(codes)
    for concept in concepts:
        assert _CODE.fullmatch(concept["code"]), concept["code"]
        assert concept.get("display", "").strip(), concept["code"]
        assert concept.get("definition", "").strip(), concept["code"]


def test_definitions_name_the_stage_of_the_code_range() -> None:
    """Each definition starts with the stage its code range belongs to (errors.py's tree)."""
    stages = {
        "0": ("General",),
        "1": ("Read",),
        "2": ("Map",),
        "3": ("Map", "Score", "Outcomes", "Build"),
        "4": ("Validate",),
        "6": ("Emit",),
        "7": ("Push",),
        "8": ("Config", "Relay"),
    }
    for concept in _code_system()["concept"]:
        code, definition = concept["code"], concept["definition"]
        assert definition.startswith(stages[code[2]]), code


def test_shipped_code_system_is_generated_from_the_registry() -> None:
    """profiles/CodeSystem-error-code.json is exactly what fhir_iapt.error_codes renders
    (regenerate with ``python -m fhir_iapt.error_codes``)."""
    from fhir_iapt.error_codes import render

    shipped = (profiles_dir() / "CodeSystem-error-code.json").read_text(encoding="utf-8")
    assert shipped == render()


def test_registry_codes_are_unique_and_in_their_stage_range() -> None:
    """The registry lists each code once, in code order."""
    from fhir_iapt.error_codes import ERROR_CODES

    codes = [entry.code for entry in ERROR_CODES]
    assert codes == sorted(set(codes))


#: Exceptions used only as internal signals inside one module, always caught there and turned
#: into Issues of a FhirIaptError (they never reach a caller).
INTERNAL_SIGNALS = {
    "fhir_iapt.mapping._types.Invalid",
    "fhir_iapt.mapping._tables.TableProblem",
    "fhir_iapt.relay.settings._NotJson",
    "fhir_iapt.sources._csv._RowTooLong",
    "fhir_iapt.sources._json.TooDeep",
    "fhir_iapt.sources._json.TooLong",
    "fhir_iapt.sources._json.TooManyDigits",
}


def test_every_error_class_is_in_the_fhir_iapt_error_tree() -> None:
    """Every exception class the package defines (the relay's intake and auth failures too) is a
    FhirIaptError, apart from the named internal signals."""
    import importlib
    import pkgutil

    outside = set()
    for info in pkgutil.walk_packages(fhir_iapt.__path__, "fhir_iapt."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                obj.__module__ == module.__name__
                and issubclass(obj, BaseException)
                and not issubclass(obj, errors.FhirIaptError)
            ):
                outside.add(f"{obj.__module__}.{obj.__qualname__}")
    assert outside == INTERNAL_SIGNALS
