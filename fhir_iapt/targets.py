"""Targets: one contract per record kind, from mapped record to what may leave the adapter.

A :class:`Target` says, for one kind of record:

- ``contract``: its record type and how a mapping fills it (the map stage's
  :class:`~fhir_iapt.mapping.contract.MapTarget`);
- ``gate``: whether a mapped record may become a bundle at all: the clinician's decision and the
  patient's consent. It returns None (go on) or the Skipped ``(reason, detail)``. Consent to share
  outcomes is decided by the one rule in :func:`fhir_iapt.consent.outcome_consent_gate`;
- ``build``: the transaction Bundle for a record that passed the gate (build stage, pure), as a
  tree for ``orjson.dumps``: it may hold pre-serialised parts (``orjson.Fragment``). The
  pipeline serialises it once; those bytes are what the CLI writes and the relay queues, and
  :attr:`~fhir_iapt.results.Converted.bundle` parses them when a caller asks for the dict;
- ``kind``: what the bundle is (``referral`` or ``outcome``), for routing and summaries.

Every builder and gate is imported directly here; :mod:`fhir_iapt.pipeline` runs them the same
way for every caller (library, CLI, relay). A new record kind is one more entry in
:data:`TARGETS` (and its map-stage half in :mod:`fhir_iapt.mapping.targets`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fhir_iapt.consent import NOT_CARRIED, ConsentRegister, outcome_consent_gate, referrals_of
from fhir_iapt.consent import nhs_number_of as _nhs_number_of
from fhir_iapt.fhir.episode import build_outcome_bundle
from fhir_iapt.fhir.options import BuildOptions
from fhir_iapt.fhir.referral import referral_bundle_tree
from fhir_iapt.fhir.responses import build_response_bundle
from fhir_iapt.mapping import Mapping
from fhir_iapt.mapping.contract import MapTarget
from fhir_iapt.mapping.episode import EPISODE
from fhir_iapt.mapping.referral import REFERRAL
from fhir_iapt.mapping.response import RESPONSE, ResponseRecord
from fhir_iapt.records import ReferralRecord
from fhir_iapt.results import BundleKind
from fhir_iapt.scoring.episode import EpisodeRecord
from fhir_iapt.scoring.recovery import derive_outcome

R = TypeVar("R")

#: ``None``: the record may go on; otherwise the Skipped ``(reason, detail)``.
Decision = tuple[str, str] | None
#: ``(record, consent register or None) -> Decision``
Gate = Callable[[R, ConsentRegister | None], Decision]


@dataclass(frozen=True, slots=True)
class Target(Generic[R]):
    """One record kind's whole contract (module docstring)."""

    contract: MapTarget[R]
    kind: BundleKind
    key: Callable[[R], str]
    gate: Gate[R]
    build: Callable[[R, BuildOptions], dict[str, Any]]

    @property
    def name(self) -> str:
        return self.contract.name


# --- referral ---------------------------------------------------------------------------------


def referral_gate(record: ReferralRecord, register: ConsentRegister | None) -> Decision:
    """A referral goes only where the clinician decided to refer and the patient consented.

    (Consent to *refer* is recorded by the clinic in the record; no register applies.)
    """
    if not record.referral.decision:
        return "not-referred", "no referral decision for this visit"
    if record.referral.consent_to_refer is not True:
        detail = (
            "the patient declined referral"
            if record.referral.consent_to_refer is False
            else "consent to refer was not recorded"
        )
        return "no-consent-to-refer", detail
    return None


def _referral_key(record: ReferralRecord) -> str:
    return record.key


REFERRAL_TARGET: Target[ReferralRecord] = Target(
    REFERRAL, "referral", _referral_key, referral_gate, referral_bundle_tree
)


# --- episode outcome --------------------------------------------------------------------------


def episode_gate(record: EpisodeRecord, register: ConsentRegister | None) -> Decision:
    """An episode's outcome leaves only with consent ``Y`` (its own, and the register's)."""
    return outcome_consent_gate(
        register,
        carried=record.consent,
        nhs_number=record.nhs_number,
        referrals=[(record.referral_identifier_system, record.referral_identifier)],
    )


def _episode_key(record: EpisodeRecord) -> str:
    return record.key


def build_episode_bundle(record: EpisodeRecord, options: BuildOptions) -> dict[str, Any]:
    """Derive the NHS outcome flags and build the episode's outcome bundle."""
    return build_outcome_bundle(record, derive_outcome(record), options)


EPISODE_TARGET: Target[EpisodeRecord] = Target(
    EPISODE, "outcome", _episode_key, episode_gate, build_episode_bundle
)


# --- QuestionnaireResponse outcome ------------------------------------------------------------


def response_gate(record: ResponseRecord, register: ConsentRegister | None) -> Decision:
    """A response carries no consent: it leaves only where the register records ``Y``."""
    return outcome_consent_gate(
        register,
        carried=NOT_CARRIED,
        nhs_number=_nhs_number_of(record.scored.subject),
        referrals=referrals_of(record.scored.based_on),
    )


def _response_key(record: ResponseRecord) -> str:
    return record.key


RESPONSE_TARGET: Target[ResponseRecord] = Target(
    RESPONSE, "outcome", _response_key, response_gate, build_response_bundle
)


#: target name -> its whole contract
TARGETS: dict[str, Target[Any]] = {
    t.name: t for t in (REFERRAL_TARGET, EPISODE_TARGET, RESPONSE_TARGET)
}


def target_of(mapping: Mapping[R]) -> Target[R]:
    """The target a loaded mapping fills."""
    target: Target[R] = TARGETS[mapping.contract.name]
    return target


__all__ = [
    "EPISODE_TARGET",
    "REFERRAL_TARGET",
    "RESPONSE_TARGET",
    "TARGETS",
    "Decision",
    "Gate",
    "Target",
    "build_episode_bundle",
    "episode_gate",
    "referral_gate",
    "response_gate",
    "target_of",
]
