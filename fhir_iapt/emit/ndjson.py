"""NDJSON writers: transaction Bundles one per line, and rejected records as OperationOutcomes."""

from __future__ import annotations

from pathlib import Path

import orjson

from fhir_iapt.emit._atomic import AtomicFile
from fhir_iapt.emit._base import WriterBase
from fhir_iapt.emit._encode import dumps_text, not_json
from fhir_iapt.results import Converted, Rejected

BUNDLES_FILE = "bundles.ndjson"
REJECTS_FILE = "rejects.ndjson"
#: What ``push`` writes into the same folder: one result per Bundle, and the undelivered ones.
RESULTS_FILE = "results.ndjson"
FAILED_FILE = "failed.ndjson"


class NdjsonBundleWriter(WriterBase):
    """``<out_dir>/bundles.ndjson``: one transaction Bundle (FHIR JSON) per line, in input order.

    A bundle JSON cannot carry (a lone surrogate in a string) raises
    :class:`~fhir_iapt.errors.UnwritableRecordError` (FI641) naming the record and the element;
    nothing of it is written and the writer takes the next record.
    """

    def __init__(self, out_dir: Path, *, filename: str = BUNDLES_FILE) -> None:
        self.path = Path(out_dir) / filename
        self._file = AtomicFile(self.path)
        self.count = 0

    def write(self, converted: Converted) -> None:
        try:
            data = converted.json(newline=True)
        except orjson.JSONEncodeError as exc:
            raise not_json(converted.location, converted.bundle, "Bundle") from exc
        self._file.write(data)
        self.count += 1

    def close(self) -> None:
        self._file.commit()

    def abort(self) -> None:
        self._file.discard()


class RejectsWriter(WriterBase):
    """``<out_dir>/rejects.ndjson``: one OperationOutcome per rejected record, in input order.

    Each outcome's issues say where (file, row, field) and what; never the rejected values.
    The file is written even when empty, so "no rejects" is visible, not assumed.
    """

    def __init__(self, out_dir: Path, *, filename: str = REJECTS_FILE) -> None:
        self.path = Path(out_dir) / filename
        self._file = AtomicFile(self.path)
        self.count = 0

    def write(self, rejected: Rejected) -> None:
        self._file.write(dumps_text(rejected.outcome, orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    def close(self) -> None:
        self._file.commit()

    def abort(self) -> None:
        self._file.discard()


__all__ = ["BUNDLES_FILE", "REJECTS_FILE", "NdjsonBundleWriter", "RejectsWriter"]
