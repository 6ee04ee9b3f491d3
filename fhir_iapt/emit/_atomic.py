"""Atomic-ish output files: write under a hidden temporary name, rename into place on close.

A run that crashes (or is killed) leaves at most a dot-named ``.<name>.<pid>.tmp`` file, never a
half-written ``bundles.ndjson`` that looks complete. :meth:`AtomicFile.commit` flushes, fsyncs
and ``os.replace``-s the file (atomic on POSIX and Windows within one file system);
:meth:`AtomicFile.discard` removes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from fhir_iapt.errors import EmitError, Location


def emit_error(message: str, path: Path, exc: OSError) -> EmitError:
    """An EmitError naming the output file and the OS reason (no data in it)."""
    reason = exc.strerror or type(exc).__name__
    return EmitError(f"{message}: {reason}", location=Location(file=str(path)))


def temp_path(final: Path) -> Path:
    """The hidden temporary name a file is written under before it is renamed to ``final``."""
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


#: Write buffer: a bundle line is ~14 KB, so the default 8 KB buffer made one system call per
#: bundle; 1 MiB makes one per ~70 and lets the disk take larger writes.
_BUFFER = 1 << 20


class AtomicFile:
    """One output file written under a temporary name and renamed into place on commit."""

    __slots__ = ("_fh", "path", "tmp")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = temp_path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: BinaryIO | None = self.tmp.open("wb", buffering=_BUFFER)
        except OSError as exc:
            raise emit_error("cannot create output file", path, exc) from exc

    def write(self, data: bytes) -> None:
        if self._fh is None:
            raise EmitError("output already closed", location=Location(file=str(self.path)))
        try:
            self._fh.write(data)
        except OSError as exc:
            raise emit_error("cannot write output file", self.path, exc) from exc

    def commit(self) -> None:
        """Flush, fsync and rename into place (idempotent)."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            self.tmp.replace(self.path)
        except OSError as exc:
            fh.close()
            self.tmp.unlink(missing_ok=True)
            raise emit_error("cannot finish output file", self.path, exc) from exc

    def discard(self) -> None:
        """Close and delete the temporary file; the final name is left untouched (idempotent)."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        fh.close()
        self.tmp.unlink(missing_ok=True)


__all__ = ["AtomicFile", "emit_error", "temp_path"]
