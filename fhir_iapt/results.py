"""What converting one source record can come to: converted, skipped, or rejected.

Every caller (library, CLI, relay) gets one of these per record, in input order, and nothing is
ever dropped silently: a skipped record says why (no referral decision, no consent…), a rejected
one carries the OperationOutcome that says where and what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fhir_iapt.errors import FhirIaptError, Location

#: The kind of bundle a record became.
BundleKind = Literal["referral", "outcome"]


@dataclass(frozen=True, slots=True)
class Converted:
    """A record that became one transaction Bundle (a plain JSON-ready dict)."""

    key: str  # natural key of the source record, e.g. "<source_system>|<record_id>"; no PHI
    bundle: dict[str, Any]
    location: Location
    kind: BundleKind = "referral"


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
