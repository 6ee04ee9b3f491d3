"""The writer protocol and the context-manager behaviour every writer shares."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from fhir_iapt.results import Converted


@runtime_checkable
class OutputWriter(Protocol):
    """Where converted bundles go. Use as a context manager: a clean exit commits the output
    (renames it into place), an exception discards it.

    ``write`` raises :class:`~fhir_iapt.errors.UnwritableRecordError` for a record whose bundle
    has no form in the output format (a string it cannot carry): nothing of that record was
    written and the writer takes the next one, so the caller rejects the record and goes on.
    Any other :class:`~fhir_iapt.errors.EmitError` (disk full, folder gone) ends the output."""

    def write(self, converted: Converted) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class WriterBase:
    """``with`` support: commit on a clean exit, discard on an exception."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


__all__ = ["OutputWriter", "WriterBase"]
