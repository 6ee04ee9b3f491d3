"""What converting one source record can come to: converted, skipped, or rejected.

Every caller (library, CLI, relay) gets one of these per record, in input order, and nothing is
ever dropped silently: a skipped record says why (no referral decision, no consent…), a rejected
one carries the OperationOutcome that says where and what.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from typing import Any, Literal, NoReturn

import orjson

from fhir_iapt.errors import FhirIaptError, Location

#: The kind of bundle a record became.
BundleKind = Literal["referral", "outcome"]


class Converted:
    """A record that became one transaction Bundle (a plain JSON-ready dict).

    A bundle made in a worker process arrives serialised (:meth:`from_json`, the bytes of
    ``orjson.dumps(bundle)``): ``bundle`` parses it on first use, and :meth:`json` gives those
    bytes back without serialising again for as long as the dict has not been handed out (a
    dict handed out may be changed, so from then on :meth:`json` serialises it afresh). Frozen,
    compared and printed like the dataclass it was: ``key``, ``bundle``, ``location``, ``kind``.
    """

    __slots__ = ("_bundle", "_json", "key", "kind", "location")
    __match_args__ = ("key", "bundle", "location", "kind")

    key: str  # natural key of the source record, e.g. "<source_system>|<record_id>"; no PHI
    location: Location
    kind: BundleKind
    _bundle: dict[str, Any] | None
    _json: bytes | None

    def __init__(
        self,
        key: str,
        bundle: dict[str, Any],
        location: Location,
        kind: BundleKind = "referral",
    ) -> None:
        self._set(key, bundle, None, location, kind)

    @classmethod
    def from_json(
        cls, key: str, data: bytes, location: Location, kind: BundleKind = "referral"
    ) -> Converted:
        """A result whose bundle is ``orjson.loads(data)``, parsed only when asked for."""
        made = cls.__new__(cls)
        made._set(key, None, data, location, kind)
        return made

    def _set(
        self,
        key: str,
        bundle: dict[str, Any] | None,
        data: bytes | None,
        location: Location,
        kind: BundleKind,
    ) -> None:
        setter = object.__setattr__
        setter(self, "key", key)
        setter(self, "_bundle", bundle)
        setter(self, "_json", data)
        setter(self, "location", location)
        setter(self, "kind", kind)

    @property
    def bundle(self) -> dict[str, Any]:
        bundle: dict[str, Any] | None = self._bundle
        if bundle is None:
            bundle = orjson.loads(self._json or b"null")
            object.__setattr__(self, "_bundle", bundle)
            object.__setattr__(self, "_json", None)  # the dict may now be changed
        assert bundle is not None
        return bundle

    def json(self, *, newline: bool = False) -> bytes:
        """``orjson.dumps(self.bundle)`` (+ ``\\n``): the bytes it arrived as, while untouched."""
        data: bytes | None = self._json
        if data is not None:
            return data + b"\n" if newline else data
        return orjson.dumps(self._bundle, option=orjson.OPT_APPEND_NEWLINE if newline else None)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        if self._bundle is None:
            return (_converted_from_json, (self.key, self._json, self.location, self.kind))
        return (Converted, (self.key, self._bundle, self.location, self.kind))

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Converted)
        return (self.key, self.bundle, self.location, self.kind) == (
            other.key,
            other.bundle,
            other.location,
            other.kind,
        )

    __hash__ = None  # type: ignore[assignment]  # the bundle is a dict: unhashable, as before

    def __repr__(self) -> str:
        return (
            f"Converted(key={self.key!r}, bundle={self.bundle!r}, "
            f"location={self.location!r}, kind={self.kind!r})"
        )


def _converted_from_json(key: str, data: bytes, location: Location, kind: BundleKind) -> Converted:
    return Converted.from_json(key, data, location, kind)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A readable, valid record that produces nothing, on purpose (e.g. no consent).

    ``reason`` is a stable code used as the summary's counter name, e.g. ``not-referred``,
    ``no-consent-to-refer``, ``outcomes-consent-withheld``; ``detail`` says it in words.
    """

    key: str | None
    reason: str
    detail: str
    location: Location


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record (or the unreadable rest of a file) that could not be converted."""

    error: FhirIaptError
    location: Location

    @property
    def outcome(self) -> dict[str, Any]:
        return self.error.to_operation_outcome()


Result = Converted | Skipped | Rejected

__all__ = ["BundleKind", "Converted", "Rejected", "Result", "Skipped"]
