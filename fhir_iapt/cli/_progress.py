"""The progress display of ``convert`` and ``outcomes``, on stderr, only when it is a terminal.

Built on rich's progress bar: with the size of the input known (the files' bytes) it shows how
much has been read of the total, the records so far with their rate, the time left, and the
converted / skipped / rejected counts. It is *transient*: when the run ends the bar is erased,
so the one-line summary the command prints next stands in its place instead of below a stale
bar. No patient data is shown (counts only).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import (
    Progress as RichProgress,
)


class Progress:
    """``with Progress("convert", total_bytes=n, position=f) as p: p.update(records, ...)``.

    ``position`` returns the bytes read so far (``ReadProgress.bytes_read``). Redraws at most
    five times a second; does nothing when the stream is not a terminal (``force_terminal``
    makes it draw anyway, for tests).
    """

    def __init__(
        self,
        label: str,
        *,
        total_bytes: int | None = None,
        position: Callable[[], int] | None = None,
        stream: TextIO | None = None,
        force_terminal: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.label = label
        self._console = Console(
            file=stream if stream is not None else sys.stderr,
            force_terminal=force_terminal,
            width=width,
            highlight=False,
        )
        self.enabled = self._console.is_terminal
        self._position = position
        self._total = total_bytes if total_bytes else None
        self._started = time.monotonic()
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._next = 0.0  # monotonic time of the next redraw (the caller calls per record)

    def __enter__(self) -> Progress:
        if self.enabled:
            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=20),
                DownloadColumn(binary_units=True),
                TextColumn("{task.fields[records]} records ({task.fields[rate]}/s)"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[detail]}"),
                console=self._console,
                transient=True,
                refresh_per_second=5,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                self.label, total=self._total, records=0, rate="-", detail=""
            )
        return self

    def update(self, records: int, *, converted: int, skipped: int, rejected: int) -> None:
        """The counts so far (and the bytes read, from ``position``)."""
        if self._bar is None or self._task is None:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.2
        elapsed = max(now - self._started, 1e-9)
        self._bar.update(
            self._task,
            completed=self._position() if self._position is not None else None,
            records=records,
            rate=f"{records / elapsed:,.0f}",
            detail=f"{converted} converted, {skipped} skipped, {rejected} rejected",
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)  # transient: the bar is erased


__all__ = ["Progress"]
