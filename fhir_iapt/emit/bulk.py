"""The FHIR Bulk Data layout: one ``<ResourceType>.ndjson`` per type, resources unbundled.

Inside a transaction Bundle, references are ``urn:uuid:<id>`` (the entries' fullUrls). Once the
resources are taken out of their bundle those URNs mean nothing, so every reference to a
resource of the same bundle is rewritten to ``<Type>/<id>``, which resolves against the files
(and against a server loaded with ``$import`` or PUT, since ids are kept).

Resources shared across records (one Patient, one Practitioner in many bundles) are written once:
the first time an id is seen. The set of ids already written lives in a private temporary
SQLite database (``sqlite3.connect("")``: on disk, deleted when closed, a few MB of page cache),
so memory stays flat however many resources a run writes; a Python set of 36-byte ids would
cost ~100 bytes per resource, ~1 GB for 10 million. Because the first copy wins, a Patient whose
details differ between records keeps those of the first record in the file.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from fhir_iapt.emit._atomic import AtomicFile
from fhir_iapt.emit._base import WriterBase
from fhir_iapt.emit._encode import not_json
from fhir_iapt.errors import EmitError, Location
from fhir_iapt.results import Converted

_URN = re.compile(rb'"urn:uuid:([^"]+)"')


def rewrite_references(data: bytes, targets: Mapping[bytes, bytes]) -> bytes:
    """Replace each JSON string ``"urn:uuid:<id>"`` whose id is in ``targets`` by its value.

    ``targets`` maps an id to ``<Type>/<id>``; URNs of resources outside the bundle stay as they
    are.
    """

    def _sub(match: re.Match[bytes]) -> bytes:
        target = targets.get(match.group(1))
        return b'"' + target + b'"' if target is not None else match.group(0)

    return _URN.sub(_sub, data)


class _SeenIds:
    """A set of ``Type/id`` keys kept in a temporary on-disk SQLite database."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")

    def unseen(self, keys: list[str]) -> set[str]:
        """Those of ``keys`` not recorded yet (nothing is recorded)."""
        marks = ",".join("?" * len(keys))
        query = f"SELECT key FROM seen WHERE key IN ({marks})"  # noqa: S608 - placeholders only
        known = {row[0] for row in self._db.execute(query, keys)}
        return {k for k in keys if k not in known}

    def add(self, keys: list[str]) -> None:
        """Record ``keys`` as written."""
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(k,) for k in keys])

    def close(self) -> None:
        self._db.close()


class BulkWriter(WriterBase):
    """``<out_dir>/<ResourceType>.ndjson`` files, one resource per line, each id written once.

    Files appear (renamed into place) only when the writer is closed without an error.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self._files: dict[str, AtomicFile] = {}
        self._seen = _SeenIds()
        self.counts: dict[str, int] = {}

    def _file(self, resource_type: str) -> AtomicFile:
        out = self._files.get(resource_type)
        if out is None:
            if not resource_type.isalnum():
                raise EmitError(
                    "resourceType is not a FHIR type name",
                    location=Location(element="Bundle.entry.resource.resourceType"),
                )
            out = AtomicFile(self.out_dir / f"{resource_type}.ndjson")
            self._files[resource_type] = out
        return out

    def write(self, converted: Converted) -> None:
        """Write the bundle's resources not written before; all or nothing.

        A resource to be written that JSON cannot carry (a lone surrogate in a string) raises
        :class:`~fhir_iapt.errors.UnwritableRecordError` (FI641) naming the record and the
        element, before anything of the record is written or its ids recorded, so a later
        record holding the same shared resource still writes it. (A shared resource already
        written is not serialised again, so its copy in this bundle is not looked at.)
        """
        entries: list[tuple[int, dict[str, Any]]] = [
            (index, e["resource"])
            for index, e in enumerate(converted.bundle.get("entry", ()))
            if "resource" in e
        ]
        if not entries:
            return
        keys = [f"{r['resourceType']}/{r['id']}" for _, r in entries]
        targets: dict[bytes, bytes] = {}
        for (index, resource), key in zip(entries, keys, strict=True):
            try:
                targets[resource["id"].encode()] = key.encode()
            except UnicodeEncodeError as exc:
                where = f"Bundle.entry[{index}].resource"
                raise not_json(converted.location, resource, where) from exc
        fresh = self._seen.unseen(keys)
        lines: list[tuple[str, str, bytes]] = []
        for (index, resource), key in zip(entries, keys, strict=True):
            if key not in fresh:
                continue
            fresh.discard(key)  # a resource twice in one bundle is still written once
            try:
                data = orjson.dumps(resource, option=orjson.OPT_APPEND_NEWLINE)
            except orjson.JSONEncodeError as exc:
                where = f"Bundle.entry[{index}].resource"
                raise not_json(converted.location, resource, where) from exc
            lines.append((resource["resourceType"], key, rewrite_references(data, targets)))
        files = [self._file(resource_type) for resource_type, _, _ in lines]
        self._seen.add([key for _, key, _ in lines])
        for out, (resource_type, _, data) in zip(files, lines, strict=True):
            out.write(data)
            self.counts[resource_type] = self.counts.get(resource_type, 0) + 1

    def close(self) -> None:
        try:
            for out in self._files.values():
                out.commit()
        finally:
            self._seen.close()

    def abort(self) -> None:
        for out in self._files.values():
            out.discard()
        self._seen.close()


__all__ = ["BulkWriter", "rewrite_references"]
