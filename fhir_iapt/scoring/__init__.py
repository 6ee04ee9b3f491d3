"""Score: instruments (PHQ-9, GAD-7, PHQ-2, GAD-2) and NHS Talking Therapies episode outcomes.

Thresholds, ranges and codes come from ``mappings/tables/instruments.yaml`` and
``mappings/tables/measures.yaml``; nothing here is clinical fact in code.
"""

from __future__ import annotations

from fhir_iapt.scoring.instruments import (
    InstrumentScore,
    InstrumentSpec,
    instrument_spec,
    score_instrument,
)

__all__ = ["InstrumentScore", "InstrumentSpec", "instrument_spec", "score_instrument"]
