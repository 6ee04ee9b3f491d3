"""The pipeline: read -> map -> gate -> build -> validate, one result per source record.

This is the one place the stages are joined. The CLI, the relay and any integrator's code call
these functions; they hold no I/O beyond reading the stream they are given (and the consent
register files, when given as :class:`~fhir_iapt.consent.ConsentFiles`), so a Dask/Spark
partition can call :func:`convert_record` the same way.

Every record kind goes the same way: the mapping reads and maps it into its target's typed record
(:mod:`fhir_iapt.targets`), the target's gate decides whether it may leave (decision, consent:
``consent=`` is the register of recorded consent to share outcomes, read live when it is a
``ConsentFiles``), and its builder makes the bundle. Clinic exports, episode exports and FHIR
QuestionnaireResponses (the ``questionnaire-response`` mapping) differ only in their mapping.

Validation is layered so the hot path stays fast without giving up proof:

* every record's *values* are checked at the map stage (modulus 11, dates, ranges, codes);
* the *shape* of what a mapping produces is checked by the real validator (R4 + the project's
  profiles) on the first bundle of a run (``validation="first"``, the default); with a
  :class:`ShapeCache` a passed check is remembered per mapping file, profile set and adapter
  code, and later runs skip it until one of those changes;
* ``validation="full"`` runs the real validator on every bundle (slower; the test-suite and
  ``fhir-iapt validate`` do this over every output);
* ``validation="none"`` leaves the shape check to the caller (the relay applies its own policy
  across requests through :func:`validated`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

import orjson

from fhir_iapt._data import profiles_dir
from fhir_iapt._logging import log_event
from fhir_iapt.consent import ConsentSource, current_register
from fhir_iapt.dataset import Disagreement
from fhir_iapt.emit._encode import not_json
from fhir_iapt.errors import FhirIaptError, Location, ProfileError, ReadError
from fhir_iapt.fhir.options import DEFAULT_OPTIONS, BuildOptions
from fhir_iapt.ledger import DEFAULT_WINDOW_DAYS, Ledger
from fhir_iapt.mapping import Mapping, load_mapping, map_record, read_source
from fhir_iapt.results import BundleKind, Converted, Rejected, Result, Skipped
from fhir_iapt.scoring.episode import OutcomeConsent
from fhir_iapt.sources import SourceRecord, portable, revive
from fhir_iapt.targets import Target, target_of

_log = logging.getLogger("fhir_iapt.pipeline")

R = TypeVar("R")

Validation = Literal["none", "first", "full"]
MappingRef = str | os.PathLike[str] | Mapping[Any]


def _resolve(mapping: MappingRef) -> Mapping[Any]:
    return mapping if isinstance(mapping, Mapping) else load_mapping(mapping)


def convert_record(
    record: SourceRecord,
    mapping: MappingRef,
    options: BuildOptions = DEFAULT_OPTIONS,
    *,
    consent: ConsentSource | None = None,
) -> Converted | Skipped | Rejected:
    """Map, gate and build one source record. Never raises for bad data: returns a Rejected.

    A consent register that cannot be read (a file gone or broken) raises ConfigError: nothing
    is decided without it.
    """
    resolved = _resolve(mapping)
    target = target_of(resolved)
    try:
        canonical = map_record(record, resolved)
    except FhirIaptError as exc:
        return Rejected(exc, exc.location or record.location)
    except Exception as exc:  # a defect met by one record must not end the run
        return _unexpected(exc, record, "map")
    return gate_and_build(canonical, target, record.location, options, consent=consent)


def gate_and_build(
    canonical: R,
    target: Target[R],
    location: Location,
    options: BuildOptions = DEFAULT_OPTIONS,
    *,
    consent: ConsentSource | None = None,
) -> Converted | Skipped | Rejected:
    """The half of :func:`convert_record` after the map stage, for a record already in its
    target's canonical form (the data-set outcomes come this way): gate, build, serialise.

    A consent register that cannot be read raises ConfigError, as in :func:`convert_record`.
    """
    register = current_register(consent)  # ConfigError: nothing is decided without it
    tree: Any = None
    try:
        decision = target.gate(canonical, register)
        key = target.key(canonical)
        if decision is not None:
            return Skipped(key, decision[0], decision[1], location)
        tree = target.build(canonical, options)
        data = orjson.dumps(tree)
    except orjson.JSONEncodeError:  # text JSON cannot carry (a lone surrogate): named, no value
        error = not_json(location, tree, "Bundle")
        return Rejected(error, location)
    except FhirIaptError as exc:
        return Rejected(exc, exc.location or location)
    except Exception as exc:
        return _unexpected_at(exc, location, "build")
    return Converted.from_json(key, data, location, target.kind)


#: A record met a failure the adapter did not foresee (a defect): rejected, the run goes on.
UNEXPECTED = "FI001"


def _unexpected(exc: Exception, record: SourceRecord, stage: str) -> Rejected:
    return _unexpected_at(exc, record.location, stage)


def _unexpected_at(exc: Exception, location: Location, stage: str) -> Rejected:
    """Reject the record with a fixed message (the exception's text may quote its values) and
    log the exception's type and where, never its message."""
    log_event(
        _log,
        logging.ERROR,
        "unexpected failure converting a record",
        stage=stage,
        exception=type(exc).__name__,
        location=location.render(),
    )
    error = FhirIaptError(
        f"the adapter failed unexpectedly at the {stage} stage on this record "
        f"({type(exc).__name__}); it is rejected and the run goes on",
        location=location,
        error_code=UNEXPECTED,
    )
    return Rejected(error, location)


class ShapeCache:
    """Remembers which (mapping, profiles, adapter code, options) passed the first-bundle check.

    One empty stamp file per passed combination in ``directory``; the key hashes the mapping
    file, every file in ``profiles/``, the adapter's own source files and the build options, so
    any change to what shapes the output makes the check run again.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def key(self, mapping: Mapping[Any], options: BuildOptions) -> str | None:
        if mapping.path is None:
            return None
        digest = hashlib.sha256()
        digest.update(Path(mapping.path).read_bytes())
        digest.update(repr(options).encode())
        for root in (profiles_dir(), Path(__file__).resolve().parent):
            for path in sorted(root.rglob("*")):
                if path.suffix in (".json", ".py", ".yaml") and path.is_file():
                    digest.update(path.name.encode())
                    digest.update(path.read_bytes())
        return digest.hexdigest()

    def passed(self, key: str) -> bool:
        return (self.directory / key).exists()

    def remember(self, key: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / key).touch()
        except OSError:
            pass  # a read-only cache only means the check runs again next time


class _Checker:
    """Runs the real validator on the first bundle of a run, or on every bundle."""

    def __init__(
        self,
        validation: Validation,
        *,
        cache: ShapeCache | None = None,
        mapping: Mapping[Any] | None = None,
        options: BuildOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.validation = validation
        self._checked = False
        self._cache = cache
        self._key = (
            cache.key(mapping, options)
            if cache is not None and mapping is not None and validation == "first"
            else None
        )
        if self._key is not None and cache is not None and cache.passed(self._key):
            self._checked = True

    def __call__(self, result: Result) -> Result:
        if not isinstance(result, Converted) or self.validation == "none":
            return result
        if self.validation == "first" and self._checked:
            return result
        from fhir_iapt.fhir.validate import default_validator

        issues = default_validator().validate_bundle(result.bundle, location=result.location)
        errors = [i for i in issues if i.severity in ("error", "fatal")]
        if errors:
            return Rejected(
                ProfileError(
                    "the bundle built for this record does not conform to R4 and the profiles",
                    issues=errors,
                    location=result.location,
                ),
                result.location,
            )
        self._checked = True
        if self._key is not None and self._cache is not None:
            self._cache.remember(self._key)
        return result


def validated(
    results: Iterable[Result],
    validation: Validation = "first",
    *,
    shape_cache: ShapeCache | None = None,
    mapping: Mapping[Any] | None = None,
    options: BuildOptions = DEFAULT_OPTIONS,
) -> Iterator[Result]:
    """Pass results through the real validator (first bundle, or every bundle with "full").

    For results converted with ``validation="none"`` whose checking spans calls (the relay's
    requests): with ``shape_cache`` and the ``mapping`` that made them, a shape check already
    passed for that mapping, profile set, adapter code and options is not run again, the same
    cache the CLI commands use.
    """
    check = _Checker(validation, cache=shape_cache, mapping=mapping, options=options)
    for result in results:
        yield check(result)


def convert_stream(
    stream: BinaryIO,
    *,
    name: str,
    mapping: MappingRef,
    options: BuildOptions = DEFAULT_OPTIONS,
    validation: Validation = "first",
    shape_cache: ShapeCache | None = None,
    consent: ConsentSource | None = None,
) -> Iterator[Result]:
    """Convert every record of one stream, in order, in this process (constant memory)."""
    resolved = _resolve(mapping)
    check = _Checker(validation, cache=shape_cache, mapping=resolved, options=options)
    for item in read_source(stream, name=name, mapping=resolved):
        if isinstance(item, ReadError):
            yield Rejected(item, item.location or Location(file=name))
            continue
        yield check(convert_record(item, resolved, options, consent=consent))


def convert_bytes(
    data: bytes,
    *,
    name: str,
    mapping: MappingRef,
    options: BuildOptions = DEFAULT_OPTIONS,
    validation: Validation = "first",
    consent: ConsentSource | None = None,
) -> list[Result]:
    """Convert an in-memory export (the relay's request body)."""
    return list(
        convert_stream(
            io.BytesIO(data),
            name=name,
            mapping=mapping,
            options=options,
            validation=validation,
            consent=consent,
        )
    )


# --- outcomes from the NHS Talking Therapies Data Set ---------------------------------------


@dataclass(slots=True)
class DatasetReport:
    """What a data-set outcomes run found besides its results: per pathway, every NHS Digital
    derived field that disagrees with our derivation (neither is preferred; both are shown).
    Pathway ids (``OrgIDProv || ServiceRequestId``) and the fields' codes and numbers only:
    no patient data."""

    pathways: int = 0
    disagreements: dict[str, list[Disagreement]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        by_field: dict[str, int] = {}
        items = []
        for pathway, found in self.disagreements.items():
            for item in found:
                by_field[item.field] = by_field.get(item.field, 0) + 1
                items.append(
                    {
                        "pathway": pathway,
                        "field": item.field,
                        "theirs": item.theirs,
                        "ours": item.ours,
                    }
                )
        return {
            "pathways": self.pathways,
            "pathways_disagreeing": len(self.disagreements),
            "by_field": dict(sorted(by_field.items())),
            "items": items,
        }


#: How a ledger referral's recorded choice reads as an episode's consent to share outcomes.
_LEDGER_CONSENT: dict[bool | None, OutcomeConsent | None] = {True: "Y", False: "N", None: None}


def convert_dataset(
    directory: str | os.PathLike[str],
    *,
    ledger: Ledger,
    consent: ConsentSource | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
    options: BuildOptions = DEFAULT_OPTIONS,
    validation: Validation = "first",
    report: DatasetReport | None = None,
    workdir: str | os.PathLike[str] | None = None,
) -> Iterator[Result]:
    """Outcome bundles from a data set's tables, each answering the referral the adapter sent.

    Every pathway :func:`~fhir_iapt.dataset.read_dataset` derives is matched to the one ledger
    referral it answers (:meth:`~fhir_iapt.ledger.Ledger.match`: NHS number, provider, the
    referral received 0..``window_days`` days after it was authored). No match, or several:
    the pathway is Skipped with the ledger's reason and nothing is sent. Matched, it becomes
    an episode ``basedOn`` that ServiceRequest, its consent the patient's choice recorded in
    the referral, unless ``consent`` (a register, read live) is stricter; then the same gate
    and builder as every episode (:func:`gate_and_build`). File errors and bad rows come as
    Rejected. Disagreements with NHS Digital's derived fields go to ``report``.
    """
    from fhir_iapt.dataset import episode_record, no_nhs_number, read_dataset
    from fhir_iapt.targets import EPISODE_TARGET

    # no mapping file to key a remembered shape check by: the first bundle is checked per run
    check = _Checker(validation, options=options)
    scratch = Path(workdir) if workdir is not None else None
    for item in read_dataset(Path(directory), workdir=scratch):
        if isinstance(item, Rejected):
            yield item
            continue
        if report is not None:
            report.pathways += 1
            if item.disagreements:
                report.disagreements[item.pathway_id] = list(item.disagreements)
        if item.nhs_number is None:  # nothing to match or address
            error = no_nhs_number(item)
            yield Rejected(error, error.location or item.location)
            continue
        match = ledger.match(
            nhs_number=item.nhs_number,
            provider_ods=item.provider_ods,
            received=item.referral_received,
            window_days=window_days,
        )
        if match.entry is None:
            yield Skipped(
                item.key, match.reason or "no-referral-in-ledger", match.detail, item.location
            )
            continue
        try:
            record = episode_record(
                item,
                referral_identifier_system=match.entry.identifier_system,
                referral_identifier=match.entry.identifier,
                consent=_LEDGER_CONSENT[match.entry.share_outcomes],
            )
        except FhirIaptError as exc:
            yield Rejected(exc, exc.location or item.location)
            continue
        yield check(gate_and_build(record, EPISODE_TARGET, item.location, options, consent=consent))


# --- parallel conversion --------------------------------------------------------------------
#
# The reader stays in the parent (it is cheap next to map + build, and must keep file order);
# chunks of records go to worker processes for the CPU-bound map + build. What crosses a process
# boundary is kept small, because pickling costs the parent time it cannot spend reading:
#
# * a record goes as ``(data, location fields)``; a flat record (a CSV row: str -> str) as the
#   index of its key tuple, sent once per chunk, plus its values. XML elements are not picklable,
#   so they travel as bytes (:func:`~fhir_iapt.sources.portable`) and are re-parsed, safely;
# * a converted record comes back as its key and its bundle already serialised
#   (``orjson.dumps``, done in the worker): the parent hands it on as
#   :meth:`Converted.from_json <fhir_iapt.results.Converted.from_json>`, which writers write
#   as they are and which parses to the dict only when someone asks for ``bundle``.
#
# At most ``2 * workers`` chunks are in flight, so memory stays flat however large the export.

#: Records handed to a worker process at a time (amortises pickling and scheduling)...
_CHUNK = 512
#: ...and at most about this many bytes of input (SourceRecord.size): a record may be up to
#: the line-length limit and decode to many times its bytes, so by count alone one chunk could
#: hold a whole input (ten 1 MB NDJSON lines of small objects: 470 MB in the parent, 530 MB in
#: a worker).
_CHUNK_BYTES = 1 << 20

_worker_state: dict[str, Any] = {}

#: A record on its way to a worker: (key tuple index or -1, data, and its Location's file, row,
#: line, element, field).
_Packed = tuple[int, Any, str | None, int | None, int | None, str | None, str | None]
#: A record's result on its way back: a Converted's (key, bundle bytes, kind), or the result.
_Returned = tuple[str, bytes, BundleKind] | Skipped | Rejected


def _worker_init(mapping_path: str, options: BuildOptions, consent: ConsentSource | None) -> None:
    _worker_state["mapping"] = load_mapping(mapping_path)
    _worker_state["options"] = options
    _worker_state["consent"] = consent  # ConsentFiles arrive as paths and re-read live here


def _pack(records: list[SourceRecord]) -> tuple[list[tuple[str, ...]], list[_Packed]]:
    """Records in a compact picklable form (:func:`_unpack` undoes it; tested)."""
    keysets: dict[tuple[str, ...], int] = {}
    packed: list[_Packed] = []
    for record in records:
        data = record.data
        at = record.location
        if type(data) is dict and all(type(v) is str for v in data.values()):
            keys = tuple(data)
            index = keysets.setdefault(keys, len(keysets))
            values = tuple(data.values())
            packed.append((index, values, at.file, at.row, at.line, at.element, at.field))
        else:
            data = portable(record).data
            packed.append((-1, data, at.file, at.row, at.line, at.element, at.field))
    return list(keysets), packed


def _unpack(keysets: list[tuple[str, ...]], packed: list[_Packed]) -> Iterator[SourceRecord]:
    for index, data, file, row, line, element, field_name in packed:
        value = dict(zip(keysets[index], data, strict=True)) if index >= 0 else data
        location = Location(file=file, row=row, line=line, element=element, field=field_name)
        yield revive(SourceRecord(value, location))


def _send_back(result: Result) -> _Returned:
    if isinstance(result, Converted):
        return (result.key, result.json(), result.kind)
    return result


def _worker_convert(keysets: list[tuple[str, ...]], packed: list[_Packed]) -> list[_Returned]:
    mapping: Mapping[Any] = _worker_state["mapping"]
    options: BuildOptions = _worker_state["options"]
    consent: ConsentSource | None = _worker_state["consent"]
    return [
        _send_back(convert_record(record, mapping, options, consent=consent))
        for record in _unpack(keysets, packed)
    ]


def _worker_convert_pickled(work: bytes) -> list[_Returned]:
    keysets, packed = pickle.loads(work)  # noqa: S301 - bytes the parent pickled
    del work
    return _worker_convert(keysets, packed)


def _received(returned: _Returned, location: Location) -> Result:
    if isinstance(returned, tuple):
        key, data, kind = returned
        return Converted.from_json(key, data, location, kind)
    return returned


def _chunks(items: Iterable[SourceRecord | ReadError]) -> Iterator[list[SourceRecord | ReadError]]:
    chunk: list[SourceRecord | ReadError] = []
    size = 0
    for item in items:
        chunk.append(item)
        if isinstance(item, SourceRecord):
            size += item.size
        if len(chunk) >= _CHUNK or size >= _CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _parallel(
    stream: BinaryIO,
    name: str,
    mapping: Mapping[Any],
    options: BuildOptions,
    pool: Executor,
    workers: int,
) -> Iterator[Result]:
    # per chunk in flight: its ReadErrors and its records' locations (not their data, which
    # the worker has), and the worker's answer
    pending: list[tuple[list[Location | ReadError], Future[list[_Returned]]]] = []

    def drain_one() -> Iterator[Result]:
        places, future = pending.pop(0)
        converted = iter(future.result())
        for item in places:
            if isinstance(item, ReadError):
                yield Rejected(item, item.location or Location(file=name))
            else:
                yield _received(next(converted), item)

    for chunk in _chunks(read_source(stream, name=name, mapping=mapping)):
        places = [i if isinstance(i, ReadError) else i.location for i in chunk]
        # pickled here, so what waits in the pool's queue is bytes, not the decoded records
        # (which can be many times bigger)
        work = pickle.dumps(_pack([i for i in chunk if isinstance(i, SourceRecord)]), protocol=5)
        del chunk
        pending.append((places, pool.submit(_worker_convert_pickled, work)))
        if len(pending) >= 2 * workers:
            yield from drain_one()
    while pending:
        yield from drain_one()


#: With ``workers=0``, input smaller than this (all files together) is converted in this
#: process: starting worker processes costs about what converting a few thousand records does.
AUTO_MIN_BYTES = 4 << 20


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _auto_workers(paths: list[str | os.PathLike[str]]) -> int:
    """``workers=0``: one per usable CPU for input worth it, else 1 (this process)."""
    cpus = _usable_cpus()
    if cpus < 2:
        return 1
    total = 0
    for path in paths:
        try:
            total += Path(path).stat().st_size
        except OSError:
            continue  # reported as a Rejected when the file is opened
        if total >= AUTO_MIN_BYTES:
            return cpus
    return 1


class ReadProgress:
    """How far :func:`convert_files` has read, for a progress display: the bytes of the files
    it finished plus the position in the one it is reading (one object may follow several
    calls, e.g. one per input file)."""

    def __init__(self) -> None:
        self._finished = 0
        self._current: BinaryIO | None = None

    def _reading(self, fh: BinaryIO | None) -> None:
        if self._current is not None:
            self._finished += self._position()
        self._current = fh

    def _position(self) -> int:
        fh = self._current
        if fh is None or fh.closed:
            return 0
        try:
            return fh.tell()
        except (OSError, ValueError):
            return 0

    @property
    def bytes_read(self) -> int:
        return self._finished + self._position()


def convert_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    mapping: MappingRef,
    options: BuildOptions = DEFAULT_OPTIONS,
    validation: Validation = "first",
    workers: int = 1,
    shape_cache: ShapeCache | None = None,
    consent: ConsentSource | None = None,
    progress: ReadProgress | None = None,
) -> Iterator[Result]:
    """Convert whole files in order; ``workers > 1`` maps and builds on that many processes.

    ``workers=0`` is one process per usable CPU, except for input too small to repay starting
    them (under :data:`AUTO_MIN_BYTES` in all), which is converted in this process: so 0 is
    never slower than 1. A file that cannot be opened yields one Rejected (ReadError) and the
    run goes on.
    """
    resolved = _resolve(mapping)
    check = _Checker(validation, cache=shape_cache, mapping=resolved, options=options)
    paths = list(paths)
    if workers == 0:
        workers = _auto_workers(paths)
    pool: ProcessPoolExecutor | None = None
    if workers > 1:
        if resolved.path is None:
            raise ValueError("parallel conversion needs a mapping loaded from a file")
        pool = ProcessPoolExecutor(
            max_workers=workers,
            initializer=_worker_init,
            initargs=(str(resolved.path), options, consent),
        )
    try:
        for path in paths:
            name = Path(path).name
            try:
                fh = Path(path).open("rb")  # noqa: SIM115 - closed below, generator-scoped
            except OSError as exc:
                err = ReadError(
                    f"cannot open input: {exc.strerror or exc}", location=Location(file=name)
                )
                yield Rejected(err, Location(file=name))
                continue
            if progress is not None:
                progress._reading(fh)
            with fh:
                results = (
                    _parallel(fh, name, resolved, options, pool, workers)
                    if pool is not None
                    else (
                        convert_record(item, resolved, options, consent=consent)
                        if isinstance(item, SourceRecord)
                        else Rejected(item, item.location or Location(file=name))
                        for item in read_source(fh, name=name, mapping=resolved)
                    )
                )
                for result in results:
                    yield check(result)
                if progress is not None:
                    progress._reading(None)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def convert_file(
    path: str | os.PathLike[str],
    *,
    mapping: MappingRef,
    options: BuildOptions = DEFAULT_OPTIONS,
    validation: Validation = "first",
    workers: int = 1,
    shape_cache: ShapeCache | None = None,
    consent: ConsentSource | None = None,
) -> Iterator[Result]:
    """Stream one file's results (see :func:`convert_files`)."""
    return convert_files(
        [path],
        mapping=mapping,
        options=options,
        validation=validation,
        workers=workers,
        shape_cache=shape_cache,
        consent=consent,
    )


@dataclass
class Tally:
    """Counts by outcome for ``summary.json`` (no patient data: counts and codes only)."""

    records: int = 0
    converted: int = 0

    def __post_init__(self) -> None:
        self.skipped: dict[str, int] = {}
        self.rejected: dict[str, int] = {}

    def add(self, result: Result) -> None:
        self.records += 1
        if isinstance(result, Converted):
            self.converted += 1
        elif isinstance(result, Skipped):
            self.skipped[result.reason] = self.skipped.get(result.reason, 0) + 1
        else:
            code = result.error.error_code
            self.rejected[code] = self.rejected.get(code, 0) + 1

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "converted": self.converted,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": self.rejected_total,
        }


__all__ = [
    "DatasetReport",
    "MappingRef",
    "ReadProgress",
    "ShapeCache",
    "Tally",
    "Validation",
    "convert_bytes",
    "convert_dataset",
    "convert_file",
    "convert_files",
    "convert_record",
    "convert_stream",
    "gate_and_build",
    "validated",
]
