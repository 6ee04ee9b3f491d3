"""Deterministic resource ids, business identifiers and conditional-create keys.

Re-converting the same export must give the same ids and the same ``ifNoneExist`` keys, so that
sending a bundle twice never creates duplicates on a server. Nothing here uses time or
randomness:

* a record's own resources get ``uuid5(namespace, source_system, record_id, role)``, where the
  role names the resource inside the record (``"Condition/0"``,
  ``"QuestionnaireResponse/PHQ-9"``, ``"Observation/score/PHQ-9"``…);
* resources shared across records (Patient, a Practitioner with a real identifier) get
  ``uuid5(namespace, resource type, identifier system, identifier value)``, so one patient has
  one id in every bundle. The trade-off: an NHS number has ~10^9 valid values, so anyone who
  knows the namespace can test a guess against a Patient id. The default namespace is public;
  :class:`~fhir_iapt.fhir.options.BuildOptions` lets a deployment choose a secret one.

The parts are joined with NUL, which no identifier or XML text can hold, so two different part
lists never give the same name.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from functools import lru_cache
from hashlib import sha1
from urllib.parse import quote

from fhir_iapt.systems import CANONICAL_BASE

#: Values that need neither search escaping nor percent-encoding.
_PLAIN = re.compile(r"[A-Za-z0-9._~:/-]*\Z")

#: namespace -> its 16 bytes (``UUID.bytes`` is recomputed from an int on every access).
_NAMESPACE_BYTES: dict[uuid.UUID, bytes] = {}

#: First hex digit of the clock_seq_hi byte -> that digit with the RFC 4122 variant bits (10xx).
_VARIANT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def _namespace_bytes(namespace: uuid.UUID) -> bytes:
    prefix = _NAMESPACE_BYTES.get(namespace)
    if prefix is None:
        prefix = _NAMESPACE_BYTES.setdefault(namespace, namespace.bytes)
    return prefix


def _uuid5_text(hexdigest: str) -> str:
    """The uuid5 string of a SHA-1 hex digest: version 5 and the RFC 4122 variant set."""
    h = hexdigest
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def deterministic_id(namespace: uuid.UUID, *parts: str) -> str:
    """``uuid5(namespace, "\\0".join(parts))`` as a lower-case string (a valid FHIR id).

    Computed straight from SHA-1 (RFC 4122 section 4.3) rather than through ``uuid.UUID``:
    the same value as ``str(uuid.uuid5(...))`` at a fraction of the cost (tested).
    """
    name = _namespace_bytes(namespace) + "\x00".join(parts).encode()
    return _uuid5_text(sha1(name, usedforsecurity=False).hexdigest())


def record_resource_id(namespace: uuid.UUID, source_system: str, record_id: str, role: str) -> str:
    """The id of the resource playing ``role`` in source record ``source_system|record_id``."""
    return deterministic_id(namespace, "record", source_system, record_id, role)


def shared_resource_id(namespace: uuid.UUID, resource_type: str, system: str, value: str) -> str:
    """The id of a resource shared across records, keyed by its business identifier."""
    return deterministic_id(namespace, "shared", resource_type, system, value)


#: :func:`shared_resource_id` remembered for ids that repeat across records (a referring
#: clinician, their role at a clinic); bounded, so memory stays flat. Not for Patient ids: one
#: per NHS number, they rarely repeat and would only churn the cache.
cached_shared_resource_id = lru_cache(maxsize=4096)(shared_resource_id)


class RecordIds:
    """Ids, identifiers and conditional-create keys of one source record's resources.

    The same values as :func:`record_resource_id`, :func:`record_identifier` and
    :func:`if_none_exist` (tested), computed from one SHA-1 state over the record's prefix
    (namespace, ``"record"``, system, record id) that each role's id only extends.
    """

    __slots__ = ("_plain", "_prefix", "record_id", "source_system")

    def __init__(self, namespace: uuid.UUID, source_system: str, record_id: str) -> None:
        self.source_system = source_system
        self.record_id = record_id
        name = f"record\x00{source_system}\x00{record_id}\x00".encode()
        self._prefix = sha1(_namespace_bytes(namespace) + name, usedforsecurity=False)
        self._plain = bool(_PLAIN.match(source_system) and _PLAIN.match(record_id))

    def resource_id(self, role: str) -> str:
        """``record_resource_id(namespace, source_system, record_id, role)``."""
        digest = self._prefix.copy()
        digest.update(role.encode())
        return _uuid5_text(digest.hexdigest())

    def identifier(self, role: str | None = None) -> dict[str, str]:
        """``record_identifier(source_system, record_id, role)``."""
        value = self.record_id if role is None else f"{self.record_id}/{role}"
        return {"system": self.source_system, "value": value}

    def if_none_exist(self, role: str | None = None) -> str:
        """``if_none_exist(self.identifier(role))``."""
        if self._plain and (role is None or _plain_role(role)):
            if role is None:
                return f"identifier={self.source_system}|{self.record_id}"
            return f"identifier={self.source_system}|{self.record_id}/{role}"
        return if_none_exist(self.identifier(role))


def record_identifier(
    source_system: str, record_id: str, role: str | None = None
) -> dict[str, str]:
    """The business identifier of a record's resource.

    ``system`` is the clinic's record-id system (from the mapping) and ``value`` the record id,
    followed by ``/<role>`` for every resource but the ServiceRequest itself (which *is* the
    record). No patient data: record ids are the clinic's keys.
    """
    value = record_id if role is None else f"{record_id}/{role}"
    return {"system": source_system, "value": value}


def project_identifier_system(kind: str) -> str:
    """``{CANONICAL_BASE}/Id/<kind>``: identifier systems the project mints itself."""
    return f"{CANONICAL_BASE}/Id/{kind}"


def escape_search_value(value: str) -> str:
    """Escape ``\\ | , $`` in a search token part (FHIR R4 search, "Escaping Search Parameters")."""
    if not any(c in value for c in "\\|,$"):
        return value
    return value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")


@lru_cache(maxsize=1024)
def _plain_role(role: str) -> bool:
    """Whether a role (a handful of fixed strings per mapping) needs no escaping."""
    return _PLAIN.match(role) is not None


@lru_cache(maxsize=1024)
def _plain_system(system: str) -> bool:
    """Whether an identifier system (a few per run) needs no escaping."""
    return _PLAIN.match(system) is not None


def if_none_exist(identifier: Mapping[str, str]) -> str:
    """The conditional-create query for a business identifier: ``identifier=<system>|<value>``.

    Search-escaped (``\\|,$``) and then percent-encoded as a query string value, keeping ``:``,
    ``/`` and the separating ``|`` readable; a server decodes it back to the same token.
    """
    system = identifier["system"]
    value = identifier["value"]
    if _plain_system(system) and _PLAIN.match(value):
        return f"identifier={system}|{value}"
    system = escape_search_value(system)
    value = escape_search_value(value)
    return "identifier=" + quote(f"{system}|{value}", safe=":/|")


__all__ = [
    "RecordIds",
    "cached_shared_resource_id",
    "deterministic_id",
    "escape_search_value",
    "if_none_exist",
    "project_identifier_system",
    "record_identifier",
    "record_resource_id",
    "shared_resource_id",
]
