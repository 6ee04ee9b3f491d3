"""Consent gate for QuestionnaireResponse outcomes: the register, the library and the CLI."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fhir_iapt.cli import main
from fhir_iapt.consent import ConsentFiles, ConsentRegister, load_consent_register
from fhir_iapt.errors import ConfigError, ReadError
from fhir_iapt.pipeline import convert_bytes
from fhir_iapt.results import Converted, Rejected, Result, Skipped

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CSV = ROOT / "examples" / "iapt-outcomes.csv"
EXAMPLE_QR = ROOT / "examples" / "phq9-lhcforms-response.json"
# Valid NHS numbers from DOMAIN.md; the LHC-Forms example's subject is the first.
PATIENT = "9000000009"
OTHER = "9912003888"
# The example response's basedOn referral (DC-1001: TT-0001 in the example export, consent Y).
REF_SYSTEM = "https://example-trust.nhs.uk/Id/diabetes-clinic-record"
REF_VALUE = "DC-1001"
SKIPS = {
    "N": "outcomes-consent-withheld",
    "W": "outcomes-consent-withdrawn",
    None: "outcomes-consent-not-recorded",
}


def _qr(*, based_on: bool = True, nhs: str = PATIENT, **changes: Any) -> dict[str, Any]:
    qr: dict[str, Any] = json.loads(EXAMPLE_QR.read_text())
    if not based_on:
        qr.pop("basedOn")
    qr["subject"]["identifier"]["value"] = nhs
    qr.update(changes)
    return qr


def _convert(
    qr: dict[str, Any] | list[dict[str, Any]], consent: ConsentRegister | None
) -> list[Result]:
    data = json.dumps(qr).encode()
    return convert_bytes(
        data, name="qr.json", mapping="questionnaire-response", consent=consent, validation="none"
    )


def _register(text: str, name: str = "consent.csv") -> ConsentRegister:
    return ConsentRegister.from_csv(io.BytesIO(text.encode()), name=name)


def _run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


# --- the library gate -------------------------------------------------------------------------


def test_no_register_builds_nothing() -> None:
    """Without a register a valid response is Skipped as not recorded, with no bundle and no
    NHS number anywhere in the result."""
    [result] = _convert(_qr(), None)
    assert isinstance(result, Skipped)
    assert result.reason == "outcomes-consent-not-recorded"
    assert "register" in result.detail
    assert PATIENT not in repr(result)


def test_register_with_y_converts() -> None:
    """A register recording Y for the subject's NHS number lets the outcome through."""
    register = _register(f"nhs_number,consent_share_outcomes\n{PATIENT},Y\n")
    [result] = _convert(_qr(based_on=False), register)
    assert isinstance(result, Converted)
    assert result.kind == "outcome"
    assert result.bundle["entry"][1]["resource"]["valueQuantity"]["value"] == 12


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (f"{PATIENT},N", "N"),
        (f"{PATIENT},W", "W"),
        (f"{PATIENT},", None),  # a row saying nothing
        (f"{OTHER},Y", None),  # someone else's consent
        (f"{PATIENT},n", "N"),  # any case
    ],
    ids=["N", "W", "blank", "missing", "lower-case"],
)
def test_without_y_the_reason_is_given(rows: str, expected: str | None) -> None:
    """N, W, blank and absent consent each give their Skipped reason and no bundle."""
    register = _register(f"nhs_number,consent_share_outcomes\n{rows}\n")
    [result] = _convert(_qr(based_on=False), register)
    assert isinstance(result, Skipped)
    assert result.reason == SKIPS[expected]
    assert "register" not in result.detail  # a register was given: plain reason
    assert PATIENT not in repr(result)


def test_malformed_response_is_still_rejected_without_consent() -> None:
    """Bad data is reported whatever the consent: a response with no subject is Rejected."""
    [result] = _convert(_qr(subject=None), None)
    assert isinstance(result, Rejected)
    assert "element QuestionnaireResponse.subject" in json.dumps(result.outcome)


def test_referral_identifier_is_preferred_over_nhs_number() -> None:
    """In the example export the patient withdrew on one pathway (TT-0007, W) but said Y on the
    pathway the response is basedOn (DC-1001): the referral decides; without basedOn the NHS
    number's most restrictive consent (W) does."""
    register = load_consent_register([EXAMPLE_CSV])
    [with_ref] = _convert(_qr(), register)
    assert isinstance(with_ref, Converted)
    [without_ref] = _convert(_qr(based_on=False), register)
    assert isinstance(without_ref, Skipped)
    assert without_ref.reason == "outcomes-consent-withdrawn"


def test_referral_refusal_beats_nhs_number_yes() -> None:
    """A referral recorded N withholds even though the NHS number alone would say Y."""
    register = _register(
        "nhs_number,consent_share_outcomes,referral_identifier_system,referral_identifier\n"
        f"{PATIENT},N,{REF_SYSTEM},{REF_VALUE}\n"
    ).merged(_register(f"nhs_number,consent_share_outcomes\n{PATIENT},Y\n"))
    assert register.decide(nhs_number=PATIENT) == "N"  # the N row counts for the patient too
    only_nhs_yes = ConsentRegister({PATIENT: "Y"}, {f"{REF_SYSTEM}|{REF_VALUE}": "N"})
    [result] = _convert(_qr(), only_nhs_yes)
    assert isinstance(result, Skipped)
    assert result.reason == "outcomes-consent-withheld"


def test_unknown_referral_falls_back_to_nhs_number() -> None:
    """A basedOn referral the register does not know leaves the NHS number to decide."""
    register = ConsentRegister({PATIENT: "Y"}, {"https://other.example/Id/x|X-1": "W"})
    [result] = _convert(_qr(), register)
    assert isinstance(result, Converted)


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (["Y", "N"], "N"),
        (["N", "Y"], "N"),
        (["Y", "W"], "W"),
        (["W", "N"], "W"),
        (["N", "W", "Y"], "W"),
        (["Y", ""], None),  # not recorded outweighs a yes
        (["", "N"], "N"),
        (["Y", "Y"], "Y"),
    ],
)
def test_most_restrictive_wins(codes: list[str], expected: str | None) -> None:
    """Rows disagreeing for one NHS number or referral: W over N over not recorded over Y, in
    one file and across files."""
    header = "nhs_number,consent_share_outcomes,referral_identifier_system,referral_identifier"
    rows = [f"{PATIENT},{code},{REF_SYSTEM},{REF_VALUE}" for code in codes]
    one_file = _register("\n".join([header, *rows]) + "\n")
    assert one_file.decide(nhs_number=PATIENT) == expected
    assert one_file.decide(nhs_number=None, referrals=[(REF_SYSTEM, REF_VALUE)]) == expected
    files = [_register(f"{header}\n{row}\n", name=f"f{i}.csv") for i, row in enumerate(rows)]
    merged = files[0]
    for other in files[1:]:
        merged = merged.merged(other)
    assert merged.decide(nhs_number=PATIENT) == expected
    assert merged.sources == tuple(f"f{i}.csv" for i in range(len(rows)))


def test_nhs_numbers_are_normalised_both_ways() -> None:
    """Spaces in the register's or the response's NHS number do not stop a match."""
    register = _register('nhs_number,consent_share_outcomes\n"900 000 0009",Y\n')
    assert register.decide(nhs_number="9000000009") == "Y"
    assert register.decide(nhs_number="900 000 0009") == "Y"
    [result] = _convert(_qr(based_on=False, nhs="900 000 0009"), register)
    assert isinstance(result, Converted)


def test_register_repr_holds_no_patient_data() -> None:
    """The register's repr gives counts and file names only."""
    register = load_consent_register([EXAMPLE_CSV])
    text = repr(register)
    for value in (PATIENT, OTHER, REF_VALUE):
        assert value not in text
    assert register.counts == {"nhs_numbers": 2, "referrals": 8}
    assert "iapt-outcomes.csv" in text


BAD_REGISTERS: list[tuple[str, str, str]] = [
    # (label, file content, rendered location expected in an issue)
    ("no consent column", f"nhs_number\n{PATIENT}\n", "consent.csv line 1"),
    ("empty file", "", "consent.csv line 1"),
    (
        "bad check digit",
        "nhs_number,consent_share_outcomes\n9000000008,Y\n",
        "consent.csv row 1 line 2 field nhs_number",
    ),
    (
        "not digits",
        "nhs_number,consent_share_outcomes\nunknown,Y\n",
        "consent.csv row 1 line 2 field nhs_number",
    ),
    (
        "bad consent value",
        f"nhs_number,consent_share_outcomes\n{PATIENT},Y\n{OTHER},maybe\n",
        "consent.csv row 2 line 3 field consent_share_outcomes",
    ),
    (
        "half a referral column pair",
        f"nhs_number,consent_share_outcomes,referral_identifier\n{PATIENT},Y,R-1\n",
        "consent.csv row 1 line 2 field referral_identifier_system",
    ),
    (
        "half a referral identifier",
        "nhs_number,consent_share_outcomes,referral_identifier_system,referral_identifier\n"
        f"{PATIENT},Y,{REF_SYSTEM},\n",
        "consent.csv row 1 line 2 field referral_identifier",
    ),
    (
        "ragged row",
        f"nhs_number,consent_share_outcomes\n{PATIENT},Y,extra\n",
        "consent.csv row 1 line 2",
    ),
]


@pytest.mark.parametrize(
    ("label", "text", "where"), BAD_REGISTERS, ids=[b[0] for b in BAD_REGISTERS]
)
def test_malformed_register_is_a_located_error(
    tmp_path: Path, label: str, text: str, where: str
) -> None:
    """A bad consent file fails the whole load: ReadError from a stream, ConfigError from a
    path, each an OperationOutcome locating the problem and naming no value."""
    with pytest.raises(ReadError) as read_exc:
        _register(text)
    path = tmp_path / "consent.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as config_exc:
        load_consent_register([path])
    for exc in (read_exc.value, config_exc.value):
        outcome = exc.to_operation_outcome()
        assert outcome["resourceType"] == "OperationOutcome"
        locations = [loc for issue in outcome["issue"] for loc in issue.get("location", [])]
        assert where in locations, (label, locations)
        rendered = json.dumps(outcome)
        for value in ("9000000008", "maybe", "unknown,", PATIENT, OTHER):
            assert value not in rendered


def test_one_bad_row_discards_the_whole_register() -> None:
    """A register with a bad row is never returned in part (its W might have been the bad
    row's neighbour): every bad row is listed, nothing is loaded."""
    text = f"nhs_number,consent_share_outcomes\n{PATIENT},Y\n{OTHER},?\n{PATIENT},W\n9000000008,N\n"
    with pytest.raises(ReadError) as exc:
        _register(text)
    assert len(exc.value.issues) == 2
    assert "2 bad row(s)" in exc.value.message


def test_unopenable_register_is_config_error(tmp_path: Path) -> None:
    """A register path that cannot be opened is a ConfigError naming the path."""
    with pytest.raises(ConfigError) as exc:
        load_consent_register([tmp_path / "missing.csv"])
    assert "missing.csv" in json.dumps(exc.value.to_operation_outcome())


def test_consent_files_pick_up_a_withdrawal_and_fail_closed(tmp_path: Path) -> None:
    """ConsentFiles (the relay's register) re-reads a changed file, so a withdrawal applies
    without a restart; a broken or vanished file raises ConfigError until it is fixed."""
    path = tmp_path / "consent.csv"
    path.write_text(f"nhs_number,consent_share_outcomes\n{PATIENT},Y\n")
    files = ConsentFiles([path])
    assert files.current().decide(nhs_number=PATIENT) == "Y"
    path.write_text(f"nhs_number,consent_share_outcomes\n{PATIENT},Y\n{PATIENT},W\n")
    assert files.current().decide(nhs_number=PATIENT) == "W"
    path.write_text(f"nhs_number,consent_share_outcomes\n{PATIENT},Y\n{PATIENT},bad\n")
    for _ in range(2):  # stays closed, no falling back to the last good register
        with pytest.raises(ConfigError):
            files.current()
    path.write_text(f"nhs_number,consent_share_outcomes\n{PATIENT},N\n")
    assert files.current().decide(nhs_number=PATIENT) == "N"
    path.unlink()
    with pytest.raises(ConfigError):
        files.current()
    assert PATIENT not in repr(files)


def test_consent_files_check_at_startup(tmp_path: Path) -> None:
    """A malformed register named in settings fails when ConsentFiles is built."""
    path = tmp_path / "consent.csv"
    path.write_text("nhs_number\n")
    with pytest.raises(ConfigError):
        ConsentFiles([path])


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_without_consent_withholds_and_hints(tmp_path: Path) -> None:
    """Without --consent a response produces no bundle, is counted as withheld in the summary,
    and one hint line on stderr names --consent."""
    out = tmp_path / "out"
    code, _, stderr = _run(["outcomes", str(EXAMPLE_QR), "--out", str(out)])
    assert code == 0
    assert (out / "bundles.ndjson").read_text() == ""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["converted"] == 0
    assert summary["skipped"] == {"outcomes-consent-not-recorded": 1}
    hints = [line for line in stderr.splitlines() if "--consent" in line]
    assert len(hints) == 1


def test_cli_episode_only_run_has_no_hint(tmp_path: Path) -> None:
    """An episode export alone needs no register, so no hint is printed."""
    code, _, stderr = _run(["outcomes", str(EXAMPLE_CSV), "--out", str(tmp_path / "o")])
    assert code == 0
    assert "--consent" not in stderr


def test_cli_consent_files_are_merged(tmp_path: Path) -> None:
    """--consent is repeatable: the export says Y for the response's referral, and a second
    file withdrawing on that referral withholds it (most restrictive wins)."""
    out = tmp_path / "yes"
    code, _, _ = _run(
        ["outcomes", str(EXAMPLE_QR), "--out", str(out), "--consent", str(EXAMPLE_CSV)]
    )
    assert code == 0
    [line] = (out / "bundles.ndjson").read_text().splitlines()
    assert json.loads(line)["entry"][0]["resource"]["resourceType"] == "QuestionnaireResponse"
    withdrawal = tmp_path / "withdrawals.csv"
    withdrawal.write_text(
        "nhs_number,consent_share_outcomes,referral_identifier_system,referral_identifier\n"
        f"{PATIENT},W,{REF_SYSTEM},{REF_VALUE}\n"
    )
    out2 = tmp_path / "withdrawn"
    code, _, _ = _run(
        [
            "outcomes",
            str(EXAMPLE_QR),
            "--out",
            str(out2),
            "--consent",
            str(EXAMPLE_CSV),
            "--consent",
            str(withdrawal),
        ]
    )
    assert code == 0
    assert (out2 / "bundles.ndjson").read_text() == ""
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["skipped"] == {"outcomes-consent-withdrawn": 1}


def test_cli_malformed_register_exits_two(tmp_path: Path) -> None:
    """A malformed consent file stops the run before any output: exit 2, OperationOutcome on
    stderr locating the row and field."""
    bad = tmp_path / "consent.csv"
    bad.write_text(f"nhs_number,consent_share_outcomes\n{PATIENT},perhaps\n")
    out = tmp_path / "out"
    args = ["outcomes", str(EXAMPLE_QR), "--out", str(out), "--consent", str(bad)]
    code, _, stderr = _run([*args, "--error-format", "json"])
    assert code == 2
    outcome = json.loads(stderr)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["location"] == [
        "consent.csv row 1 line 2 field consent_share_outcomes"
    ]
    assert PATIENT not in stderr
    assert not out.exists()


def test_cli_validation_gate_applies_to_responses(tmp_path: Path) -> None:
    """Response bundles pass the R4/profile gate: with --validate full a response carrying an
    element R4 does not define is rejected (exit 1); with the default (first bundle only) it is
    not re-checked, as for episode rows."""
    good = _qr()
    odd = copy.deepcopy(good)
    odd["identifier"]["value"] = "SM-7742"
    odd["notAnR4Element"] = True
    src = tmp_path / "responses.json"
    src.write_text(json.dumps([good, odd]))
    full = tmp_path / "full"
    code, _, _ = _run(
        [
            "outcomes",
            str(src),
            "--out",
            str(full),
            "--consent",
            str(EXAMPLE_CSV),
            "--validate",
            "full",
        ]
    )
    assert code == 1
    [reject] = [json.loads(x) for x in (full / "rejects.ndjson").read_text().splitlines()]
    assert "notAnR4Element" in json.dumps(reject)
    assert len((full / "bundles.ndjson").read_text().splitlines()) == 1
    first = tmp_path / "first"
    code, _, _ = _run(["outcomes", str(src), "--out", str(first), "--consent", str(EXAMPLE_CSV)])
    assert code == 0
    assert len((first / "bundles.ndjson").read_text().splitlines()) == 2
