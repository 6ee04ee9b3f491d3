"""fhir-iapt: NHS physical-health clinics <-> NHS Talking Therapies (IAPT-LTC) over FHIR R4.

The public API. The stages, in the order data flows through them::

    read      fhir_iapt.sources    read_records -> SourceRecord (with its Location)
    map       fhir_iapt.mapping    load_mapping, map_record -> the target's typed record
                                   (ReferralRecord / EpisodeRecord / ResponseRecord)
    build     fhir_iapt.fhir       build_referral_bundle, build_outcome_bundle; as_model
    validate  fhir_iapt.fhir       Validator (R4 + the project's profiles)
    emit      fhir_iapt.emit       NDJSON bundles, Bulk Data layout, FHIR XML, rejects, summary
    push      fhir_iapt.client     FhirClient / AsyncFhirClient, RetryPolicy, auth; push()

    rules     fhir_iapt.scoring    score_instrument, derive_outcome (pure, used by map and build)
    join      fhir_iapt.targets    Target, TARGETS: one contract per record kind (gate, builder)
              fhir_iapt.consent    ConsentRegister, ConsentFiles: the one consent gate
              fhir_iapt.pipeline   read -> map -> gate -> build -> validate (convert_file ...)

The CLI (``fhir_iapt.cli``) and the relay (``fhir_iapt.relay``) are thin callers of the pipeline.

No public name equals a submodule's name (``fhir_iapt.push`` is a module: importing it sets
the package attribute, which would shadow a lazily exported ``push`` function; use
``from fhir_iapt.push import push``). Names are imported on first use, so ``import fhir_iapt``
stays cheap: the validator's FHIR models and the HTTP client load only when asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "AuthError": "fhir_iapt.errors",
    "ConfigError": "fhir_iapt.errors",
    "DeliveryError": "fhir_iapt.errors",
    "EmitError": "fhir_iapt.errors",
    "FhirIaptError": "fhir_iapt.errors",
    "Issue": "fhir_iapt.errors",
    "Location": "fhir_iapt.errors",
    "MappingError": "fhir_iapt.errors",
    "ProfileError": "fhir_iapt.errors",
    "ReadError": "fhir_iapt.errors",
    "RecordError": "fhir_iapt.errors",
    "ScoringError": "fhir_iapt.errors",
    "ServerError": "fhir_iapt.errors",
    "TransportError": "fhir_iapt.errors",
    "operation_outcome": "fhir_iapt.errors",
    # results and records
    "Converted": "fhir_iapt.results",
    "Rejected": "fhir_iapt.results",
    "Result": "fhir_iapt.results",
    "Skipped": "fhir_iapt.results",
    "ReferralRecord": "fhir_iapt.records",
    "EpisodeRecord": "fhir_iapt.scoring.episode",
    # read + map
    "SourceRecord": "fhir_iapt.sources",
    "read_records": "fhir_iapt.sources",
    "Mapping": "fhir_iapt.mapping",
    "bundled_mappings": "fhir_iapt.mapping",
    "load_mapping": "fhir_iapt.mapping",
    "map_record": "fhir_iapt.mapping",
    # pipeline
    "ShapeCache": "fhir_iapt.pipeline",
    "convert_bytes": "fhir_iapt.pipeline",
    "convert_file": "fhir_iapt.pipeline",
    "convert_files": "fhir_iapt.pipeline",
    "convert_record": "fhir_iapt.pipeline",
    "convert_stream": "fhir_iapt.pipeline",
    "validated": "fhir_iapt.pipeline",
    # score
    "EpisodeOutcome": "fhir_iapt.scoring.recovery",
    "InstrumentScore": "fhir_iapt.scoring.instruments",
    "derive_outcome": "fhir_iapt.scoring.recovery",
    "score_instrument": "fhir_iapt.scoring.instruments",
    # build + validate
    "BuildOptions": "fhir_iapt.fhir.options",
    "Validator": "fhir_iapt.fhir.validate",
    "as_model": "fhir_iapt.fhir.models",
    "build_outcome_bundle": "fhir_iapt.fhir.episode",
    "build_referral_bundle": "fhir_iapt.fhir.referral",
    "default_validator": "fhir_iapt.fhir.validate",
    "score_questionnaire_response": "fhir_iapt.fhir.responses",
    # outcomes from QuestionnaireResponses, consent
    "ConsentFiles": "fhir_iapt.consent",
    "ConsentRegister": "fhir_iapt.consent",
    "load_consent_register": "fhir_iapt.consent",
    # targets: one contract per record kind
    "ResponseRecord": "fhir_iapt.mapping.response",
    "Target": "fhir_iapt.targets",
    "TARGETS": "fhir_iapt.targets",
    # push
    "AsyncFhirClient": "fhir_iapt.client",
    "BearerToken": "fhir_iapt.client",
    "ClientCredentials": "fhir_iapt.client",
    "FhirClient": "fhir_iapt.client",
    "PushSummary": "fhir_iapt.push",
    "RetryPolicy": "fhir_iapt.client",
    "SmartBackendServices": "fhir_iapt.client",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from fhir_iapt.client import (
        AsyncFhirClient,
        BearerToken,
        ClientCredentials,
        FhirClient,
        RetryPolicy,
        SmartBackendServices,
    )
    from fhir_iapt.consent import ConsentFiles, ConsentRegister, load_consent_register
    from fhir_iapt.errors import (
        AuthError,
        ConfigError,
        DeliveryError,
        EmitError,
        FhirIaptError,
        Issue,
        Location,
        MappingError,
        ProfileError,
        ReadError,
        RecordError,
        ScoringError,
        ServerError,
        TransportError,
        operation_outcome,
    )
    from fhir_iapt.fhir.episode import build_outcome_bundle
    from fhir_iapt.fhir.models import as_model
    from fhir_iapt.fhir.options import BuildOptions
    from fhir_iapt.fhir.referral import build_referral_bundle
    from fhir_iapt.fhir.responses import score_questionnaire_response
    from fhir_iapt.fhir.validate import Validator, default_validator
    from fhir_iapt.mapping import Mapping, bundled_mappings, load_mapping, map_record
    from fhir_iapt.mapping.response import ResponseRecord
    from fhir_iapt.pipeline import (
        ShapeCache,
        convert_bytes,
        convert_file,
        convert_files,
        convert_record,
        convert_stream,
        validated,
    )
    from fhir_iapt.push import PushSummary
    from fhir_iapt.records import ReferralRecord
    from fhir_iapt.results import Converted, Rejected, Result, Skipped
    from fhir_iapt.scoring.episode import EpisodeRecord
    from fhir_iapt.scoring.instruments import InstrumentScore, score_instrument
    from fhir_iapt.scoring.recovery import EpisodeOutcome, derive_outcome
    from fhir_iapt.sources import SourceRecord, read_records
    from fhir_iapt.targets import TARGETS, Target


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fhir_iapt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
