"""Derive an episode's NHS Talking Therapies outcome flags from its first and last scores.

The definitions are DOMAIN.md "Episode outcomes"; every number is in ``measures.yaml``:

- the anxiety measure is the ADSM that fits the problem descriptor when it has paired scores,
  else GAD-7 (the fallback, also for descriptors with no ADSM);
- **caseness** at a score: PHQ-9 or the anxiety measure at or above its cut-off;
- **finished treatment**: the referral has ended (a discharge date) **and** at least
  ``finished_treatment_min_contacts`` attended treatment contacts; an open pathway has not
  finished, whatever its contacts (V: NHS England's ``ServDischDate IS NOT NULL AND
  TreatmentCareContact_Count >= 2``);
- **recovery**: a case at the first score and not at the last. For a patient who was not a case
  at the start it is **not applicable** (they leave the recovery-rate denominator, V), not false;
- **reliable improvement / deterioration**: a fall / rise of at least the reliable change index
  on one measure with no reliable change the other way on the other (that "other" rule and the
  deterioration mirror are UNVERIFIED: ``reliable_change_excludes_opposite_on_other``);
- **reliable recovery**: recovery and reliable improvement (V), so not applicable wherever
  recovery is (a non-case at the start can be neither reliably recovered nor not: NHS England's
  reliable-recovery rate has the same denominator as recovery).

Flags use three values: True, False, or None with the reason it cannot be derived (a score not
recorded, treatment not finished, not a case at the start). Unknown inputs only make a flag None
when they could change it: a PHQ-9 of 15 at the start makes a case whatever the anxiety score
was. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from fhir_iapt.scoring.episode import EpisodeRecord, ScorePair
from fhir_iapt.scoring.measures import MeasureSpec, OutcomeRules, outcome_rules

FlagName = Literal[
    "caseness-at-start",
    "finished-treatment",
    "recovery",
    "reliable-improvement",
    "reliable-deterioration",
    "reliable-recovery",
]
#: The flags in the order the outcome Observation carries them (codes in CodeSystem-iapt-outcome).
FLAG_NAMES: tuple[FlagName, ...] = (
    "caseness-at-start",
    "finished-treatment",
    "recovery",
    "reliable-improvement",
    "reliable-deterioration",
    "reliable-recovery",
)
#: HL7 data-absent-reason codes used when a flag cannot be derived.
AbsentReason = Literal["unknown", "not-applicable"]

_AFTER_TREATMENT: frozenset[FlagName] = frozenset(
    {"recovery", "reliable-improvement", "reliable-deterioration", "reliable-recovery"}
)
#: Flags that apply only to a patient who was a case at the start (the recovery denominator).
_CASES_ONLY: frozenset[FlagName] = frozenset({"recovery", "reliable-recovery"})
#: Why a flag is not applicable (data-absent text: names the rule, never a score).
NOT_FINISHED = "episode did not finish a course of treatment"
NOT_A_CASE = "not a case at the first score (outside the recovery measure)"


@dataclass(frozen=True, slots=True)
class Flag:
    """One outcome flag: a value, or why there is none (``absent`` + ``reasons``)."""

    value: bool | None
    absent: AbsentReason | None = None
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) if self.reasons else None


@dataclass(frozen=True, slots=True)
class EpisodeOutcome:
    """The outcome of one episode: the measures compared and every flag."""

    depression_measure: str  # "PHQ-9"
    anxiety_measure: str  # the ADSM used, or "GAD-7"
    #: why GAD-7 stands in for the specific measure (None when no fallback happened):
    #: "adsm-not-recorded", "adsm-does-not-fit-descriptor" or "adsm-unpaired".
    anxiety_fallback: str | None
    flags: Mapping[FlagName, Flag]

    @property
    def measures_used(self) -> tuple[str, str]:
        return (self.depression_measure, self.anxiety_measure)

    def value(self, name: FlagName) -> bool | None:
        return self.flags[name].value


@dataclass(frozen=True, slots=True)
class _Tri:
    value: bool | None
    reasons: tuple[str, ...] = ()


def _unique(reasons: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(reasons))


def _and(*terms: _Tri) -> _Tri:
    if any(t.value is False for t in terms):
        return _Tri(False)
    if all(t.value is True for t in terms):
        return _Tri(True)
    return _Tri(None, _unique([r for t in terms if t.value is None for r in t.reasons]))


def _or(*terms: _Tri) -> _Tri:
    if any(t.value is True for t in terms):
        return _Tri(True)
    if all(t.value is False for t in terms):
        return _Tri(False)
    return _Tri(None, _unique([r for t in terms if t.value is None for r in t.reasons]))


def _not(term: _Tri) -> _Tri:
    return _Tri(None if term.value is None else not term.value, term.reasons)


def _threshold(spec: MeasureSpec, attr: Literal["caseness_at", "reliable_change"]) -> Decimal:
    value = getattr(spec, attr)
    if value is None:  # rules_from_table refuses such a table; kept for the type checker
        raise ValueError(f"measure {spec.name} has no {attr}")
    return Decimal(value)


def _case(spec: MeasureSpec, score: Decimal | None, when: str) -> _Tri:
    if score is None:
        return _Tri(None, (f"{spec.name} {when} score not recorded",))
    return _Tri(score >= _threshold(spec, "caseness_at"))


def _change(spec: MeasureSpec, pair: ScorePair, direction: int) -> _Tri:
    """Reliable change in ``direction`` (-1 = fall, +1 = rise) between first and last."""
    if pair.first is None or pair.last is None:
        return _Tri(None, (f"{spec.name} has no paired first and last scores",))
    return _Tri((pair.last - pair.first) * direction >= _threshold(spec, "reliable_change"))


def choose_anxiety_measure(
    episode: EpisodeRecord, rules: OutcomeRules | None = None
) -> tuple[str, str | None]:
    """The anxiety measure to pair with PHQ-9, and why GAD-7 stands in (None if it doesn't)."""
    rules = rules or outcome_rules()
    fitting = rules.anxiety_measures_for(episode.problem_descriptor)
    if not fitting:
        return rules.default_anxiety_measure, None
    if episode.adsm is None or episode.adsm_scores.empty:
        return rules.default_anxiety_measure, "adsm-not-recorded"
    if episode.adsm not in fitting:
        return rules.default_anxiety_measure, "adsm-does-not-fit-descriptor"
    if not episode.adsm_scores.paired:
        return rules.default_anxiety_measure, "adsm-unpaired"
    return episode.adsm, None


def _pair(episode: EpisodeRecord, name: str) -> ScorePair:
    return episode.scores().get(name, ScorePair())


def _finished(episode: EpisodeRecord, rules: OutcomeRules) -> _Tri:
    """Finished treatment: a discharge date and enough attended treatment contacts. With no
    discharge date the pathway is open: not finished, whatever the contact count says."""
    if episode.discharge is None:
        return _Tri(False)
    if episode.treatment_contacts is None:
        return _Tri(None, ("treatment contact count not recorded",))
    return _Tri(episode.treatment_contacts >= rules.finished_treatment_min_contacts)


def derive_outcome(episode: EpisodeRecord, rules: OutcomeRules | None = None) -> EpisodeOutcome:
    """Every outcome flag of ``episode`` under ``rules`` (default: the bundled table)."""
    rules = rules or outcome_rules()
    dep = rules.measure(rules.depression_measure)
    anxiety_name, fallback = choose_anxiety_measure(episode, rules)
    anx = rules.measure(anxiety_name)
    dep_pair, anx_pair = _pair(episode, dep.name), _pair(episode, anx.name)

    case_start = _or(_case(dep, dep_pair.first, "first"), _case(anx, anx_pair.first, "first"))
    case_end = _or(_case(dep, dep_pair.last, "last"), _case(anx, anx_pair.last, "last"))
    finished = _finished(episode, rules)

    dep_up, dep_down = _change(dep, dep_pair, +1), _change(dep, dep_pair, -1)
    anx_up, anx_down = _change(anx, anx_pair, +1), _change(anx, anx_pair, -1)
    if rules.excludes_opposite_on_other:
        improved = _or(_and(dep_down, _not(anx_up)), _and(anx_down, _not(dep_up)))
        worse = _or(_and(dep_up, _not(anx_down)), _and(anx_up, _not(dep_down)))
    else:
        improved, worse = _or(dep_down, anx_down), _or(dep_up, anx_up)
    # Recovery and reliable recovery given a case at the start; they apply only to one.
    recovered = _not(case_end)
    raw: dict[FlagName, _Tri] = {
        "caseness-at-start": case_start,
        "finished-treatment": finished,
        "recovery": recovered,
        "reliable-improvement": improved,
        "reliable-deterioration": worse,
        "reliable-recovery": _and(recovered, improved),
    }
    gated = rules.flags_require_finished_treatment
    flags: dict[FlagName, Flag] = {}
    for name in FLAG_NAMES:
        term = raw[name]
        not_applicable: list[str] = []
        if name in _AFTER_TREATMENT and gated and finished.value is False:
            not_applicable.append(NOT_FINISHED)
        if name in _CASES_ONLY and case_start.value is False:
            not_applicable.append(NOT_A_CASE)
        if not_applicable:
            flags[name] = Flag(None, "not-applicable", tuple(not_applicable))
            continue
        if name in _AFTER_TREATMENT and gated and finished.value is None:
            flags[name] = Flag(None, "unknown", finished.reasons)
            continue
        if name in _CASES_ONLY and case_start.value is None:
            # Either not applicable (not a case) or the value for a case: cannot be derived.
            inner = term.reasons if term.value is None else ()
            flags[name] = Flag(None, "unknown", _unique([*case_start.reasons, *inner]))
            continue
        flags[name] = Flag(term.value, None if term.value is not None else "unknown", term.reasons)
    return EpisodeOutcome(
        depression_measure=dep.name,
        anxiety_measure=anx.name,
        anxiety_fallback=fallback,
        flags=flags,
    )


__all__ = [
    "FLAG_NAMES",
    "NOT_A_CASE",
    "NOT_FINISHED",
    "AbsentReason",
    "EpisodeOutcome",
    "Flag",
    "FlagName",
    "choose_anxiety_measure",
    "derive_outcome",
]
