"""What a Spark executor's Python worker process keeps between tasks.

A task gets its mapping as a :class:`MappingSource` (the mapping file's bytes and the lookup
tables beside it, keyed by their content). The first task in a process to need a mapping loads
and compiles it; every later task in that process, of this job or the next, finds it here by
its key. The same goes for the first-bundle shape check (with the validator and its profiles,
loaded once per process by :func:`~fhir_iapt.fhir.validate.default_validator`), a consent
register's files and a referral ledger's snapshot. Nothing is loaded per record or per task.

:func:`stats` says how often each was loaded and how many tasks the process ran (the tests read
it in every worker process to prove the above).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fhir_iapt.consent import ConsentFiles, ConsentSource
from fhir_iapt.fhir.options import BuildOptions
from fhir_iapt.ledger import Ledger
from fhir_iapt.mapping import Mapping, load_mapping
from fhir_iapt.pipeline import Validation, _Checker

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MappingSource:
    """A mapping as it travels to the executors: the file's name and bytes and the lookup
    tables beside it (``tables/*.yaml``, which win over the bundled ones), so a custom mapping
    needs no shared file system. ``key`` hashes all of it: the per-process cache's key."""

    filename: str
    text: bytes
    tables: tuple[tuple[str, bytes], ...]
    key: str

    @classmethod
    def of(cls, mapping: Mapping[Any]) -> MappingSource:
        """The source of a mapping loaded from a file (a bundled one or a path)."""
        if mapping.path is None:
            raise ValueError("Spark conversion needs a mapping loaded from a file")
        path = Path(mapping.path)
        text = path.read_bytes()
        folder = path.parent / "tables"
        tables = (
            tuple((p.name, p.read_bytes()) for p in sorted(folder.glob("*.yaml")) if p.is_file())
            if folder.is_dir()
            else ()
        )
        digest = hashlib.sha256()
        for name, data in ((path.name, text), *tables):
            digest.update(name.encode())
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return cls(path.name, text, tables, digest.hexdigest())


_lock = threading.Lock()
_mappings: dict[str, Mapping[Any]] = {}
_checkers: dict[tuple[str, str, BuildOptions], _Checker] = {}
_consents: dict[tuple[str, ...], ConsentFiles] = {}
_ledgers: dict[str, Ledger] = {}
#: loads by kind and key (a mapping's key, a consent register's paths, a ledger's name)
_loads: dict[tuple[str, str], int] = {}
_tasks = 0


def _count(what: str, key: str) -> None:
    _loads[(what, key)] = _loads.get((what, key), 0) + 1


def _scratch(prefix: str) -> Path:
    """A private folder removed when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _cached(table: dict[Any, T], key: Any, what: str, make: Callable[[], T]) -> T:
    with _lock:
        found = table.get(key)
        if found is None:
            found = make()
            table[key] = found
            _count(what, str(key[0] if isinstance(key, tuple) and what == "checker" else key))
        return found


def mapping(source: MappingSource) -> Mapping[Any]:
    """The compiled mapping of ``source``, loaded once per process."""

    def load() -> Mapping[Any]:
        folder = _scratch("fhir-iapt-mapping-")
        if source.tables:
            (folder / "tables").mkdir()
            for name, data in source.tables:
                (folder / "tables" / name).write_bytes(data)
        path = folder / source.filename
        path.write_bytes(source.text)
        return load_mapping(path)

    return _cached(_mappings, source.key, "mapping", load)


def checker(key: str, validation: Validation, options: BuildOptions) -> _Checker:
    """The process's shape check for one mapping (by key), validation policy and options:
    ``first`` checks the first bundle this process converts with them, once."""
    return _cached(_checkers, (key, validation, options), "checker", lambda: _Checker(validation))


def consent(source: ConsentSource | None) -> ConsentSource | None:
    """A consent register: files are read once per process (and again when they change,
    as :class:`~fhir_iapt.consent.ConsentFiles` does); an in-memory register as given."""
    if not isinstance(source, ConsentFiles):
        return source
    paths = tuple(str(p) for p in source.paths)
    return _cached(_consents, paths, "consent", lambda: ConsentFiles(paths))


def ledger(name: str, fetch: Callable[[], str]) -> Ledger:
    """The ledger snapshot ``name`` (``fetch`` gives the path Spark put it at), copied into a
    private folder and opened once per process."""

    def load() -> Ledger:
        folder = _scratch("fhir-iapt-ledger-")
        copy = folder / name
        shutil.copyfile(fetch(), copy)
        return Ledger(copy)

    return _cached(_ledgers, name, "ledger", load)


def task_started() -> None:
    global _tasks
    with _lock:
        _tasks += 1


def stats(key: str) -> dict[str, int]:
    """This process's id and tasks, how many times it loaded the mapping whose key is ``key``
    and made a shape check for it, and the most times it opened any one consent register or
    ledger snapshot."""
    with _lock:
        counts = {"pid": os.getpid(), "tasks": _tasks}
        counts["mapping"] = _loads.get(("mapping", key), 0)
        counts["checker"] = _loads.get(("checker", key), 0)
        for what in ("consent", "ledger"):
            loads = [n for (kind, _), n in _loads.items() if kind == what]
            counts[what] = max(loads, default=0)
        return counts


__all__ = ["MappingSource", "checker", "consent", "ledger", "mapping", "stats", "task_started"]
