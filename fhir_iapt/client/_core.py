"""The client's one core: build requests, read answers, decide what is an error. No I/O here.

Each interaction is a *flow*: a generator that yields the ``httpx.Request`` it needs sent and is
resumed with an :class:`Answer` (the final response after retries, and how many attempts it
took); its return value is the interaction's result. The sync and async clients only drive flows,
so request building, error mapping and result shapes exist once::

    flow = core.transaction(bundle)
    request = next(flow)
    while True:
        answer = exchange(request)        # send with retries: sync or async
        request = flow.send(answer)       # StopIteration(value) ends it
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import orjson

from fhir_iapt.client._errors import (
    error_for_response,
    outcome_of,
    parse_json,
    request_info,
)
from fhir_iapt.errors import ConfigError, DeliveryError, Issue, ServerError

FHIR_JSON = "application/fhir+json"
T = TypeVar("T")
SearchParams = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Answer:
    """The final response to one request, after however many attempts it took."""

    response: httpx.Response
    attempts: int


Flow = Generator[httpx.Request, Answer, T]


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """One entry of a transaction-response or batch-response."""

    index: int
    status: int
    location: str | None = None
    etag: str | None = None
    outcome: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class BundleResponse:
    """What a server answered to a transaction or batch Bundle."""

    bundle: dict[str, Any]
    entries: tuple[EntryOutcome, ...]
    status_code: int
    attempts: int

    @property
    def ok(self) -> bool:
        return all(entry.ok for entry in self.entries)

    @property
    def failed(self) -> tuple[EntryOutcome, ...]:
        return tuple(entry for entry in self.entries if not entry.ok)

    @property
    def locations(self) -> tuple[str, ...]:
        return tuple(entry.location for entry in self.entries if entry.location)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a server answered to a create or update."""

    status_code: int
    location: str | None
    resource: dict[str, Any] | None
    attempts: int

    @property
    def created(self) -> bool:
        """True when the server made a new resource (201), False when one already matched."""
        return self.status_code == 201


def _entry_status(raw: Any) -> int:
    text = str(raw or "").strip()
    head = text.split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


def entry_outcomes(bundle: Mapping[str, Any]) -> tuple[EntryOutcome, ...]:
    """Per-entry status, location and OperationOutcome of a transaction/batch-response."""
    out: list[EntryOutcome] = []
    for index, entry in enumerate(bundle.get("entry") or []):
        response = entry.get("response") if isinstance(entry, dict) else None
        if not isinstance(response, dict):
            response = {}
        out.append(
            EntryOutcome(
                index=index,
                status=_entry_status(response.get("status")),
                location=response.get("location"),
                etag=response.get("etag"),
                outcome=outcome_of(response.get("outcome")),
            )
        )
    return tuple(out)


def _entries_outcome(failed: Sequence[EntryOutcome]) -> dict[str, Any]:
    """One OperationOutcome for failed entries; each issue's expression names its entry."""
    issues: list[dict[str, Any]] = []
    for entry in failed:
        where = f"Bundle.entry[{entry.index}]"
        raw_issues = (entry.outcome or {}).get("issue") or [
            {"severity": "error", "code": "processing", "diagnostics": f"status {entry.status}"}
        ]
        for raw in raw_issues:
            issue = dict(raw)
            issue["expression"] = [where, *issue.get("expression", [])]
            issues.append(issue)
    return {"resourceType": "OperationOutcome", "issue": issues}


class ClientCore:
    """Requests and answers for one FHIR base URL; shared by ``FhirClient`` and the async one."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("FHIR base URL must be an absolute http(s) URL", error_code="FI801")
        self.base_url = base_url.rstrip("/")
        self.headers = {"Accept": FHIR_JSON, "User-Agent": "fhir-iapt", **(headers or {})}

    # ---- requests ---------------------------------------------------------------------------

    def url(self, path: str = "") -> str:
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def request(
        self,
        method: str,
        path_or_url: str = "",
        *,
        body: Any = None,
        params: SearchParams | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        url = path_or_url if path_or_url.startswith(self.base_url) else self.url(path_or_url)
        all_headers = {**self.headers, **(headers or {})}
        content: bytes | None = None
        if body is not None:
            content = orjson.dumps(body)
            all_headers["Content-Type"] = FHIR_JSON
        query = httpx.QueryParams(_pairs(params)) if params is not None else None
        return httpx.Request(method, url, params=query, content=content, headers=all_headers)

    # ---- answers ----------------------------------------------------------------------------

    @staticmethod
    def body_or_raise(answer: Answer) -> Any:
        """The JSON body of a successful answer; the mapped error otherwise."""
        response = answer.response
        if response.status_code >= 400:
            raise error_for_response(response, request_info(response.request))
        return parse_json(response)

    @staticmethod
    def _expect(body: Any, resource_type: str, answer: Answer) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("resourceType") != resource_type:
            info = request_info(answer.response.request)
            raise ServerError(
                f"{info.method} {info.url}: expected a {resource_type}, got something else",
                request=info,
                status_code=answer.response.status_code,
                error_code="FI723",
            )
        return body

    # ---- flows ------------------------------------------------------------------------------

    def _bundle(
        self, bundle: Mapping[str, Any], kind: str, raise_on_entries: bool
    ) -> Flow[BundleResponse]:
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != kind:
            raise DeliveryError(f"not a {kind} Bundle; refusing to send it", error_code="FI702")
        answer = yield self.request("POST", "", body=bundle)
        body = self._expect(self.body_or_raise(answer), "Bundle", answer)
        entries = entry_outcomes(body)
        result = BundleResponse(body, entries, answer.response.status_code, answer.attempts)
        if raise_on_entries and not result.ok:
            info = request_info(answer.response.request)
            outcome = _entries_outcome(result.failed)
            statuses = ", ".join(f"entry {e.index}: {e.status}" for e in result.failed)
            message = f"{info.method} {info.url}: transaction has failed entries ({statuses})"
            raise ServerError(
                message,
                request=info,
                status_code=max(e.status for e in result.failed),
                server_outcome=outcome,
                issues=[Issue(diagnostics=message, code="processing", error_code="FI724")],
                error_code="FI724",
            )
        return result

    def transaction(self, bundle: Mapping[str, Any]) -> Flow[BundleResponse]:
        """All-or-nothing; a failed entry (even inside a 200 answer) raises ServerError FI724."""
        return self._bundle(bundle, "transaction", raise_on_entries=True)

    def batch(self, bundle: Mapping[str, Any]) -> Flow[BundleResponse]:
        """Entries succeed or fail one by one: see ``BundleResponse.failed``."""
        return self._bundle(bundle, "batch", raise_on_entries=False)

    def _write(self, request: httpx.Request) -> Flow[WriteResult]:
        answer = yield request
        body = self.body_or_raise(answer)
        resource = body if isinstance(body, dict) and outcome_of(body) is None else None
        return WriteResult(
            status_code=answer.response.status_code,
            location=answer.response.headers.get("location")
            or answer.response.headers.get("content-location"),
            resource=resource,
            attempts=answer.attempts,
        )

    def create(
        self, resource: Mapping[str, Any], *, if_none_exist: str | None = None
    ) -> Flow[WriteResult]:
        rtype = _resource_type(resource)
        headers = {"If-None-Exist": if_none_exist} if if_none_exist else None
        return self._write(self.request("POST", rtype, body=resource, headers=headers))

    def update(self, resource: Mapping[str, Any]) -> Flow[WriteResult]:
        rtype = _resource_type(resource)
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid:
            raise DeliveryError(f"{rtype} has no id; update needs one", error_code="FI702")
        return self._write(self.request("PUT", f"{rtype}/{rid}", body=resource))

    def read(self, resource_type: str, resource_id: str) -> Flow[dict[str, Any]]:
        answer = yield self.request("GET", f"{resource_type}/{resource_id}")
        return self._expect(self.body_or_raise(answer), resource_type, answer)

    def capabilities(self) -> Flow[dict[str, Any]]:
        answer = yield self.request("GET", "metadata")
        return self._expect(self.body_or_raise(answer), "CapabilityStatement", answer)

    def search(
        self,
        resource_type: str,
        params: SearchParams | None = None,
        *,
        follow_next: bool = False,
        max_pages: int = 100,
    ) -> Flow[dict[str, Any]]:
        """A searchset Bundle; with ``follow_next`` the entries of all pages, in one Bundle."""
        answer = yield self.request("GET", resource_type, params=params)
        first = self._expect(self.body_or_raise(answer), "Bundle", answer)
        entries: list[Any] = list(first.get("entry") or [])
        page = first
        pages = 1
        while follow_next and pages < max_pages:
            next_url = _link(page, "next")
            if next_url is None:
                break
            if not next_url.startswith(self.base_url):
                # Never send our credentials to wherever a server's link points.
                info = request_info(answer.response.request)
                raise ServerError(
                    f"{info.method} {info.url}: next link leaves the server's base URL",
                    request=info,
                    error_code="FI725",
                )
            answer = yield self.request("GET", next_url)
            page = self._expect(self.body_or_raise(answer), "Bundle", answer)
            entries.extend(page.get("entry") or [])
            pages += 1
        if follow_next:
            merged = {key: value for key, value in first.items() if key not in ("entry", "link")}
            merged["link"] = [
                link for link in first.get("link", []) if link.get("relation") == "self"
            ]
            if entries:
                merged["entry"] = entries
            return merged
        return first


def _pairs(params: SearchParams) -> list[tuple[str, str | int | float | bool | None]]:
    """Search parameters as ordered pairs; a mapping value that is a list repeats the name."""
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    items = params.items() if isinstance(params, Mapping) else params
    for name, value in items:
        if isinstance(value, str):
            pairs.append((name, value))
        else:
            pairs.extend((name, item) for item in value)
    return pairs


def _resource_type(resource: Mapping[str, Any]) -> str:
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise DeliveryError(
            "resource has no resourceType",
            error_code="FI702",
            issues=[Issue("resourceType is required", code="required")],
        )
    return rtype


def _link(bundle: Mapping[str, Any], relation: str) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == relation:
            url = link.get("url")
            return url if isinstance(url, str) else None
    return None


__all__ = [
    "FHIR_JSON",
    "Answer",
    "BundleResponse",
    "ClientCore",
    "EntryOutcome",
    "Flow",
    "SearchParams",
    "WriteResult",
    "entry_outcomes",
]
