"""Typing rules the package keeps: a function that always raises says so (NoReturn)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fhir_iapt"


def _always_raises(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Its last statement is a raise and it returns no value and yields nothing."""
    if not isinstance(node.body[-1], ast.Raise):
        return False
    for inner in ast.walk(node):
        if isinstance(inner, ast.Return) and inner.value is not None:
            return False
        if isinstance(inner, ast.Yield | ast.YieldFrom):
            return False
    return True


def _placeholder(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """An interface method or a callable that must fit a signature: raise NotImplementedError
    (abstract), or a one-line raise of the project's Invalid value error (a path getter)."""
    last = node.body[-1]
    assert isinstance(last, ast.Raise)
    raised = last.exc.func if isinstance(last.exc, ast.Call) else last.exc
    return isinstance(raised, ast.Name) and raised.id in {"NotImplementedError", "Invalid"}


def test_functions_that_always_raise_are_typed_noreturn() -> None:
    """Every function whose body always ends in raise is annotated -> NoReturn."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and _always_raises(node)
                and not _placeholder(node)
            ):
                returns = ast.unparse(node.returns) if node.returns else None
                if returns != "NoReturn":
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert offenders == []
