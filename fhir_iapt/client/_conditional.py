"""Make conditional creates fit the server: keep them where it supports them, PUT elsewhere.

The converter writes shared resources as conditional creates (``POST <Type>`` with
``ifNoneExist: identifier=<system>|<value>``) and gives every resource a deterministic id. A
server can only honour ``ifNoneExist`` for a type it can search by ``identifier``; where it
cannot, it either refuses the whole transaction (sekmet-fhir 0.1.1 answers 400 "Unknown search
parameter 'identifier' for QuestionnaireResponse") or, worse, would ignore the condition and
store a duplicate on every resend.

:func:`conditional_types` reads from a CapabilityStatement the types that declare
``conditionalCreate`` *and* an ``identifier`` search parameter; :func:`fit_bundle` rewrites the
other conditional creates to ``PUT <Type>/<id>`` under the resource's own deterministic id, which
is idempotent on any server that accepts client ids (``updateCreate``). Entries without an id are
left as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

#: ``auto``: decide by the CapabilityStatement; ``keep``: send as built; ``put``: always PUT.
ConditionalMode = Literal["auto", "keep", "put"]


def conditional_types(capabilities: Mapping[str, Any]) -> frozenset[str]:
    """Resource types the server says it can conditionally create by identifier."""
    supported: set[str] = set()
    for rest in capabilities.get("rest") or []:
        if not isinstance(rest, dict) or rest.get("mode", "server") != "server":
            continue
        for resource in rest.get("resource") or []:
            if not isinstance(resource, dict) or not resource.get("conditionalCreate"):
                continue
            names = {
                p.get("name") for p in resource.get("searchParam") or [] if isinstance(p, dict)
            }
            if "identifier" in names:
                supported.add(str(resource.get("type")))
    return frozenset(supported)


def fit_bundle(bundle: Mapping[str, Any], keep: frozenset[str] | None) -> dict[str, Any]:
    """A copy of ``bundle`` whose conditional creates of types not in ``keep`` are PUTs.

    ``keep=None`` leaves every conditional create alone; an empty set rewrites them all.
    """
    out = dict(bundle)
    if keep is None:
        return out
    entries: list[Any] = []
    changed = False
    for entry in bundle.get("entry") or []:
        request = entry.get("request") if isinstance(entry, dict) else None
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if (
            isinstance(request, dict)
            and isinstance(resource, dict)
            and str(request.get("method", "")).upper() == "POST"
            and request.get("ifNoneExist")
            and resource.get("resourceType") not in keep
            and isinstance(resource.get("id"), str)
            and resource["id"]
        ):
            entry = copy.copy(entry)
            entry["request"] = {
                "method": "PUT",
                "url": f"{resource['resourceType']}/{resource['id']}",
            }
            changed = True
        entries.append(entry)
    if changed:
        out["entry"] = entries
    return out


__all__ = ["ConditionalMode", "conditional_types", "fit_bundle"]
