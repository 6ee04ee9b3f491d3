"""Build: canonical records -> FHIR R4 (UK Core) resources and transaction Bundles, as dicts.

:func:`build_referral_bundle` is the referral builder; :mod:`fhir_iapt.fhir.common` holds the
shared builders (Patient, entries, QuestionnaireResponse, score Observation) the outcome bundles
reuse, and :mod:`fhir_iapt.fhir.ids` the deterministic ids and conditional-create keys.
"""

from __future__ import annotations

from fhir_iapt.fhir.options import DEFAULT_OPTIONS, BuildOptions, Coding, RequestMethod
from fhir_iapt.fhir.referral import build_referral_bundle

__all__ = ["DEFAULT_OPTIONS", "BuildOptions", "Coding", "RequestMethod", "build_referral_bundle"]
