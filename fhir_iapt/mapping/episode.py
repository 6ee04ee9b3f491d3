"""The ``episode`` target: one row of an NHS Talking Therapies episode export -> EpisodeRecord.

The mapping engine types and checks each field (dates, ints, NHS number, ODS code) and calls
:func:`build_episode_record` with the values; here come the cross-field checks the engine cannot
do, all against ``mappings/tables/measures.yaml``:

- every score goes through :func:`fhir_iapt.scoring.episode.parse_score` (a number, inside the
  measure's range, no more decimals than it allows): the ADSM's range depends on which ADSM;
- the ADSM must be one the table knows, and ADSM scores need the ADSM named;
- a last score date before the first, a discharge before the referral, or a first treatment
  date outside the referral's received..discharge dates is rejected.

Every problem of a record is collected and raised as one :class:`~fhir_iapt.errors.RecordError`
(scoring problems keep their ScoringError codes) whose issues name the field, never the value.
Target field names are the national-dataset column names of the default ``iapt-outcomes``
mapping, so a location's field is the column a user sees.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from fhir_iapt.errors import Issue, Location, RecordError, ScoringError
from fhir_iapt.mapping.contract import MapTarget, TargetFields
from fhir_iapt.scoring.episode import EpisodeRecord, OutcomeConsent, ScorePair, parse_score
from fhir_iapt.scoring.measures import outcome_rules

#: measure -> (first field, last field); "ADSM" is resolved to the named measure.
SCORE_FIELDS: dict[str, tuple[str, str]] = {
    "PHQ-9": ("phq9_first", "phq9_last"),
    "GAD-7": ("gad7_first", "gad7_last"),
    "ADSM": ("adsm_first", "adsm_last"),
    "WSAS": ("wsas_first", "wsas_last"),
}

REQUIRED = frozenset(
    {
        "pathway_id",
        "referral_identifier_system",
        "referral_identifier",
        "nhs_number",
        "service_ods",
    }
)

FIELDS = TargetFields(
    scalars=frozenset(
        {
            *REQUIRED,
            "referral_received_date",
            "discharge_date",
            "problem_descriptor",
            "ltc_snomed",
            "treatment_contacts",
            "end_code",
            "adsm",
            "first_score_date",
            "last_score_date",
            "first_treatment_date",
            "consent_share_outcomes",
            *(f for pair in SCORE_FIELDS.values() for f in pair),
        }
    ),
    required=REQUIRED,
)

_CONSENT: dict[str, OutcomeConsent] = {"Y": "Y", "N": "N", "W": "W"}

#: Stable error codes for the episode's cross-field rules.
UNKNOWN_ADSM = "FI357"
ADSM_NOT_NAMED = "FI358"
DATES_OUT_OF_ORDER = "FI359"
BAD_CONSENT = "FI360"


def _text(values: dict[str, Any], name: str) -> str | None:
    raw = values.get(name)
    if raw is None:
        return None
    text = str(raw).strip()
    return text or None


def _date(values: dict[str, Any], name: str) -> date | None:
    raw = values.get(name)
    return raw if isinstance(raw, date) else None


def build_episode_record(
    values: dict[str, Any], location: Location, source_system: str
) -> EpisodeRecord:
    """The canonical episode for one mapped row; RecordError naming every wrong field."""
    rules = outcome_rules()
    issues: list[Issue] = []

    def score(measure: str, field: str) -> Decimal | None:
        try:
            return parse_score(
                measure, values.get(field), location=location.with_field(field), rules=rules
            )
        except ScoringError as exc:
            issues.extend(exc.issues)
            return None

    adsm_raw = _text(values, "adsm")
    adsm: str | None = None
    if adsm_raw is not None:
        adsm = adsm_raw.upper().replace("-", "")
        if adsm not in rules.adsm_names:
            issues.append(
                Issue(
                    diagnostics="adsm must be one of " + ", ".join(rules.adsm_names) + " or blank",
                    code="code-invalid",
                    location=location.with_field("adsm"),
                    error_code=UNKNOWN_ADSM,
                )
            )
            adsm = None
    pairs: dict[str, ScorePair] = {}
    for measure, (first_field, last_field) in SCORE_FIELDS.items():
        name = adsm if measure == "ADSM" else measure
        if name is None:  # ADSM scores with no (known) ADSM named
            present = [f for f in (first_field, last_field) if _text(values, f) is not None]
            if present and adsm_raw is None:
                issues.append(
                    Issue(
                        diagnostics=f"{present[0]} needs adsm to say which measure it is",
                        code="required",
                        location=location.with_field("adsm"),
                        error_code=ADSM_NOT_NAMED,
                    )
                )
            pairs[measure] = ScorePair()
            continue
        pairs[measure] = ScorePair(score(name, first_field), score(name, last_field))

    consent_raw = _text(values, "consent_share_outcomes")
    consent: OutcomeConsent | None = None
    if consent_raw is not None:
        consent = _CONSENT.get(consent_raw.upper())
        if consent is None:
            issues.append(
                Issue(
                    diagnostics="consent_share_outcomes must be Y, N, W or blank",
                    code="code-invalid",
                    location=location.with_field("consent_share_outcomes"),
                    error_code=BAD_CONSENT,
                )
            )

    for earlier, later in (
        ("first_score_date", "last_score_date"),
        ("referral_received_date", "discharge_date"),
        ("referral_received_date", "first_score_date"),
        ("referral_received_date", "first_treatment_date"),
        ("first_treatment_date", "discharge_date"),
    ):
        a, b = _date(values, earlier), _date(values, later)
        if a is not None and b is not None and b < a:
            issues.append(
                Issue(
                    diagnostics=f"{later} must not be before {earlier}",
                    code="value",
                    location=location.with_field(later),
                    error_code=DATES_OUT_OF_ORDER,
                )
            )

    if issues:
        scoring_only = all(i.error_code and i.error_code.startswith("FI35") for i in issues)
        error = ScoringError if scoring_only else RecordError
        raise error(
            f"episode cannot be used ({len(issues)} problem(s))",
            issues=issues,
            location=location,
        )
    contacts = values.get("treatment_contacts")
    return EpisodeRecord(
        source_system=source_system,
        pathway_id=str(values["pathway_id"]),
        referral_identifier_system=str(values["referral_identifier_system"]),
        referral_identifier=str(values["referral_identifier"]),
        nhs_number=str(values["nhs_number"]),
        service_ods=str(values["service_ods"]),
        consent=consent,
        referral_received=_date(values, "referral_received_date"),
        discharge=_date(values, "discharge_date"),
        problem_descriptor=_text(values, "problem_descriptor"),
        ltc_snomed=_text(values, "ltc_snomed"),
        treatment_contacts=int(contacts) if contacts is not None else None,
        first_treatment_date=_date(values, "first_treatment_date"),
        end_code=_text(values, "end_code"),
        phq9=pairs["PHQ-9"],
        gad7=pairs["GAD-7"],
        adsm=adsm,
        adsm_scores=pairs["ADSM"],
        wsas=pairs["WSAS"],
        first_score_date=_date(values, "first_score_date"),
        last_score_date=_date(values, "last_score_date"),
        location=location,
    )


#: The map-stage half of the episode target (the whole target: :mod:`fhir_iapt.targets`).
EPISODE = MapTarget("episode", EpisodeRecord, FIELDS, fill=build_episode_record)

__all__ = ["EPISODE", "FIELDS", "SCORE_FIELDS", "build_episode_record"]
