"""Which LTC pathway (diabetes, respiratory, cardiac, other) a referral is reported under, from
its long-term condition's SNOMED CT code: the table ``mappings/tables/ltc-pathways.yaml``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from fhir_iapt._data import load_table
from fhir_iapt.report._model import PATHWAYS

#: A condition the table does not list, or none recorded.
OTHER = "other"


@cache
def pathway_table() -> Mapping[str, str]:
    """SNOMED CT code -> pathway, checked once: every pathway one of :data:`PATHWAYS` (not
    "other", which is what is left), no code in two pathways."""
    table = load_table("ltc-pathways")["pathways"]
    out: dict[str, str] = {}
    for pathway, codes in table.items():
        if pathway not in PATHWAYS or pathway == OTHER:
            raise ValueError(f"ltc-pathways.yaml: unknown pathway {pathway!r}")
        for code in codes:
            text = str(code)
            if text in out:
                raise ValueError(f"ltc-pathways.yaml: code {text} is in two pathways")
            out[text] = pathway
    return out


def ltc_pathway(snomed: str | None) -> str:
    """The pathway of a long-term condition code; "other" for an unlisted code or none."""
    if snomed is None:
        return OTHER
    return pathway_table().get(snomed.strip(), OTHER)


__all__ = ["OTHER", "ltc_pathway", "pathway_table"]
