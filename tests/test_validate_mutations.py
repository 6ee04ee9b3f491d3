"""Every golden bundle stays valid, and every seeded mutant of one is invalid.

The goldens are what the examples convert to (``tests/data/golden``) and the outcome bundles
(``tests/data/outcomes``). A seeded generator applies one fault of each category of issue 9 at
a randomly chosen place where that fault applies: a dateTime without its timezone, a calendar-
invalid date, a broken id, an empty string, a null, an empty array, a removed required element
(R4 or profile), a wrong JSON type deep inside, an unknown element, a code outside a required
binding, a reference to a type the element does not allow, a dangling ``#`` or ``urn:uuid``
reference, a Quantity code without a system (qty-3), a profile's fixed value changed.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_iapt.fhir.validate import default_validator, has_errors

DATA = Path(__file__).resolve().parent / "data"
SEED = 20261201
PER_CATEGORY = 3  # mutants of each category per bundle (places drawn by the seeded generator)


def _goldens() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((DATA / "golden").glob("*/bundles.ndjson")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            out.append((f"{path.parent.name}:{number}", json.loads(line)))
    for path in sorted((DATA / "outcomes").glob("*.expected.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        bundles = [data] if data.get("resourceType") == "Bundle" else list(data.values())
        out.extend((f"{path.stem}:{i}", b) for i, b in enumerate(bundles, 1))
    return out


GOLDENS = _goldens()

Place = tuple[Any, Any]  # (container, key or index)


def _walk(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        root = root[part]
    return root


def _places(
    bundle: dict[str, Any], want: Callable[[tuple[Any, ...], Any], bool]
) -> list[tuple[Any, ...]]:
    return [p for p, v in _walk(bundle) if p and want(p, v)]


def _named(*names: str) -> Callable[[tuple[Any, ...], Any], bool]:
    return lambda p, v: p[-1] in names


_DATE_KEYS = (
    "authoredOn",
    "authored",
    "effectiveDateTime",
    "recordedDate",
    "birthDate",
    "dateTime",
    "issued",
    "onsetDateTime",
    "start",
    "end",
)
_ENTRY_RESOURCE_ROOT = 3  # ("entry", i, "resource")


def _in_resource(p: tuple[Any, ...]) -> bool:
    return len(p) > _ENTRY_RESOURCE_ROOT and p[0] == "entry" and p[2] == "resource"


#: Elements R4 (or the project profile every such resource is held to) requires.
_REQUIRED = {
    "ServiceRequest": (
        "status",
        "intent",
        "subject",
        "identifier",
        "code",
        "authoredOn",
        "requester",
    ),
    "Observation": ("status", "code"),
    "QuestionnaireResponse": ("status", "questionnaire", "subject", "authored"),
    "Condition": ("subject",),
    "Consent": ("status", "scope", "category"),
}


def _required(bundle: dict[str, Any]) -> Callable[[tuple[Any, ...], Any], bool]:
    def want(p: tuple[Any, ...], v: Any) -> bool:
        del v
        if p == ("type",):
            return True
        if len(p) == 4 and p[0] == "entry" and p[2] == "request":
            return p[3] in ("method", "url")
        if len(p) > 3 and p[-1] == "url" and isinstance(p[-2], int) and p[-3] == "extension":
            return True
        if len(p) == 4 and _in_resource(p):
            rtype = bundle["entry"][p[1]]["resource"]["resourceType"]
            return p[3] in _REQUIRED.get(rtype, ())
        return False

    return want


def _wrong_type(bundle: dict[str, Any], place: tuple[Any, ...]) -> None:
    parent, key = _get(bundle, place[:-1]), place[-1]
    value = parent[key]
    if isinstance(value, bool):
        parent[key] = "true"
    elif isinstance(value, int | float):
        parent[key] = str(value)
    elif isinstance(value, str):
        parent[key] = {"value": value}
    elif isinstance(value, dict):
        parent[key] = 7
    else:
        parent[key] = "x"


def _set(value: Any) -> Callable[[dict[str, Any], tuple[Any, ...]], None]:
    def mutate(bundle: dict[str, Any], place: tuple[Any, ...]) -> None:
        _get(bundle, place[:-1])[place[-1]] = copy.deepcopy(value)

    return mutate


def _delete(bundle: dict[str, Any], place: tuple[Any, ...]) -> None:
    del _get(bundle, place[:-1])[place[-1]]


def _add_unknown(bundle: dict[str, Any], place: tuple[Any, ...]) -> None:
    _get(bundle, place)["madeUpElement"] = "x"


def _drop_system(bundle: dict[str, Any], place: tuple[Any, ...]) -> None:
    del _get(bundle, place)["system"]


def _is_quantity(p: tuple[Any, ...], v: Any) -> bool:
    return isinstance(v, dict) and "code" in v and "system" in v and "value" in v


def _is_reference(p: tuple[Any, ...], v: Any) -> bool:
    return (
        len(p) > 1
        and p[-1] == "reference"
        and isinstance(v, str)
        and p[-2] in ("subject", "patient")
    )


#: category -> (where it applies, how to apply it)
CATEGORIES: dict[str, tuple[Any, Callable[[dict[str, Any], tuple[Any, ...]], None]]] = {
    "dateTime without timezone": (
        lambda p, v: p[-1] in _DATE_KEYS and isinstance(v, str),
        _set("2024-03-01T10:00:00"),
    ),
    "calendar-invalid date": (
        lambda p, v: p[-1] in _DATE_KEYS and isinstance(v, str),
        _set("2023-02-29"),
    ),
    "broken id": (
        lambda p, v: p[-1] == "id" and _in_resource(p) and len(p) == 4,
        _set("no spaces allowed"),
    ),
    "empty string": (lambda p, v: isinstance(v, str) and p[-1] != "div", _set("")),
    "null": (lambda p, v: not isinstance(v, dict | list), _set(None)),
    "empty array": (lambda p, v: isinstance(v, list), _set([])),
    "removed required element": (_required, _delete),  # bound to each bundle in _mutants
    "wrong JSON type, nested": (
        lambda p, v: _in_resource(p) and len(p) >= 6 and not isinstance(v, list),
        _wrong_type,
    ),
    "unknown element": (lambda p, v: isinstance(v, dict) and len(p) >= 2, _add_unknown),
    "code outside a required binding": (
        lambda p, v: (
            (p == ("type",) or p[-1] in ("status", "intent", "gender", "use", "method"))
            and isinstance(v, str)
        ),
        _set("banana"),
    ),
    "reference to a type not allowed": (_is_reference, _set("Medication/abc")),
    "dangling # reference": (_is_reference, _set("#missing")),
    "dangling urn:uuid reference": (
        lambda p, v: p[-1] == "reference" and isinstance(v, str) and v.startswith("urn:"),
        _set("urn:uuid:00000000-0000-4000-8000-000000000000"),
    ),
    "Quantity code without system (qty-3)": (_is_quantity, _drop_system),
    "profile's fixed value changed": (
        lambda p, v: (p[-1] == "intent" and v == "order") or (p[-1] == "code" and v == "{score}"),
        _set("plan"),
    ),
}


def _bind(where: Any, bundle: dict[str, Any]) -> Callable[[tuple[Any, ...], Any], bool]:
    found: Callable[[tuple[Any, ...], Any], bool] = where(bundle) if where is _required else where
    return found


def _mutants(
    bundle: dict[str, Any], rng: random.Random
) -> Iterator[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    for category, (where, apply) in CATEGORIES.items():
        places = _places(bundle, _bind(where, bundle))
        for place in rng.sample(places, min(PER_CATEGORY, len(places))):
            mutant = copy.deepcopy(bundle)
            apply(mutant, place)
            yield category, place, mutant


def test_goldens_are_found() -> None:
    """The goldens exist: referral bundles of 4 layouts and the outcome bundles."""
    assert len(GOLDENS) >= 25


@pytest.mark.parametrize(("name", "bundle"), GOLDENS, ids=[g[0] for g in GOLDENS])
def test_unmutated_golden_is_valid(name: str, bundle: dict[str, Any]) -> None:
    """The validator finds no error in a golden bundle as the pipeline wrote it.

    The LHC-Forms response claims a Questionnaire we do not ship: a warning (FI408) only.
    """
    issues = default_validator().validate_bundle(bundle)
    assert [(i.expression, i.diagnostics) for i in issues if i.severity != "warning"] == []
    assert {i.error_code for i in issues} <= {"FI408"}, name


@pytest.mark.parametrize(("name", "bundle"), GOLDENS, ids=[g[0] for g in GOLDENS])
def test_every_mutant_of_a_golden_is_invalid(name: str, bundle: dict[str, Any]) -> None:
    """Each seeded fault, wherever it lands, makes the bundle invalid."""
    rng = random.Random(f"{SEED}:{name}")  # noqa: S311 - a reproducible test seed
    missed = []
    count = 0
    for category, place, mutant in _mutants(bundle, rng):
        count += 1
        if not has_errors(default_validator().validate_bundle(mutant)):
            missed.append((category, place))
    assert count > 0
    assert missed == []


def test_every_category_lands_somewhere() -> None:
    """Each mutation category finds a place to apply in at least one golden bundle."""
    unused = {
        c
        for c, (where, _) in CATEGORIES.items()
        if not any(_places(b, _bind(where, b)) for _, b in GOLDENS)
    }
    assert unused == set()
