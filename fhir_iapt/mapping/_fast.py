"""The screenings' fast path: an instrument's cells scored by dict lookups alone.

It decides only what it is sure of (clean cells, or every item empty) and otherwise answers
``DEFER``, and :func:`fhir_iapt.mapping._engine.slow_answers` (the reporting path) decides.
The mapping loader picks each fixed instrument's fast function once (``FixedScreening.fast``),
so a mapping that does not look answers up in tables never runs the table variant.
tests/test_mapping_fast_path.py and tests/test_mapping_constructs_answers.py prove both agree
with the slow path.

This module imports nothing of the mapping package (the model names it as a default).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, Final, Protocol


class Shape(Protocol):
    """What the fast path reads of an ``InstrumentShape``."""

    @property
    def scored(self) -> int: ...
    @property
    def scores(self) -> Mapping[Any, int]: ...
    @property
    def item_scores(self) -> tuple[Mapping[Any, int], ...]: ...
    @property
    def casefold(self) -> bool: ...


class _Defer(Enum):
    """The fast path's "not sure": the slow path decides (and reports)."""

    DEFER = "defer"


DEFER: Final = _Defer.DEFER
#: what a fast function answers: the item scores, None (not done) or DEFER
Verdict = tuple[int | None, ...] | _Defer | None


def fast_answers(shape: Shape, cells: tuple[Any, ...]) -> Verdict:
    """The slow path's answers for clean cells, None when all are empty, else ``DEFER``.

    Clean means every scored cell is exactly a score (text "0".."3" or a JSON integer 0..3)
    and every unscored cell is a score, ``""`` or None; anything else (spaces, a blank scored
    item, another type: ``True == 1`` in a dict lookup, so the class is checked first) defers
    to the slow path. Costs one class check and one dict lookup per item.
    tests/test_mapping_fast_path.py proves it agrees with the slow path.
    """
    scores = shape.scores
    answers = [
        scores.get(cell) if cell.__class__ is str or cell.__class__ is int else None
        for cell in cells
    ]
    # the verdict, as _decide gives it, inline: this runs per instrument per record
    n_scored = shape.scored
    if None not in answers[:n_scored] and len(answers) >= n_scored:
        unscored = answers[n_scored:]
        if not unscored:
            return tuple(answers)
        for index, answer in enumerate(unscored, start=n_scored):
            if answer is None and cells[index] != "" and cells[index] is not None:
                return DEFER
        if all(answer is None for answer in unscored):
            return tuple(answers[:n_scored])
        return tuple(answers)
    if all(cell is None or cell == "" for cell in cells):
        return None  # not done: every item empty
    return DEFER


def fast_table_answers(shape: Shape, cells: tuple[Any, ...]) -> Verdict:
    """:func:`fast_answers` for answers looked up in tables (``answer_table:``): each cell in
    its item's table, case-folded when the table matches case-insensitively. A cell the table
    does not hold exactly (spaces, an unknown word) defers to the slow path."""
    fold = shape.casefold
    answers: list[int | None] = []
    for table, cell in zip(shape.item_scores, cells, strict=False):
        kind = cell.__class__
        if kind is str:
            answers.append(table.get(cell.casefold() if fold else cell))
        else:
            answers.append(table.get(cell) if kind is int else None)
    return _decide(shape.scored, cells, answers)


def _decide(n_scored: int, cells: tuple[Any, ...], answers: list[int | None]) -> Verdict:
    """The fast path's verdict from the cells and the scores looked up for them (the tail of
    :func:`fast_answers`, which has it inline)."""
    if None not in answers[:n_scored] and len(answers) >= n_scored:
        unscored = answers[n_scored:]
        if not unscored:
            return tuple(answers)
        for index, answer in enumerate(unscored, start=n_scored):
            if answer is None and cells[index] != "" and cells[index] is not None:
                return DEFER
        if all(answer is None for answer in unscored):
            return tuple(answers[:n_scored])
        return tuple(answers)
    if all(cell is None or cell == "" for cell in cells):
        return None  # not done: every item empty
    return DEFER


__all__ = ["DEFER", "Shape", "Verdict", "fast_answers", "fast_table_answers"]
