"""Convert the UK Core XML conformance resources to the JSON files shipped in profiles/.

Usage: python scripts/import_ukcore.py /path/to/shared/ukcore

Content is kept unchanged: each XML resource is parsed with fhir_iapt.fhir.xml (R4 rules) and
written as JSON named ``<ResourceType>-<id>.json``. Provenance is recorded in profiles/README.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fhir_iapt._data import profiles_dir
from fhir_iapt.fhir.xml import xml_to_resource


def main(source: Path) -> None:
    out_dir = profiles_dir()
    for path in sorted(source.glob("*.xml")):
        resource = xml_to_resource(path.read_bytes(), file=path.name)
        target = out_dir / f"{resource['resourceType']}-{resource['id']}.json"
        target.write_text(
            json.dumps(resource, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"{path.name} -> {target.name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
