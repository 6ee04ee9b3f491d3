"""The canonical IAPT episode (one care pathway of an outcome export) and its score checks.

A mapping turns one row of an episode export into an :class:`EpisodeRecord`, with every value
typed and checked: scores are numbers inside the measure's range (``measures.yaml``), the ADSM
is one the table knows, the NHS number passes modulus 11. :func:`parse_score` is the one check
every score goes through, so a CSV, a JSON export and a test all reject the same things.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal

from fhir_iapt.errors import Location, ScoringError
from fhir_iapt.scoring.measures import OutcomeRules, outcome_rules

#: consent_share_outcomes as exported: Y yes, N no, W withdrawn; None when not recorded.
OutcomeConsent = Literal["Y", "N", "W"]


@dataclass(frozen=True, slots=True)
class ScorePair:
    """The first and last total of one measure over the care pathway (None = not recorded)."""

    first: Decimal | None = None
    last: Decimal | None = None

    @property
    def paired(self) -> bool:
        return self.first is not None and self.last is not None

    @property
    def empty(self) -> bool:
        return self.first is None and self.last is None


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """One NHS Talking Therapies care pathway, canonical and checked."""

    source_system: str  # identifier system for pathway ids (from the mapping)
    pathway_id: str
    referral_identifier_system: str  # the identifier the referral's ServiceRequest carried
    referral_identifier: str
    nhs_number: str  # 10 digits, modulus-11 checked
    service_ods: str  # the IAPT service (Observation.performer)
    consent: OutcomeConsent | None
    referral_received: date | None = None
    discharge: date | None = None
    problem_descriptor: str | None = None  # ICD-10, e.g. "F41.1"
    ltc_snomed: str | None = None
    treatment_contacts: int | None = None
    #: TherapySession_FirstDate: the first attended treatment contact (None: not recorded)
    first_treatment_date: date | None = None
    end_code: str | None = None
    phq9: ScorePair = field(default_factory=ScorePair)
    gad7: ScorePair = field(default_factory=ScorePair)
    adsm: str | None = None  # SPIN, PCL5, IESR, MI, OCI, PDSS, HAI (measures.yaml names)
    adsm_scores: ScorePair = field(default_factory=ScorePair)
    wsas: ScorePair = field(default_factory=ScorePair)
    first_score_date: date | None = None
    last_score_date: date | None = None
    location: Location = field(default_factory=Location)

    @property
    def key(self) -> str:
        """The natural key ``<source_system>|<pathway_id>`` (no patient data in it)."""
        return f"{self.source_system}|{self.pathway_id}"

    def scores(self) -> dict[str, ScorePair]:
        """Every recorded measure by its ``measures.yaml`` name, in a fixed order."""
        out: dict[str, ScorePair] = {}
        for name, pair in (("PHQ-9", self.phq9), ("GAD-7", self.gad7)):
            if not pair.empty:
                out[name] = pair
        if self.adsm and not self.adsm_scores.empty:
            out[self.adsm] = self.adsm_scores
        if not self.wsas.empty:
            out["WSAS"] = self.wsas
        return out


def _decimal_places(value: Decimal) -> int:
    """Decimal places of a finite value once trailing zeros go (``2.50`` -> 1), computed from
    its digits: ``normalize()`` raises Overflow on exponents such as ``1e1000000``."""
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or not any(digits):
        return 0
    trailing = len(digits) - len(bytes(digits).rstrip(b"\x00"))
    return max(0, -(exponent + trailing))


def parse_score(
    measure: str,
    raw: str | int | float | Decimal | None,
    *,
    location: Location | None = None,
    rules: OutcomeRules | None = None,
) -> Decimal | None:
    """Check one total score of ``measure``; blank -> None.

    Rejects (ScoringError, naming the field and the rule, never the value) a value that is not a
    number, has more decimal places than the measure allows, or lies outside its range.
    """
    rules = rules or outcome_rules()
    spec = rules.measures.get(measure)
    if spec is None:
        raise ScoringError(
            f"unknown measure (known: {', '.join(sorted(rules.measures))})",
            location=location,
            error_code="FI356",
        )
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise ScoringError(
            f"{measure} score must be a number", location=location, error_code="FI354"
        )
    try:
        value = Decimal(raw.strip()) if isinstance(raw, str) else Decimal(str(raw))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise ScoringError(
            f"{measure} score must be a number", location=location, error_code="FI354"
        )
    places = _decimal_places(value)
    if places > spec.decimals:
        rule = "a whole number" if spec.decimals == 0 else f"at most {spec.decimals} decimals"
        raise ScoringError(f"{measure} score must be {rule}", location=location, error_code="FI354")
    if not spec.low <= value <= spec.high:
        raise ScoringError(
            f"{measure} score must be between {spec.low} and {spec.high}",
            location=location,
            error_code="FI355",
        )
    return (
        value.quantize(Decimal(1).scaleb(-spec.decimals)) if spec.decimals else Decimal(int(value))
    )


__all__ = ["EpisodeRecord", "OutcomeConsent", "ScorePair", "parse_score"]
