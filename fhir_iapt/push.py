"""push: deliver the output of ``convert`` / ``outcomes`` to a FHIR server, one Bundle at a time.

Inputs (files or folders, in the order given):

* ``bundles.ndjson`` (or any NDJSON of Bundles, e.g. a previous run's ``failed.ndjson``): each
  line is a transaction or batch Bundle, sent as it is;
* a folder holding ``bundles.ndjson``: that file;
* a Bulk Data folder (``<ResourceType>.ndjson``, resources with their ids): the resources are
  sent as transaction Bundles of ``PUT <Type>/<id>`` entries, ``chunk_size`` at a time, types in
  dependency order (Organization, Practitioner, PractitionerRole, Patient, then what refers to
  them), so a resource's references exist before it arrives. PUT with the converter's
  deterministic ids makes a resend overwrite, never duplicate.

For each Bundle, one :class:`PushResult` (``results.ndjson``): delivered or failed, attempts,
server locations, or the OperationOutcome. Undelivered Bundles are kept verbatim for
``failed.ndjson``, which ``push`` takes again as input. Results hold no patient data: bundle ids,
statuses, server locations and outcome issues without their ``diagnostics`` text (servers often
quote the refused value there).

Conditional creates are fitted to the server (``conditional="auto"``, see
:mod:`fhir_iapt.client._conditional`): where its CapabilityStatement does not offer conditional
create by identifier for a type, that type's entries go as ``PUT <Type>/<id>`` under the
converter's deterministic id. ``failed.ndjson`` still keeps the Bundles as they were read.

When the server cannot be reached after all retries, or refuses our credentials, the remaining
Bundles are not attempted (status ``not-attempted``, all in ``failed.ndjson``) unless
``keep_going`` is set: a dead server should not cost the whole retry budget once per Bundle.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from fhir_iapt.client import FhirClient, attempts_of
from fhir_iapt.client._conditional import ConditionalMode, conditional_types, fit_bundle
from fhir_iapt.emit.ndjson import BUNDLES_FILE, FAILED_FILE, RESULTS_FILE
from fhir_iapt.errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    Location,
    ReadError,
    TransportError,
)

#: Bulk files are sent in this order; types not named here follow, alphabetically.
DEPENDENCY_ORDER: tuple[str, ...] = (
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "EpisodeOfCare",
    "Encounter",
    "Condition",
    "QuestionnaireResponse",
    "Observation",
    "ServiceRequest",
    "Task",
)
_NOT_BULK = {"bundles", "results", "failed", "rejects", "summary"}
_PUSH_NAMESPACE = uuid.UUID("6f1d6a52-5c1e-4c53-9a0e-2f8f3b1e7a10")

Status = Literal["delivered", "failed", "not-attempted"]


@dataclass(frozen=True, slots=True)
class PushItem:
    """One Bundle to send, with where it came from; ``raw`` is the line, kept verbatim."""

    raw: bytes
    location: Location
    bundle: dict[str, Any] | None = None
    error: ReadError | None = None


@dataclass(frozen=True, slots=True)
class PushResult:
    """What happened to one Bundle."""

    bundle_id: str | None
    source: str
    status: Status
    attempts: int = 0
    locations: tuple[str, ...] = ()
    http_status: int | None = None
    error_code: str | None = None
    outcome: dict[str, Any] | None = None

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "bundle": self.bundle_id,
            "source": self.source,
            "status": self.status,
            "attempts": self.attempts,
        }
        if self.locations:
            out["locations"] = list(self.locations)
        if self.http_status is not None:
            out["httpStatus"] = self.http_status
        if self.error_code:
            out["error"] = self.error_code
        if self.outcome is not None:
            out["outcome"] = _without_diagnostics(self.outcome)
        return out


def _without_diagnostics(outcome: dict[str, Any]) -> dict[str, Any]:
    issues = [
        {key: value for key, value in issue.items() if key != "diagnostics"}
        for issue in outcome.get("issue", [])
        if isinstance(issue, dict)
    ]
    return {"resourceType": "OperationOutcome", "issue": issues}


@dataclass
class PushSummary:
    """Counts for the run; ``results`` in input order."""

    results: list[PushResult] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def all_delivered(self) -> bool:
        return all(result.delivered for result in self.results)


# ---- reading inputs ---------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ReadError("cannot open input file", location=Location(file=str(path))) from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped:
                yield number, stripped


def read_bundles(path: Path) -> Iterator[PushItem]:
    """Each non-empty line of an NDJSON file of Bundles; bad lines come with their ReadError."""
    for row, (number, raw) in enumerate(_lines(path), start=1):
        location = Location(file=str(path), row=row, line=number)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            yield PushItem(raw, location, error=ReadError("line is not JSON", location=location))
            continue
        if (
            not isinstance(value, dict)
            or value.get("resourceType") != "Bundle"
            or value.get("type") not in ("transaction", "batch")
        ):
            error = ReadError("line is not a transaction or batch Bundle", location=location)
            yield PushItem(raw, location, error=error)
            continue
        yield PushItem(raw, location, bundle=value)


def bulk_files(folder: Path) -> list[Path]:
    """``<Type>.ndjson`` files of a Bulk Data folder, in dependency order."""
    files = [p for p in folder.glob("*.ndjson") if p.stem not in _NOT_BULK and p.stem[:1].isupper()]
    rank = {name: index for index, name in enumerate(DEPENDENCY_ORDER)}
    return sorted(files, key=lambda p: (rank.get(p.stem, len(rank)), p.stem))


def _bulk_bundle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    keys = "\n".join(entry["request"]["url"] for entry in entries)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(_PUSH_NAMESPACE, keys)),
        "type": "transaction",
        "entry": entries,
    }


def read_bulk(folder: Path, *, chunk_size: int = 100) -> Iterator[PushItem]:
    """Transaction Bundles of ``PUT <Type>/<id>`` made from a Bulk Data folder."""
    for path in bulk_files(folder):
        chunk: list[dict[str, Any]] = []
        first: Location | None = None
        for row, (number, raw) in enumerate(_lines(path), start=1):
            location = Location(file=str(path), row=row, line=number)
            try:
                resource = orjson.loads(raw)
            except orjson.JSONDecodeError:
                resource = None
            rtype = resource.get("resourceType") if isinstance(resource, dict) else None
            rid = resource.get("id") if isinstance(resource, dict) else None
            if rtype != path.stem or not isinstance(rid, str) or not rid:
                error = ReadError(f"line is not a {path.stem} with an id", location=location)
                yield PushItem(raw, location, error=error)
                continue
            first = first or location
            chunk.append(
                {
                    "fullUrl": f"{rtype}/{rid}",
                    "resource": resource,
                    "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
                }
            )
            if len(chunk) >= chunk_size:
                yield _item(_bulk_bundle(chunk), first)
                chunk, first = [], None
        if chunk and first is not None:
            yield _item(_bulk_bundle(chunk), first)


def _item(bundle: dict[str, Any], location: Location) -> PushItem:
    return PushItem(orjson.dumps(bundle), location, bundle=bundle)


def read_inputs(paths: Iterable[Path], *, chunk_size: int = 100) -> Iterator[PushItem]:
    """Everything to send from the given files and folders, in order."""
    for path in paths:
        if path.is_dir():
            if (path / BUNDLES_FILE).is_file():
                yield from read_bundles(path / BUNDLES_FILE)
            elif bulk_files(path):
                yield from read_bulk(path, chunk_size=chunk_size)
            else:
                raise ConfigError(
                    f"{path}: no {BUNDLES_FILE} and no <ResourceType>.ndjson files to push",
                    error_code="FI804",
                )
        elif path.is_file():
            yield from read_bundles(path)
        else:
            raise ConfigError(f"{path}: no such file or folder", error_code="FI804")


# ---- sending ----------------------------------------------------------------------------------


class BundleFitter:
    """Rewrites conditional creates the server cannot honour (decided once per run)."""

    def __init__(self, client: FhirClient, mode: ConditionalMode = "auto") -> None:
        self.client = client
        self.mode = mode
        self._keep: frozenset[str] | None = None
        self._decided = mode != "auto"
        if mode == "put":
            self._keep = frozenset()

    def _decide(self) -> None:
        try:
            self._keep = conditional_types(self.client.capabilities())
        except (TransportError, AuthError):
            return  # the server is not answering us yet: ask again before the next Bundle
        except DeliveryError:
            self._keep = None  # no usable CapabilityStatement: send Bundles as built
        self._decided = True

    def __call__(self, bundle: dict[str, Any]) -> dict[str, Any]:
        if not self._decided:
            self._decide()
        return fit_bundle(bundle, self._keep)


def push_one(client: FhirClient, item: PushItem, fit: BundleFitter | None = None) -> PushResult:
    """Send one item; every failure becomes a failed PushResult (ConfigError propagates)."""
    source = item.location.render()
    if item.bundle is None:
        error = item.error or ReadError("unreadable", location=item.location)
        return PushResult(
            None,
            source,
            "failed",
            error_code=error.error_code,
            outcome=error.to_operation_outcome(),
        )
    bundle_id = item.bundle.get("id") if isinstance(item.bundle.get("id"), str) else None
    bundle = fit(item.bundle) if fit is not None else item.bundle
    try:
        if bundle.get("type") == "batch":
            answer = client.batch(bundle)
        else:
            answer = client.transaction(bundle)
    except DeliveryError as exc:
        return PushResult(
            bundle_id,
            source,
            "failed",
            attempts=attempts_of(exc),
            http_status=exc.status_code,
            error_code=exc.error_code,
            outcome=exc.to_operation_outcome(),
        )
    if not answer.ok:
        failed = answer.failed
        issues: list[dict[str, Any]] = []
        for entry in failed:
            for issue in (entry.outcome or {}).get("issue", []) or [
                {"severity": "error", "code": "processing"}
            ]:
                issues.append({**issue, "expression": [f"Bundle.entry[{entry.index}]"]})
        return PushResult(
            bundle_id,
            source,
            "failed",
            attempts=answer.attempts,
            locations=answer.locations,
            http_status=max(entry.status for entry in failed),
            error_code="FI724",
            outcome={"resourceType": "OperationOutcome", "issue": issues},
        )
    return PushResult(
        bundle_id,
        source,
        "delivered",
        attempts=answer.attempts,
        locations=answer.locations,
        http_status=answer.status_code,
    )


def _fatal(result: PushResult) -> bool:
    """Failures that say the next Bundle will fail the same way (server gone, credentials bad)."""
    return result.error_code is not None and (
        result.error_code.startswith("FI71") or result.error_code.startswith("FI73")
    )


def push_items(
    client: FhirClient,
    items: Iterable[PushItem],
    *,
    keep_going: bool = False,
    conditional: ConditionalMode = "auto",
) -> Iterator[tuple[PushItem, PushResult]]:
    """Send items in order, yielding each with its result (see the module docstring)."""
    fit = BundleFitter(client, conditional)
    stopped = False
    for item in items:
        if stopped:
            bundle_id = item.bundle.get("id") if item.bundle else None
            yield (
                item,
                PushResult(
                    bundle_id if isinstance(bundle_id, str) else None,
                    item.location.render(),
                    "not-attempted",
                ),
            )
            continue
        result = push_one(client, item, fit)
        yield item, result
        if not keep_going and _fatal(result):
            stopped = True


class PushOutput:
    """``results.ndjson`` and ``failed.ndjson`` in ``out_dir``; failed.ndjson only if needed.

    Files are written under temporary names and renamed when closed, so a run that is cut short
    never leaves a failed.ndjson that looks complete but is not.
    """

    def __init__(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.results_path = out_dir / RESULTS_FILE
        self.failed_path = out_dir / FAILED_FILE
        self._results_tmp = out_dir / f".{RESULTS_FILE}.part"
        self._failed_tmp = out_dir / f".{FAILED_FILE}.part"
        self._results = self._results_tmp.open("wb")
        self._failed = self._failed_tmp.open("wb")
        self.failed_count = 0

    def write(self, item: PushItem, result: PushResult) -> None:
        self._results.write(orjson.dumps(result.to_json()) + b"\n")
        if not result.delivered:
            self._failed.write(item.raw + b"\n")
            self.failed_count += 1

    def close(self) -> None:
        self._results.close()
        self._failed.close()
        self._results_tmp.replace(self.results_path)
        if self.failed_count:
            self._failed_tmp.replace(self.failed_path)
        else:
            self._failed_tmp.unlink()
            self.failed_path.unlink(missing_ok=True)

    def abort(self) -> None:
        """Keep the results written so far (they are true); leave any old failed.ndjson alone."""
        self._results.close()
        self._failed.close()
        self._results_tmp.replace(self.results_path)
        self._failed_tmp.unlink()

    def __enter__(self) -> PushOutput:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def check_inputs(paths: Iterable[Path]) -> list[Path]:
    """The inputs, each checked to exist and hold something to push (ConfigError otherwise)."""
    checked: list[Path] = []
    for path in paths:
        if path.is_dir():
            if not (path / BUNDLES_FILE).is_file() and not bulk_files(path):
                raise ConfigError(
                    f"{path}: no {BUNDLES_FILE} and no <ResourceType>.ndjson files to push",
                    error_code="FI804",
                )
        elif not path.is_file():
            raise ConfigError(f"{path}: no such file or folder", error_code="FI804")
        checked.append(path)
    if not checked:
        raise ConfigError("nothing to push: give at least one file or folder", error_code="FI804")
    return checked


def default_out_dir(first_input: Path) -> Path:
    """Beside the input: the folder itself, or the file's folder."""
    return first_input if first_input.is_dir() else first_input.parent


def push(
    client: FhirClient,
    inputs: Iterable[Path],
    out_dir: Path | None = None,
    *,
    chunk_size: int = 100,
    keep_going: bool = False,
    conditional: ConditionalMode = "auto",
    on_result: Callable[[PushResult], None] | None = None,
) -> PushSummary:
    """Push files/folders; write ``results.ndjson`` (and ``failed.ndjson``) into ``out_dir``.

    ``out_dir`` defaults to beside the first input. ``on_result`` is called after each Bundle
    (the CLI's progress line).
    """
    paths = check_inputs(inputs)
    summary = PushSummary()
    items = read_inputs(paths, chunk_size=chunk_size)
    with PushOutput(out_dir or default_out_dir(paths[0])) as output:
        for item, result in push_items(
            client, items, keep_going=keep_going, conditional=conditional
        ):
            output.write(item, result)
            summary.results.append(result)
            if on_result is not None:
                on_result(result)
    return summary


__all__ = [
    "BUNDLES_FILE",
    "DEPENDENCY_ORDER",
    "FAILED_FILE",
    "RESULTS_FILE",
    "BundleFitter",
    "PushItem",
    "PushOutput",
    "PushResult",
    "PushSummary",
    "bulk_files",
    "check_inputs",
    "default_out_dir",
    "push",
    "push_items",
    "push_one",
    "read_bulk",
    "read_bundles",
    "read_inputs",
]
