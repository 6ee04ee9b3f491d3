"""Mutation check of fhir_iapt/nhs_number.py: every small change to it breaks a case below.

The module is parsed with ``ast``; each mutant changes one thing (a comparison operator flipped,
an integer constant +1 or -1, ``and``/``or`` swapped, a slice bound added or dropped, a ``not``
dropped, ``+``/``-`` swapped, a ``return`` of a bool flipped or forced), is executed as a module
of its own, and is run against the case table. A mutant is killed when any case gives another
result (or raises where the real module does not). Expected results are DOMAIN.md's rule worked
by hand: digits 1-9 x weights 10..2, summed; check = 11 - (sum mod 11); 11 -> 0; 10 -> invalid.
"""

from __future__ import annotations

import ast
import copy
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fhir_iapt import nhs_number

SOURCE = Path(nhs_number.__file__).read_text(encoding="utf-8")

ARABIC_9990000018 = "\u0669\u0669\u0669\u0660\u0660\u0660\u0660\u0660\u0661\u0668"
FULLWIDTH_9990000018 = "".join(chr(0xFF10 + int(d)) for d in "9990000018")

#: (function, argument, expected result)
CASES: list[tuple[str, str, Any]] = [
    # valid, 999 test range: 9x10 + 9x9 + 9x8 + 1x2 = 245; 245 mod 11 = 3; 11 - 3 = 8
    ("is_valid_nhs_number", "9990000018", True),
    # 90 + 81 + 72 + 3x6 + 7x5 + 9x4 + 1x3 + 4x2 = 343; 343 mod 11 = 2; check 9
    ("is_valid_nhs_number", "9990379149", True),
    # DOMAIN.md's examples (digits 4 and 7-9 non-zero: every weight matters somewhere)
    ("is_valid_nhs_number", "9000000009", True),
    ("is_valid_nhs_number", "9912003888", True),
    # wrong check digit, one either side
    ("is_valid_nhs_number", "9990000017", False),
    ("is_valid_nhs_number", "9990000019", False),
    ("is_valid_nhs_number", "9990379148", False),
    # 5x4 + 1x2 = 22; 22 mod 11 = 0; 11 -> 0
    ("is_valid_nhs_number", "0000005010", True),
    ("is_valid_nhs_number", "0000005011", False),
    # 243 mod 11 = 1: check 10, so no 999000000x is valid (nor 000000040x: 12 mod 11 = 1)
    *(("is_valid_nhs_number", f"999000000{d}", False) for d in range(10)),
    ("is_valid_nhs_number", "0000000401", False),
    # 9 and 11 digits; 11 digits whose first (or last) 10 are a valid number
    ("is_valid_nhs_number", "999000001", False),
    ("is_valid_nhs_number", "99900000180", False),
    ("is_valid_nhs_number", "09990000018", False),
    ("is_valid_nhs_number", "", False),
    # non-ASCII digits (int() would read them) and spaces (int() would choke on them)
    ("is_valid_nhs_number", ARABIC_9990000018, False),
    ("is_valid_nhs_number", FULLWIDTH_9990000018, False),
    ("is_valid_nhs_number", "999 000 0018", False),
    ("is_valid_nhs_number", "99900 0018", False),
    ("is_valid_nhs_number", "999000001O", False),
    # check_digit on its own
    ("check_digit", "999000001", 8),
    ("check_digit", "999037914", 9),
    ("check_digit", "900000000", 9),
    ("check_digit", "000000501", 0),
    ("check_digit", "000000040", None),
    ("check_digit", "999000000", None),
    # the normal form
    ("normalise_nhs_number", "999 000 0018", "9990000018"),
    ("normalise_nhs_number", " 9990000018\n", "9990000018"),
    ("normalise_nhs_number", "999 000 0017", None),
    ("normalise_nhs_number", "999 000 0018 0", None),
    ("normalise_nhs_number", ARABIC_9990000018, None),
]

#: Mutants no input can tell from the real module, each with the reason. ``check_digit``
#: multiplies with ``map(operator.mul, digits, _WEIGHTS)``, which stops at the 9 weights, and
#: ``is_valid_nhs_number`` has already required exactly 10 ASCII digits: handing it all 10
#: digits instead of the first 9 gives the same sum.
EQUIVALENT = {
    "is_valid_nhs_number: slice upper 9 -> 10": "map() stops at the 9 weights",
    "is_valid_nhs_number: slice upper dropped": "map() stops at the 9 weights",
}

_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}

Mutate = Callable[[ast.AST, dict[int, ast.AST]], None]


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _replace(node: ast.AST, new: ast.AST, parents: dict[int, ast.AST]) -> None:
    """Put ``new`` where ``node`` is in its parent."""
    parent = parents[id(node)]
    for name, value in ast.iter_fields(parent):
        if value is node:
            setattr(parent, name, new)
            return
        if isinstance(value, list) and any(item is node for item in value):
            value[next(i for i, item in enumerate(value) if item is node)] = new
            return
    raise AssertionError("node not found in its parent")


def _function_of(node: ast.AST, parents: dict[int, ast.AST]) -> str:
    current: ast.AST | None = node
    while current is not None and not isinstance(current, ast.FunctionDef):
        current = parents.get(id(current))
    return current.name if isinstance(current, ast.FunctionDef) else "module"


def _returns_bool(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    current: ast.AST | None = node
    while current is not None and not isinstance(current, ast.FunctionDef):
        current = parents.get(id(current))
    return (
        isinstance(current, ast.FunctionDef)
        and isinstance(current.returns, ast.Name)
        and current.returns.id == "bool"
    )


def _sites(node: ast.AST, parents: dict[int, ast.AST]) -> Iterator[tuple[str, Mutate]]:
    """(what the mutant changes, how to apply it to this node) for every mutant of ``node``."""
    if isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            flipped = _FLIP[type(op)]

            def flip(n: Any, _p: Any, index: int = index, flipped: Any = flipped) -> None:
                n.ops[index] = flipped()

            yield f"{type(op).__name__} -> {flipped.__name__}", flip
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        for delta in (1, -1):

            def shift(n: Any, _p: Any, delta: int = delta) -> None:
                n.value += delta

            yield f"constant {node.value} -> {node.value + delta}", shift
    elif isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And

        def swap(n: Any, _p: Any, other: Any = other) -> None:
            n.op = other()

        yield f"{type(node.op).__name__} -> {other.__name__}", swap
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
        other_op = ast.Sub if isinstance(node.op, ast.Add) else ast.Add

        def arith(n: Any, _p: Any, other_op: Any = other_op) -> None:
            n.op = other_op()

        yield f"{type(node.op).__name__} -> {other_op.__name__}", arith
    elif isinstance(node, ast.Slice):
        for bound in ("lower", "upper"):
            value = getattr(node, bound)
            if value is None:
                new_bound = 1 if bound == "lower" else -1

                def add(n: Any, _p: Any, bound: str = bound, new_bound: int = new_bound) -> None:
                    setattr(n, bound, ast.Constant(new_bound))

                yield f"slice {bound} added ({new_bound})", add
            else:
                if isinstance(value, ast.Constant) and type(value.value) is int:
                    for delta in (1, -1):

                        def move(n: Any, _p: Any, bound: str = bound, delta: int = delta) -> None:
                            getattr(n, bound).value += delta

                        yield f"slice {bound} {value.value} -> {value.value + delta}", move

                def drop(n: Any, _p: Any, bound: str = bound) -> None:
                    setattr(n, bound, None)

                yield f"slice {bound} dropped", drop
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):

        def no_not(n: Any, p: Any) -> None:
            _replace(n, n.operand, p)

        yield "not dropped", no_not
    elif isinstance(node, ast.Return) and node.value is not None:
        value = node.value
        if isinstance(value, ast.Constant) and type(value.value) is bool:

            def negate(n: Any, _p: Any) -> None:
                n.value = ast.Constant(not n.value.value)

            yield f"return {value.value} -> {not value.value}", negate
        elif _returns_bool(node, parents):
            for forced in (True, False):

                def force(n: Any, _p: Any, forced: bool = forced) -> None:
                    n.value = ast.Constant(forced)

                yield f"return forced {forced}", force


def mutants() -> Iterator[tuple[str, int, types.ModuleType]]:
    """Every mutant of nhs_number.py as a module, named ``function: change``, with its line."""
    tree = ast.parse(SOURCE)
    parents = _parents(tree)
    nodes = list(ast.walk(tree))
    for index, node in enumerate(nodes):
        if isinstance(node, ast.Constant) and isinstance(parents.get(id(node)), ast.Slice):
            continue  # slice bounds are mutated as slice bounds (same change, clearer name)
        for change, apply in _sites(node, parents):
            mutant_tree = copy.deepcopy(tree)
            target = list(ast.walk(mutant_tree))[index]
            apply(target, _parents(mutant_tree))
            ast.fix_missing_locations(mutant_tree)
            line = getattr(node, "lineno", getattr(parents[id(node)], "lineno", 0))
            name = f"{_function_of(node, parents)}: {change}"
            module = types.ModuleType("nhs_number_mutant")
            exec(compile(mutant_tree, f"<mutant {name}>", "exec"), module.__dict__)  # noqa: S102
            yield name, line, module


def _outcome(module: Any, function: str, argument: str) -> tuple[str, Any]:
    try:
        return "returns", getattr(module, function)(argument)
    except Exception as exc:  # a mutant that raises differs from one that returns
        return "raises", type(exc).__name__


def test_case_table_holds_for_the_real_module() -> None:
    """Every case gives its hand-worked result on the real nhs_number module."""
    wrong = [
        (f, a, want, _outcome(nhs_number, f, a))
        for f, a, want in CASES
        if _outcome(nhs_number, f, a) != ("returns", want)
    ]
    assert wrong == []


def test_every_mutant_of_nhs_number_is_killed() -> None:
    """Each mutant of nhs_number.py fails a case; the only survivors are the known equivalents."""
    made = list(mutants())
    kinds = {name.split(": ", 1)[1].split(" ")[0] for name, _line, _module in made}
    assert {"Eq", "NotEq", "IsNot", "constant", "And", "slice", "not", "return", "Sub"} <= kinds
    survivors = []
    for name, line, module in made:
        if all(_outcome(module, f, a) == ("returns", want) for f, a, want in CASES):
            survivors.append(f"{name} (line {line})")
    unexpected = sorted(s for s in survivors if s.rsplit(" (line", 1)[0] not in EQUIVALENT)
    assert not unexpected, f"{len(unexpected)} of {len(made)} mutants survive: {unexpected}"
    survived = sorted(s.rsplit(" (line", 1)[0] for s in survivors)
    assert survived == sorted(EQUIVALENT), "an 'equivalent' mutant is now killed: update the list"


def test_eleven_digits_whose_first_ten_pass_mod_11_are_refused() -> None:
    """An 11-digit number whose first 10 digits are a valid NHS number is not one."""
    assert nhs_number.is_valid_nhs_number("9990000018")
    assert not nhs_number.is_valid_nhs_number("99900000180")
    assert not nhs_number.is_valid_nhs_number("99900000188")
    assert nhs_number.normalise_nhs_number("999 000 0018 0") is None
