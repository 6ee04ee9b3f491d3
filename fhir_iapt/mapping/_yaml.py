"""Read a mapping file as a YAML node tree, so every problem can name its line and key.

``yaml.compose`` keeps the position of every node; :class:`Node` wraps one and :class:`Problems`
collects the issues found while a mapping is checked, so one ``MappingError`` reports them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

import yaml

from fhir_iapt.errors import Issue, Location, MappingError


class Problems:
    """The issues found in one mapping file (raised together by :meth:`raise_if_any`)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[Issue] = []

    def add(self, message: str, line: int | None, key: str | None = None) -> None:
        location = Location(file=self.file, line=line, field=key)
        self.issues.append(Issue(message, code="invalid", location=location, error_code="FI201"))

    def fail(self, message: str, line: int | None, key: str | None = None) -> NoReturn:
        self.add(message, line, key)
        self.raise_if_any()
        raise AssertionError("unreachable")  # pragma: no cover

    def raise_if_any(self) -> None:
        if self.issues:
            first = self.issues[0]
            count = len(self.issues)
            more = f" (and {count - 1} more)" if count > 1 else ""
            raise MappingError(
                f"{first.diagnostics}{more}",
                issues=self.issues,
                location=first.location,
                error_code="FI201",
            )


class Node:
    """A YAML node with its 1-based line and the dotted key path that leads to it."""

    __slots__ = ("key", "node", "problems")

    def __init__(self, node: yaml.Node, key: str, problems: Problems) -> None:
        self.node = node
        self.key = key
        self.problems = problems

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def fail(self, message: str) -> NoReturn:
        self.problems.fail(message, self.line, self.key)

    def add(self, message: str) -> None:
        self.problems.add(message, self.line, self.key)

    def is_mapping(self) -> bool:
        return isinstance(self.node, yaml.MappingNode)

    def is_sequence(self) -> bool:
        return isinstance(self.node, yaml.SequenceNode)

    def is_scalar(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode)

    def _child_key(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def items(self, allowed: Iterable[str] | None = None) -> dict[str, Node]:
        """The entries of a mapping node; unknown keys (when ``allowed`` is given) are issues."""
        if not self.is_mapping():
            self.fail("expected a mapping (key: value entries)")
        out: dict[str, Node] = {}
        allowed_set = None if allowed is None else set(allowed)
        for key_node, value_node in self.node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = int(key_node.start_mark.line) + 1
            if not isinstance(key, str):
                self.problems.add("a key must be plain text", line, self.key or None)
                continue
            full = self._child_key(key)
            if key in out:
                self.problems.add("the key is repeated", line, full)
                continue
            if allowed_set is not None and key not in allowed_set:
                expected = ", ".join(sorted(allowed_set))
                self.problems.add(f"unknown key (expected one of: {expected})", line, full)
                continue
            out[key] = Node(value_node, full, self.problems)
        return out

    def sequence(self) -> Iterator[Node]:
        if not self.is_sequence():
            self.fail("expected a list")
        for index, child in enumerate(self.node.value):
            yield Node(child, f"{self.key}[{index}]", self.problems)

    def value(self) -> Any:
        """The plain Python value of this node (scalars, lists, mappings)."""
        return yaml.constructor.SafeConstructor().construct_object(self.node, deep=True)

    def text(self) -> str:
        """A scalar that must be non-empty text (numbers are not accepted where text is meant)."""
        if not self.is_scalar():
            self.fail("expected text")
        raw = self.value()
        if not isinstance(raw, str) or not raw.strip():
            self.fail("expected non-empty text")
        return raw.strip()

    def boolean(self) -> bool:
        raw = self.value() if self.is_scalar() else None
        if not isinstance(raw, bool):
            self.fail("expected true or false")
        return raw


def compose(text: str | bytes, problems: Problems) -> Node:
    """Parse ``text`` into a :class:`Node`; YAML syntax errors become located issues."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else None
        problems.fail(f"the file is not valid YAML: {exc.problem or exc.context}", line)
    except yaml.YAMLError as exc:
        problems.fail(f"the file is not valid YAML: {type(exc).__name__}", None)
    if root is None:
        problems.fail("the mapping file is empty", 1)
    return Node(root, "", problems)


__all__ = ["Node", "Problems", "compose"]
