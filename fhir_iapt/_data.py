"""Where the project's data folders are: ``mappings/`` and ``profiles/``.

In a wheel they are packaged as ``fhir_iapt/_data/{mappings,profiles}``; in a source checkout
(or an editable install) they are the top-level folders beside the package.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"fhir-iapt data folder {name!r} is missing from the installation")


def mappings_dir() -> Path:
    """The folder of bundled mapping files (``<name>.yaml``) and code tables (``tables/``)."""
    return _data_dir("mappings")


def profiles_dir() -> Path:
    """The folder of shipped FHIR conformance resources (JSON)."""
    return _data_dir("profiles")


@cache
def load_table(name: str) -> Any:
    """Load ``mappings/tables/<name>.yaml`` once (code tables and clinical thresholds)."""
    path = mappings_dir() / "tables" / f"{name}.yaml"
    with path.open("rb") as fh:
        return yaml.safe_load(fh)
