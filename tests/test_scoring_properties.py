"""Property tests: the outcome flags are consistent with each other for any episode."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_iapt.scoring.episode import EpisodeRecord, ScorePair
from fhir_iapt.scoring.measures import outcome_rules
from fhir_iapt.scoring.recovery import FLAG_NAMES, derive_outcome

_RULES = outcome_rules()


def _score(measure: str) -> st.SearchStrategy[Decimal | None]:
    spec = _RULES.measure(measure)
    step = Decimal(1).scaleb(-spec.decimals)
    count = int((spec.high - spec.low) / step)
    return st.none() | st.integers(0, count).map(lambda n: spec.low + n * step)


def _pair(measure: str) -> st.SearchStrategy[ScorePair]:
    return st.builds(ScorePair, _score(measure), _score(measure))


@st.composite
def episodes(draw: st.DrawFn) -> EpisodeRecord:
    adsm = draw(st.none() | st.sampled_from(_RULES.adsm_names))
    return EpisodeRecord(
        source_system="urn:test",
        pathway_id="P",
        referral_identifier_system="urn:ref",
        referral_identifier="R",
        nhs_number="9000000009",
        service_ods="ABC",
        consent="Y",
        problem_descriptor=draw(
            st.none()
            | st.sampled_from(
                [
                    "F32.1",
                    "F33",
                    "F40.0",
                    "F40.1",
                    "F40.2",
                    "F41.0",
                    "F41.1",
                    "F41.2",
                    "F42.1",
                    "F43.1",
                    "F45.2",
                ]
            )
        ),
        treatment_contacts=draw(st.none() | st.integers(0, 30)),
        discharge=draw(st.none() | st.just(date(2024, 6, 1))),
        phq9=draw(_pair("PHQ-9")),
        gad7=draw(_pair("GAD-7")),
        adsm=adsm,
        adsm_scores=draw(_pair(adsm)) if adsm else ScorePair(),
    )


@settings(max_examples=200, deadline=None)
@given(episodes())
def test_flags_are_consistent(ep: EpisodeRecord) -> None:
    """Improvement and deterioration never both hold; reliable recovery implies recovery and
    reliable improvement; recovery implies caseness at start and finished treatment."""
    out = derive_outcome(ep)
    v = out.value
    assert not (v("reliable-improvement") is True and v("reliable-deterioration") is True)
    if v("reliable-recovery") is True:
        assert v("recovery") is True
        assert v("reliable-improvement") is True
    if v("recovery") is True:
        assert v("caseness-at-start") is True
        assert v("finished-treatment") is True


@settings(max_examples=200, deadline=None)
@given(episodes())
def test_open_pathways_and_non_cases(ep: EpisodeRecord) -> None:
    """No discharge date: never finished treatment. Not a case at the start: recovery and
    reliable recovery are not-applicable, never a boolean."""
    out = derive_outcome(ep)
    if ep.discharge is None:
        assert out.value("finished-treatment") is False
    if out.value("caseness-at-start") is False:
        for name in ("recovery", "reliable-recovery"):
            assert (out.flags[name].value, out.flags[name].absent) == (None, "not-applicable")


@settings(max_examples=150, deadline=None)
@given(episodes())
def test_absent_iff_none(ep: EpisodeRecord) -> None:
    """A flag has a data-absent reason and a stated reason exactly when its value is None."""
    for name in FLAG_NAMES:
        flag = derive_outcome(ep).flags[name]
        assert (flag.value is None) == (flag.absent is not None)
        assert (flag.value is None) == bool(flag.reasons)


@settings(max_examples=150, deadline=None)
@given(episodes())
def test_complete_data_derives_every_flag(ep: EpisodeRecord) -> None:
    """With both measures paired and the contact count known, no flag is left undecided
    (unless treatment was not finished, which makes the later flags not applicable)."""
    out = derive_outcome(ep)
    anxiety = ep.scores().get(out.anxiety_measure, ScorePair())
    if ep.phq9.paired and anxiety.paired and ep.treatment_contacts is not None:
        for name in FLAG_NAMES:
            flag = out.flags[name]
            assert flag.value is not None or flag.absent == "not-applicable"


@settings(max_examples=150, deadline=None)
@given(episodes())
def test_flags_depend_only_on_the_measures_used(ep: EpisodeRecord) -> None:
    """WSAS never changes a flag (it is reported, not used for the outcome)."""
    from dataclasses import replace

    with_wsas = replace(ep, wsas=ScorePair(Decimal(40), Decimal(0)))
    assert derive_outcome(with_wsas) == derive_outcome(ep)


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, min_value=-(10**30), max_value=10**30, places=None
    )
)
def test_decimal_places_equal_normalize_where_normalize_works(value: Decimal) -> None:
    """The digit-based count of decimal places equals the normalize()-based one it replaced
    (which raised Overflow on exponents like 1e1000000)."""
    from fhir_iapt.scoring.episode import _decimal_places

    with localcontext(prec=200):  # normalize() rounds to the context's precision (28)
        exponent = value.normalize().as_tuple().exponent
    expected = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    assert _decimal_places(value) == expected


def test_a_score_with_a_huge_exponent_is_a_range_rejection() -> None:
    """1e1000000 as a PHQ-9 score is rejected as out of range (it raised decimal.Overflow)."""
    from fhir_iapt.errors import ScoringError
    from fhir_iapt.scoring.episode import parse_score

    with pytest.raises(ScoringError) as caught:
        parse_score("PHQ-9", "1e1000000")
    assert caught.value.error_code == "FI355"
