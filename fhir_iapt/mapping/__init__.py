"""Map: load and check a mapping file once, then apply it to source records.

A mapping (``mappings/<name>.yaml``, format in ``mappings/README.md``) says what one export
layout looks like and where each field goes. :func:`load_mapping` checks the whole file up front
(``MappingError`` with file and line); :func:`map_record` turns one
:class:`~fhir_iapt.sources.SourceRecord` into the target's canonical record (a
:class:`~fhir_iapt.records.ReferralRecord` for ``referral``) or raises one ``RecordError``
carrying every problem in that record.

For whoever writes a mapping: :func:`propose_mapping` proposes one for a sample export
(``fhir-iapt mapping init``), :func:`dry_run` reads and maps exports without building anything
(``fhir-iapt convert --dry-run``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from fhir_iapt.errors import ReadError
from fhir_iapt.mapping._dry_run import DryRun, dry_run
from fhir_iapt.mapping._engine import map_record, map_values
from fhir_iapt.mapping._loader import FORMAT_VERSION, bundled_mappings, load_mapping
from fhir_iapt.mapping._model import Mapping
from fhir_iapt.mapping._propose import Proposal, propose_mapping, target_names
from fhir_iapt.sources import SourceRecord, read_records


def read_source(
    stream: BinaryIO, *, name: str, mapping: Mapping[Any]
) -> Iterator[SourceRecord | ReadError]:
    """Read ``stream`` the way ``mapping``'s ``input:`` section says (format and options)."""
    return read_records(stream, name=name, fmt=mapping.input_format, options=mapping.input_options)


__all__ = [
    "FORMAT_VERSION",
    "DryRun",
    "Mapping",
    "Proposal",
    "bundled_mappings",
    "dry_run",
    "load_mapping",
    "map_record",
    "map_values",
    "propose_mapping",
    "read_source",
    "target_names",
]
