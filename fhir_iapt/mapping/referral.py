"""The ``referral`` target: mapped values -> :class:`~fhir_iapt.records.ReferralRecord`.

The fields a referral mapping may fill are declared in :data:`FIELDS` (see mappings/README.md,
"Targets"). Values arrive typed and checked by the field types; this factory assembles the
record and applies the few rules that span fields:

* ``patient.sex`` must be a FHIR administrative gender (the sex lookup table's values);
* a birth date after the visit is rejected;
* a screening without its own date was done at the visit (``event_date``);
* clinical-context values are dated at the visit.
"""

from __future__ import annotations

from typing import Any, get_args

from fhir_iapt.errors import Issue, Location, RecordError
from fhir_iapt.mapping.contract import MapTarget, TargetFields
from fhir_iapt.records import (
    ConditionData,
    ContextKind,
    ContextValue,
    PatientData,
    ReferralData,
    ReferralRecord,
    Screening,
    Sex,
)

_CONTEXT_KINDS: tuple[str, ...] = get_args(ContextKind)
_CONTEXT_KEYS: tuple[tuple[str, str], ...] = tuple((k, f"context.{k}") for k in _CONTEXT_KINDS)
_SEXES: frozenset[str] = frozenset(get_args(Sex))

FIELDS = TargetFields(
    scalars=frozenset(
        {
            "record_id",
            "clinic_ods",
            "event_date",
            "patient.nhs_number",
            "patient.family",
            "patient.given",
            "patient.birth_date",
            "patient.sex",
            "patient.gp_practice_ods",
            "patient.nhs_number_verification",
            "referral.decision",
            "referral.consent_to_refer",
            "referral.consent_to_share_outcomes",
            "referral.referrer_id",
            "referral.referrer_id_system",
            "referral.referrer_name",
            "referral.source_snomed",
            "referral.reason",
            "referral.performer_ods",
            *(f"context.{kind}" for kind in _CONTEXT_KINDS),
        }
    ),
    required=frozenset(
        {
            "record_id",
            "clinic_ods",
            "event_date",
            "patient.nhs_number",
            "referral.decision",
        }
    ),
    groups={"conditions": frozenset({"snomed", "display", "text"})},
    screenings=True,
)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def build_referral_record(
    values: dict[str, Any], location: Location, source_system: str
) -> ReferralRecord:
    """Assemble a ReferralRecord; raises RecordError for rules that span fields."""
    issues: list[Issue] = []
    event_date = values["event_date"]
    birth_date = values.get("patient.birth_date")
    if birth_date is not None and birth_date > event_date:
        issues.append(
            Issue(
                "the birth date is after the visit date",
                code="value",
                location=location.with_field("patient.birth_date"),
                error_code="FI301",
            )
        )
    sex = values.get("patient.sex")
    if sex is not None and sex not in _SEXES:
        issues.append(
            Issue(
                "the sex lookup table gave a value that is not a FHIR gender",
                code="code-invalid",
                location=location.with_field("patient.sex"),
                error_code="FI301",
            )
        )
    if issues:
        raise RecordError(
            issues[0].diagnostics, issues=issues, location=location, error_code="FI301"
        )
    get = values.get
    given = get("patient.given", ())
    patient = PatientData(
        str(values["patient.nhs_number"]),
        _opt_str(get("patient.family")),
        tuple(given) if isinstance(given, tuple | list) else (str(given),),
        birth_date,
        sex,
        _opt_str(get("patient.gp_practice_ods")),
        str(get("patient.nhs_number_verification", "02")),
    )
    referral = ReferralData(
        bool(values["referral.decision"]),
        _opt_bool(get("referral.consent_to_refer")),
        _opt_bool(get("referral.consent_to_share_outcomes")),
        _opt_str(get("referral.referrer_id")),
        _opt_str(get("referral.referrer_id_system")),
        _opt_str(get("referral.referrer_name")),
        _opt_str(get("referral.source_snomed")),
        _opt_str(get("referral.reason")),
        _opt_str(get("referral.performer_ods")),
    )
    conditions = tuple(
        [
            ConditionData(str(item["snomed"]), item.get("display"), item.get("text"))
            for item in get("conditions", ())
            if item.get("snomed") is not None
        ]
    )
    context = tuple(
        [
            ContextValue(kind, values[key], event_date)  # type: ignore[arg-type]
            for kind, key in _CONTEXT_KEYS
            if key in values
        ]
    )
    screenings = tuple(
        [
            Screening(item["instrument"], item["answers"], item["date"] or event_date)
            for item in get("screenings", ())
        ]
    )
    return ReferralRecord(
        source_system=source_system,
        record_id=str(values["record_id"]),
        clinic_ods=str(values["clinic_ods"]),
        event_date=event_date,
        patient=patient,
        referral=referral,
        conditions=conditions,
        context=context,
        screenings=screenings,
        location=location,
    )


#: The map-stage half of the referral target (the whole target: :mod:`fhir_iapt.targets`).
REFERRAL = MapTarget("referral", ReferralRecord, FIELDS, fill=build_referral_record)

__all__ = ["FIELDS", "REFERRAL", "build_referral_record"]
