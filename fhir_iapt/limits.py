"""Input limits, in one place: each far above anything a real export holds, so only hostile or
broken input meets them, and each reported as a located rejection, never a crash.

``MAX_NUMBER_DIGITS``: the longest run of digits the JSON readers accept. FHIR decimals carry at
most 18 significant digits and identifiers are text; a JSON number of thousands of digits can
only be an attack on the parsers (ijson's C backend crashes the process on one of 4,301+ digits,
and ``int()`` refuses them). The readers check every chunk before the parser sees it.

``MAX_DEPTH``: the deepest nesting of JSON arrays and objects the readers accept. A clinic record
nests a few levels and a FHIR QuestionnaireResponse a dozen or so; ijson tracks a path prefix
per event, so 100k nested arrays in a 200 KB body cost it tens of GB (the process was killed).
"""

from __future__ import annotations

from typing import Final

MAX_NUMBER_DIGITS: Final = 1000
MAX_DEPTH: Final = 100

__all__ = ["MAX_DEPTH", "MAX_NUMBER_DIGITS"]
