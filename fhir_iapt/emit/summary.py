"""``summary.json``: counts by outcome and the input files (no patient data: counts and codes)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from fhir_iapt.emit._atomic import AtomicFile
from fhir_iapt.emit._encode import dumps_text

SUMMARY_FILE = "summary.json"


def write_summary(out_dir: Path, summary: Mapping[str, Any]) -> Path:
    """Write ``summary`` (e.g. ``Tally.as_dict()`` plus ``inputs``) as ``<out_dir>/summary.json``.

    Keys are sorted and the JSON indented, so two runs over the same input give the same file.
    Written atomically like every other output. An input name Python could not decode keeps
    U+FFFD in place of its undecodable bytes.
    """
    path = Path(out_dir) / SUMMARY_FILE
    out = AtomicFile(path)
    try:
        out.write(
            dumps_text(
                dict(summary),
                orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE,
            )
        )
    except BaseException:
        out.discard()
        raise
    out.commit()
    return path


__all__ = ["SUMMARY_FILE", "write_summary"]
