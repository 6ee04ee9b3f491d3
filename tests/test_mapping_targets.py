"""The target registry: targets load lazily, and each declares the fields a mapping may fill."""

from __future__ import annotations

import subprocess
import sys

from fhir_iapt.mapping.referral import FIELDS
from fhir_iapt.mapping.targets import TARGETS, TargetFields, target_fields
from fhir_iapt.records import ReferralRecord


def test_referral_mapping_does_not_import_the_episode_target() -> None:
    """Loading and using a referral mapping never imports fhir_iapt.mapping.episode."""
    code = (
        "import sys\n"
        "from fhir_iapt.mapping import load_mapping\n"
        "load_mapping('diabetes-csv')\n"
        "print('fhir_iapt.mapping.episode' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_registry_names_both_targets() -> None:
    """referral and episode are registered as module:attribute strings."""
    assert TARGETS["referral"].factory == "fhir_iapt.mapping.referral:build_referral_record"
    assert TARGETS["episode"].factory == "fhir_iapt.mapping.episode:build_episode_record"
    assert isinstance(target_fields("referral"), TargetFields)


def test_referral_fields_cover_the_canonical_record() -> None:
    """Every scalar of ReferralRecord / PatientData / ReferralData is a referral target field."""
    patient = {f"patient.{n}" for n in ("nhs_number", "family", "given", "birth_date", "sex",
                                        "gp_practice_ods", "nhs_number_verification")}
    referral = {f"referral.{n}" for n in ("decision", "consent_to_refer",
                                          "consent_to_share_outcomes", "referrer_id",
                                          "referrer_id_system", "referrer_name", "source_snomed",
                                          "reason", "performer_ods")}
    top = {"record_id", "clinic_ods", "event_date"}
    assert patient | referral | top <= FIELDS.scalars
    assert set(ReferralRecord.__dataclass_fields__) >= {"conditions", "context", "screenings"}
    assert FIELDS.groups["conditions"] == {"snomed", "display", "text"}
    assert FIELDS.screenings
