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

from typing import TYPE_CHECKING, Any, get_args

from fhir_iapt.errors import Issue, Location, RecordError
from fhir_iapt.mapping.targets import TargetFields
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

if TYPE_CHECKING:
    from fhir_iapt.mapping._model import Mapping

_CONTEXT_KINDS: tuple[str, ...] = get_args(ContextKind)
_SEXES: frozenset[str] = frozenset(get_args(Sex))

FIELDS = TargetFields(
    scalars=frozenset({
        "record_id", "clinic_ods", "event_date",
        "patient.nhs_number", "patient.family", "patient.given", "patient.birth_date",
        "patient.sex", "patient.gp_practice_ods", "patient.nhs_number_verification",
        "referral.decision", "referral.consent_to_refer", "referral.consent_to_share_outcomes",
        "referral.referrer_id", "referral.referrer_id_system", "referral.referrer_name",
        "referral.source_snomed", "referral.reason", "referral.performer_ods",
        *(f"context.{kind}" for kind in _CONTEXT_KINDS),
    }),
    required=frozenset({
        "record_id", "clinic_ods", "event_date", "patient.nhs_number", "referral.decision",
    }),
    groups={"conditions": frozenset({"snomed", "display", "text"})},
    screenings=True,
)


def _opt_str(values: dict[str, Any], key: str) -> str | None:
    value = values.get(key)
    return None if value is None else str(value)


def _opt_bool(values: dict[str, Any], key: str) -> bool | None:
    value = values.get(key)
    return None if value is None else bool(value)


def build_referral_record(
    values: dict[str, Any], location: Location, mapping: Mapping
) -> ReferralRecord:
    """Assemble a ReferralRecord; raises RecordError for rules that span fields."""
    issues: list[Issue] = []
    event_date = values["event_date"]
    birth_date = values.get("patient.birth_date")
    if birth_date is not None and birth_date > event_date:
        issues.append(Issue("the birth date is after the visit date", code="value",
                            location=location.with_field("patient.birth_date"),
                            error_code="FI301"))
    sex = values.get("patient.sex")
    if sex is not None and sex not in _SEXES:
        issues.append(Issue("the sex lookup table gave a value that is not a FHIR gender",
                            code="code-invalid", location=location.with_field("patient.sex"),
                            error_code="FI301"))
    if issues:
        raise RecordError(issues[0].diagnostics, issues=issues, location=location,
                          error_code="FI301")
    given = values.get("patient.given", ())
    patient = PatientData(
        nhs_number=str(values["patient.nhs_number"]),
        family=_opt_str(values, "patient.family"),
        given=tuple(given) if isinstance(given, tuple | list) else (str(given),),
        birth_date=birth_date,
        sex=sex,
        gp_practice_ods=_opt_str(values, "patient.gp_practice_ods"),
        nhs_number_verification=str(values.get("patient.nhs_number_verification", "02")),
    )
    referral = ReferralData(
        decision=bool(values["referral.decision"]),
        consent_to_refer=_opt_bool(values, "referral.consent_to_refer"),
        consent_to_share_outcomes=_opt_bool(values, "referral.consent_to_share_outcomes"),
        referrer_id=_opt_str(values, "referral.referrer_id"),
        referrer_id_system=_opt_str(values, "referral.referrer_id_system"),
        referrer_name=_opt_str(values, "referral.referrer_name"),
        source_snomed=_opt_str(values, "referral.source_snomed"),
        reason=_opt_str(values, "referral.reason"),
        performer_ods=_opt_str(values, "referral.performer_ods"),
    )
    conditions = tuple(
        ConditionData(snomed=str(item["snomed"]), display=item.get("display"),
                      text=item.get("text"))
        for item in values.get("conditions", ())
        if item.get("snomed") is not None
    )
    context = tuple(
        ContextValue(kind=kind, value=values[f"context.{kind}"], effective=event_date)  # type: ignore[arg-type]
        for kind in _CONTEXT_KINDS
        if values.get(f"context.{kind}") is not None
    )
    screenings = tuple(
        Screening(instrument=item["instrument"], answers=tuple(item["answers"]),
                  date=item.get("date") or event_date)
        for item in values.get("screenings", ())
    )
    return ReferralRecord(
        source_system=mapping.source_system,
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


__all__ = ["FIELDS", "build_referral_record"]
