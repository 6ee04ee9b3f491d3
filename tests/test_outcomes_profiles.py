"""The shipped outcome CodeSystems and profile agree with what the builders emit."""

from __future__ import annotations

import json

from fhir_iapt._data import profiles_dir
from fhir_iapt.fhir.episode import (
    EPISODE_OUTCOME_PROFILE,
    IAPT_OUTCOME_SYSTEM,
    OUTCOME_DISPLAYS,
)
from fhir_iapt.scoring.instruments import instrument_specs
from fhir_iapt.scoring.measures import IAPT_MEASURE_SYSTEM, outcome_rules


def _load(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((profiles_dir() / f"{name}.json").read_text())
    return data


def test_outcome_codesystem_has_exactly_the_issue_codes() -> None:
    """CodeSystem-iapt-outcome holds episode-outcome and the six flag codes, spelled as issued."""
    cs = _load("CodeSystem-iapt-outcome")
    assert cs["url"] == IAPT_OUTCOME_SYSTEM
    concepts = {c["code"]: c["display"] for c in cs["concept"]}  # type: ignore[attr-defined]
    assert list(concepts) == [
        "episode-outcome",
        "caseness-at-start",
        "finished-treatment",
        "recovery",
        "reliable-improvement",
        "reliable-deterioration",
        "reliable-recovery",
    ]
    assert concepts == dict(OUTCOME_DISPLAYS)


def test_measure_codesystem_covers_every_own_code() -> None:
    """Every code of ours in measures.yaml and instruments.yaml (totals and panels) is in
    CodeSystem-iapt-measure, marked UNVERIFIED, with the same display."""
    cs = _load("CodeSystem-iapt-measure")
    assert cs["url"] == IAPT_MEASURE_SYSTEM
    concepts = {c["code"]: c for c in cs["concept"]}  # type: ignore[attr-defined]
    instrument_codes = [
        c for spec in instrument_specs().values() for c in (spec.panel, *spec.totals)
    ]
    own = [
        c
        for c in [
            *(c for spec in outcome_rules().measures.values() for c in spec.codes),
            *instrument_codes,
        ]
        if c.system == IAPT_MEASURE_SYSTEM
    ]
    assert "gad2-total" in {c.code for c in own}
    assert {c.code for c in own} == set(concepts)
    for coding in own:
        assert concepts[coding.code]["display"] == coding.display
        assert "UNVERIFIED" in concepts[coding.code]["definition"]


def test_outcome_profile_identity() -> None:
    """The episode-outcome profile has the canonical URL the builder claims, on UK Core."""
    sd = _load("StructureDefinition-IaptEpisodeOutcomeObservation")
    assert sd["url"] == EPISODE_OUTCOME_PROFILE
    assert sd["baseDefinition"] == "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"
    assert sd["type"] == "Observation"
    assert sd["fhirVersion"] == "4.0.1"
